"""Probabilistic U-Net (Kohl et al., NeurIPS 2018) on MoSE's U-Net backbone.

A U-Net computes the full-resolution decoder feature once; a latent z ~ N(mu(x), diag sigma(x)^2)
from the prior net (image only) is broadcast over H, W, concatenated to that feature and decoded by
three 1x1 convolutions ("fcomb") into logits. Training encodes one annotation per image with the
posterior net (image + one-hot annotation) and decodes one posterior sample; the loss
(`utils/loss/elbo.py`) is the cross-entropy of that sample plus beta * KL(posterior || prior).
Evaluation draws N latents from the prior; every sample has weight 1/N, the standard
representation of the predictive distribution, so the metrics and figures treat it like MoSE's.

Choices, each from a published implementation:
- prior/posterior nets: the U-Net encoder (same widths, 3 convs per level, average pooling), global
  mean over H, W, 1x1 conv to 2L (mu, log sigma) — Kohl et al.'s `AxisAlignedConvGaussian`
  (github.com/SimonKohl/probabilistic_unet, model/probabilistic_unet.py). We keep MoSE's batch-norm
  conv blocks, as the PHiSeg-code port used by the SSN paper's LIDC comparison does
  (github.com/MiguelMonteiro/PHiSeg-code, phiseg/experiments/probunet_4annot.py:
  `layer_norm = tfnorm.batch_norm`).
- posterior input: the image concatenated with one_hot(annotation) - 0.5 (reference behaviour of
  Kohl et al.'s `ProbUNet._build`: `seg -= 0.5`).
- fcomb: 3 x [1x1 conv -> ReLU] with F0 channels, then a 1x1 conv to C; orthogonal weights and
  truncated-normal biases (std 0.001), as Kohl et al.'s `Conv1x1Decoder`.
"""

from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from models.mose import mask_void
from models.unet import ConvBlock, Unet, init_conv

DEFAULT_EVAL_SAMPLES = 16  # N drawn from the prior in eval mode when eval_sample_num is None


class AxisAlignedGaussian(nn.Module):
    """U-Net-encoder-like net giving the mean and log-std of an axis-aligned Gaussian over z.

    Args:
        in_channels: input channels (image, or image + C for the posterior).
        num_filters: channels per level, as the backbone.
        latent_dim: L.
    """

    def __init__(self, in_channels: int, num_filters: Sequence[int], latent_dim: int):
        super().__init__()
        blocks, ch = [], in_channels
        for i, f in enumerate(num_filters):
            blocks.append(ConvBlock(ch, f, pool=i > 0))
            ch = f
        self.encoder = nn.Sequential(*blocks)
        self.to_params = nn.Conv2d(ch, 2 * latent_dim, kernel_size=1)
        init_conv(self.to_params)
        self.latent_dim = latent_dim

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Args: x (B, C_in, H, W). Returns: mu (B, L) and log_sigma (B, L)."""
        h = self.encoder(x).mean(dim=(2, 3), keepdim=True)  # (B, F[-1], 1, 1)
        params = self.to_params(h).flatten(1).float()  # (B, 2L)
        return params[:, : self.latent_dim], params[:, self.latent_dim:]


class Fcomb(nn.Module):
    """Latent injection at the last decoder feature: concat z, 3 x [1x1 conv, ReLU], 1x1 to C.

    The first conv acts on [u_d, z]; since z is constant over H, W its contribution is computed
    once per sample (a (B, N, F0) vector) and added to the image part, which is shared by the N
    samples — the same numbers as convolving the concatenation, without N copies of u_d.
    """

    def __init__(self, num_features: int, latent_dim: int, num_classes: int, num_convs: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv2d(num_features + latent_dim if i == 0 else num_features, num_features, 1)
            for i in range(num_convs))
        self.last_layer = nn.Conv2d(num_features, num_classes, 1)
        for conv in [*self.layers, self.last_layer]:
            nn.init.orthogonal_(conv.weight)
            nn.init.trunc_normal_(conv.bias, std=0.001, a=-0.002, b=0.002)
        self.num_features = num_features

    def forward(self, u_d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Args: u_d (B, F0, H, W), z (B, N, L). Returns: (B, N, C, H, W) logits."""
        B, F0, H, W = u_d.shape
        N = z.shape[1]
        first = self.layers[0]
        w = first.weight.flatten(1)  # (F0, F0 + L)
        img = F.conv2d(u_d, first.weight[:, :F0], first.bias)  # (B, F0, H, W)
        lat = z.to(w.dtype) @ w[:, F0:].T  # (B, N, F0)
        h = torch.relu(img[:, None] + lat[..., None, None])  # (B, N, F0, H, W)
        h = h.reshape(B * N, F0, H, W)  # (B·N, F0, H, W)
        for conv in self.layers[1:]:
            h = torch.relu(conv(h))  # (B·N, F0, H, W)
        return self.last_layer(h).reshape(B, N, -1, H, W)  # (B, N, C, H, W)


def draw_annotation(labels: torch.Tensor, label_probs: Optional[torch.Tensor],
                    generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pick one annotation per image, with probability `label_probs` (uniform when None).

    Args:
        labels: (B, M, H, W) int annotations.
        label_probs: (B, M) annotation probabilities, or None.
        generator: generator for the draw.

    Returns:
        index (B,) int64 and the drawn annotation (B, H, W).
    """
    B, M = labels.shape[:2]
    probs = labels.new_ones(B, M, dtype=torch.float) if label_probs is None else label_probs
    index = torch.multinomial(probs.float(), 1, generator=generator)[:, 0]  # (B,)
    return index, labels[torch.arange(B, device=labels.device), index]  # (B,), (B, H, W)


def gaussian_sample(mu: torch.Tensor, log_sigma: torch.Tensor, n: int,
                    generator: Optional[torch.Generator]) -> torch.Tensor:
    """Reparameterised draws: (B, L) parameters -> (B, n, L) samples."""
    eps = torch.randn((mu.shape[0], n, mu.shape[1]), generator=generator, device=mu.device,
                      dtype=mu.dtype)  # (B, n, L)
    return mu[:, None] + log_sigma.exp()[:, None] * eps  # (B, n, L)


def kl_diag_gaussians(mu_q: torch.Tensor, log_sigma_q: torch.Tensor, mu_p: torch.Tensor,
                      log_sigma_p: torch.Tensor) -> torch.Tensor:
    """Analytic KL(q || p) of axis-aligned Gaussians, summed over L.

    Args: (B, L) means and log standard deviations. Returns: (B,) KL.
    """
    var_ratio = torch.exp(2 * (log_sigma_q - log_sigma_p))  # (B, L)
    mean_term = ((mu_q - mu_p) * torch.exp(-log_sigma_p)) ** 2  # (B, L)
    return 0.5 * (var_ratio + mean_term - 1).sum(1) + (log_sigma_p - log_sigma_q).sum(1)  # (B,)


class ProbUnet(nn.Module):
    """Probabilistic U-Net returning MoSE's output dict.

    Args:
        input_channels: channels of the input image.
        num_classes: C.
        num_filters: U-Net channels per level (also the prior/posterior nets').
        latent_dim: L (6 in Kohl et al. for LIDC and Cityscapes).
        softmax: return probabilities in `pred` instead of logits.
        masked_pred: where annotation 0 is void (label 0), output class 0 for all samples.
        eval_sample_num: N prior samples in eval mode; None: 16. Stored as the N actually drawn.
        num_1x1_convs: fcomb depth (3 in Kohl et al.).
        channels_last: run the backbone and the prior/posterior nets channels-last.
        amp: bf16 autocast for the convolutional nets; outputs and latents stay float32.
    """

    def __init__(self, input_channels: int, num_classes: int, num_filters: Sequence[int],
                 latent_dim: int = 6, softmax: bool = True, masked_pred: bool = False,
                 eval_sample_num: Optional[int] = None, num_1x1_convs: int = 3,
                 channels_last: bool = False, amp: bool = False):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {latent_dim}")
        self.backbone = Unet(input_channels, num_filters)
        self.prior = AxisAlignedGaussian(input_channels, num_filters, latent_dim)
        self.posterior = AxisAlignedGaussian(input_channels + num_classes, num_filters, latent_dim)
        self.fcomb = Fcomb(num_filters[0], latent_dim, num_classes, num_1x1_convs)
        self.num_classes = num_classes
        self.latent_dim = latent_dim
        self.softmax = softmax
        self.masked_pred = masked_pred
        self.eval_sample_num = DEFAULT_EVAL_SAMPLES if eval_sample_num is None else eval_sample_num
        self.channels_last = channels_last
        self.amp = amp

    def _posterior(self, x: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        one_hot = F.one_hot(target, self.num_classes).permute(0, 3, 1, 2)  # (B, C, H, W)
        return self.posterior(torch.cat([x, one_hot.to(x.dtype) - 0.5], dim=1))

    def forward(self, x: torch.Tensor, label: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None,
                label_probs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Training (with `label`): one posterior sample; otherwise N prior samples.

        Args:
            x: (B, C_in, H, W) image.
            label: (B, M, H, W) int annotations; needed for training and for `masked_pred`.
            generator: generator for the annotation draw and the latents.
            label_probs: (B, M) probabilities of the annotations (None: uniform).

        Returns:
            dict with `pred` (B, N, C, H, W) probabilities if `softmax` else logits, `weights`
            (B, N) = 1/N, `logits` (B, N, C, H, W) before softmax and masking; in training also
            `kl` (B,) KL(posterior || prior), `target` (B, H, W) the drawn annotation and
            `annotation` (B,) its index.
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        extra = {}
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            _, u_d = self.backbone(x)  # (B, F0, H, W)
            mu_p, log_sigma_p = self.prior(x)  # (B, L), (B, L)
            if self.training and label is not None:
                index, target = draw_annotation(label, label_probs, generator)
                mu_q, log_sigma_q = self._posterior(x, target)  # (B, L), (B, L)
                z = gaussian_sample(mu_q, log_sigma_q, 1, generator)  # (B, 1, L)
                extra = dict(kl=kl_diag_gaussians(mu_q, log_sigma_q, mu_p, log_sigma_p),
                             target=target, annotation=index)
            else:
                n = self.eval_sample_num or DEFAULT_EVAL_SAMPLES
                z = gaussian_sample(mu_p, log_sigma_p, n, generator)  # (B, N, L)
            logits = self.fcomb(u_d, z).float()  # (B, N, C, H, W)
        pred = torch.softmax(logits, dim=2) if self.softmax else logits
        if self.masked_pred and label is not None:
            pred = mask_void(pred, label)
        weights = logits.new_full(logits.shape[:2], 1.0 / logits.shape[1])  # (B, N)
        return dict(pred=pred, weights=weights, logits=logits, **extra)
