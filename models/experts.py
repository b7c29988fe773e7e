"""Expert priors: K diagonal Gaussians over the L-dimensional latent, and sampling from them.

The parameters live on `MoSE` itself (`mu`, `log_sigma`, the authors' checkpoint names); this
module holds their initialisation and the two sampling schemes.
"""

import math
from typing import Optional, Tuple

import torch


def binary_codes(latent_dim: int) -> torch.Tensor:
    """All L-bit binary codes: row r, column i holds bit L-1-i of r.

    Returns:
        (2^L, L) float tensor.
    """
    rows = torch.arange(2**latent_dim)[:, None]  # (2^L, 1)
    shifts = torch.arange(latent_dim - 1, -1, -1)[None]  # (1, L)
    return ((rows >> shifts) & 1).float()  # (2^L, L)


def init_priors(num_expert: int, latent_dim: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Initial expert means and log standard deviations, as the authors' code draws them.

    `mu` is uniform on [0, 1) with its first 2^L rows set to the binary codes, so the first
    experts start at distinct corners of the latent cube {0, 1}^L; `log_sigma` starts at
    log(1/8).

    Returns:
        mu (K, L) and log_sigma (K, L).

    Raises:
        ValueError: if K < 2^L.
    """
    if num_expert < 2**latent_dim:
        raise ValueError(
            f"num_expert={num_expert} is smaller than 2**latent_dim={2**latent_dim}: the expert "
            f"means start at the {2**latent_dim} binary codes of the latent space. Use "
            f"num_expert >= {2**latent_dim} or a smaller latent_dim."
        )
    mu = torch.rand(num_expert, latent_dim)
    mu[: 2**latent_dim] = binary_codes(latent_dim)
    log_sigma = torch.full((num_expert, latent_dim), math.log(1.0 / 8))
    return mu, log_sigma


def sample_compact(mu: torch.Tensor, log_sigma: torch.Tensor, batch_size: int,
                   sample_per_mode: int, generator: Optional[torch.Generator] = None
                   ) -> torch.Tensor:
    """S reparameterised latents from every expert, expert-major.

    Args:
        mu, log_sigma: (K, L) expert parameters.
        batch_size: B.
        sample_per_mode: S.
        generator: optional generator for the noise.

    Returns:
        (B, N, L) latents with N = K·S; sample n = k·S + s comes from expert k.
    """
    K, L = mu.shape
    sigma = torch.exp(log_sigma) + 1e-8  # (K, L)
    eps = torch.randn(batch_size, K, sample_per_mode, L, generator=generator, device=mu.device,
                      dtype=mu.dtype)  # (B, K, S, L)
    z = mu[None, :, None] + sigma[None, :, None] * eps  # (B, K, S, L)
    return z.reshape(batch_size, K * sample_per_mode, L)  # (B, N, L)


def sample_standard(mu: torch.Tensor, log_sigma: torch.Tensor, expert_probs: torch.Tensor,
                    num_samples: int, generator: Optional[torch.Generator] = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Ancestral sampling: N expert ids from Categorical(π), then one latent from each.

    Args:
        mu, log_sigma: (K, L) expert parameters.
        expert_probs: (B, K) π.
        num_samples: N.
        generator: optional generator for the ids and the noise.

    Returns:
        z (B, N, L) latents and ids (B, N) int64 expert indices.
    """
    B = expert_probs.shape[0]
    L = mu.shape[1]
    ids = torch.multinomial(expert_probs.detach().float(), num_samples, replacement=True,
                            generator=generator)  # (B, N)
    eps = torch.randn(B, num_samples, L, generator=generator, device=mu.device,
                      dtype=mu.dtype)  # (B, N, L)
    sigma = torch.exp(log_sigma) + 1e-8  # (K, L)
    return mu[ids] + sigma[ids] * eps, ids  # (B, N, L)
