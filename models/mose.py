"""MoSE: a U-Net whose decoder feature is modulated by latents from a mixture of Gaussian experts.

The model returns a weighted set of segmentations: the compact representation (S samples from
every expert, weights π_k / S) or the standard one (N ancestral samples, uniform weights).
"""

from typing import Dict, Optional, Sequence

import torch
from torch import nn

from models.experts import init_priors, sample_compact, sample_standard
from models.fast_head import fast_head
from models.gating import GatingNetwork, ImageGatingNetwork
from models.head import HeadLayers, NoiseInjection
from models.unet import Unet


class MoSE(nn.Module):
    """Mixture of Stochastic Experts.

    Args:
        input_channels: channels of the input image.
        num_classes: C.
        num_filters: U-Net channels per level (depth >= 2).
        latent_dim: L.
        num_expert: K (>= 2^L).
        sample_per_mode: S, samples per expert in the compact representation.
        softmax: return probabilities (LIDC) instead of logits (Cityscapes).
        masked_pred: where the first annotation is void (label 0), output class 0 for all samples.
        eval_sample_num: if set, eval-mode forwards use the standard representation with this
            many samples; None keeps the compact one.
        fast_head: compute the head as folded matrix products (`models/fast_head.py`, about
            2-3x faster on CPU) instead of the plain modules. Same parameters and mathematics;
            float32 rounding differs, which matters only where training-mode batch norm over
            tiny batches amplifies it.
        channels_last: run the backbone in channels-last memory format (faster CPU convolutions,
            different float32 rounding).
        Both default to False, the formulation whose float32 numbers equal the authors' code;
        the training configs switch both on (settings `fast_head`, `channels_last`).
        amp: run the forward under bf16 autocast (for GPUs); the returned tensors are float32,
            so losses, couplings and metrics stay in float32.
        compile_head: with `fast_head`, run the training-mode batch norms of the head with
            `torch.compile`d kernels (fused loops; compiled at the first training step, eager
            again with one warning where compilation fails). Float32 rounding differs.
        gate_input: what the gating network reads: 'bottleneck' (the paper: the global average
            of the bottleneck feature) or 'image' (the input image, through a small CNN of its
            own: `models.gating.ImageGatingNetwork`; its checkpoint keys differ).
        gate_tta: with gate_input 'image', π in eval mode is the mean over the image's views
            (`ImageGatingNetwork`'s `average_views`).
        gate_views: the views of the image gate: 'dihedral' (flips and quarter turns) or
            'flip_lr' (the image and its mirror image); `models.gating.image_views`.
    """

    def __init__(self, input_channels: int, num_classes: int, num_filters: Sequence[int],
                 latent_dim: int, num_expert: int, sample_per_mode: int, softmax: bool,
                 masked_pred: bool, eval_sample_num: Optional[int] = None,
                 fast_head: bool = False, channels_last: bool = False, amp: bool = False,
                 compile_head: bool = False,
                 gate_input: str = "bottleneck", gate_tta: bool = False,
                 gate_views: str = "dihedral"):
        super().__init__()
        if gate_input not in ("bottleneck", "image"):
            raise ValueError(f"gate_input must be 'bottleneck' or 'image', got {gate_input!r}")
        if gate_tta and gate_input != "image":
            raise ValueError("gate_tta averages the image gate over flipped views; it needs "
                             "gate_input='image'")
        mu, log_sigma = init_priors(num_expert, latent_dim)
        self.mu = nn.Parameter(mu)
        self.log_sigma = nn.Parameter(log_sigma)
        self.backbone = Unet(input_channels, num_filters)
        self.gate_input = gate_input
        self.gating = (ImageGatingNetwork(input_channels, num_expert, gate_tta, gate_views)
                       if gate_input == "image"
                       else GatingNetwork(num_filters[-1], num_expert))
        self.fuse = NoiseInjection(num_filters[0], latent_dim)
        self.layers = HeadLayers(num_filters[0], latent_dim)
        self.last_layer = nn.Conv2d(num_filters[0], num_classes, kernel_size=1)
        self.num_classes = num_classes
        self.num_expert = num_expert
        self.latent_dim = latent_dim
        self.sample_per_mode = sample_per_mode
        self.softmax = softmax
        self.masked_pred = masked_pred
        self.eval_sample_num = eval_sample_num
        self.fast_head = fast_head
        self.channels_last = channels_last
        self.amp = amp
        self.compile_head = compile_head

    def sample_latents(self, expert_probs: torch.Tensor,
                       generator: Optional[torch.Generator] = None):
        """Latents and their weights for the current mode (compact or standard).

        Args:
            expert_probs: (B, K) π.

        Returns:
            z (B, N, L) and weights (B, N).
        """
        B, K = expert_probs.shape
        if self.training or self.eval_sample_num is None:
            S = self.sample_per_mode
            z = sample_compact(self.mu, self.log_sigma, B, S, generator)  # (B, N, L)
            weights = (expert_probs / S).repeat_interleave(S, dim=1)  # (B, N)
        else:
            N = self.eval_sample_num
            z, _ = sample_standard(self.mu, self.log_sigma, expert_probs, N, generator)
            weights = expert_probs.new_full((B, N), 1.0 / N)  # (B, N)
        return z, weights

    def decode(self, u_d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Head: noise injection and 1×1 convolutions.

        Args:
            u_d: (B, F0, H, W) decoder feature.
            z: (B, N, L) latents.

        Returns:
            (B, N, C, H, W) logits.
        """
        if self.fast_head:
            return fast_head(u_d, z, self.fuse, self.layers, self.last_layer, self.training,
                             self.compile_head)
        B, _, H, W = u_d.shape
        N = z.shape[1]
        f = self.fuse(u_d, z)  # (B·N, F0 + L, H, W)
        f = self.layers(f)  # (B·N, F0, H, W)
        return self.last_layer(f).reshape(B, N, self.num_classes, H, W)  # (B, N, C, H, W)

    def forward(self, x: torch.Tensor, label: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None,
                label_probs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Predict a weighted set of segmentations.

        Args:
            x: (B, C_in, H, W) image.
            label: (B, M, H, W) int annotations; only used for `masked_pred`.
            generator: optional generator for all sampling in this call.
            label_probs: (B, M) annotation probabilities; unused by MoSE, accepted so that every
                model takes the engine's one call (the baselines draw a training annotation).

        Returns:
            dict with `pred` (B, N, C, H, W) probabilities if `softmax` else logits,
            `weights` (B, N) summing to one per image and `expert_probs` (B, K).
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            u_g, u_d = self.backbone(x)  # (B, F[-1], h, w), (B, F0, H, W)
            expert_probs = self.gating(x if self.gate_input == "image" else u_g).float()  # (B, K)
            z, weights = self.sample_latents(expert_probs, generator)  # (B, N, L), (B, N)
            pred = self.decode(u_d, z).float()  # (B, N, C, H, W)
        if self.softmax:
            pred = torch.softmax(pred, dim=2)
        if self.masked_pred and label is not None:
            pred = mask_void(pred, label)
        return {"pred": pred, "weights": weights, "expert_probs": expert_probs}


def mask_void(pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Replace every sample's output by the one-hot vector of class 0 where annotation 0 is void.

    Args:
        pred: (B, N, C, H, W) probabilities or logits.
        label: (B, M, H, W) int annotations; void is label 0 in the first annotation.

    Returns:
        (B, N, C, H, W) masked prediction.
    """
    void = (label[:, 0] == 0)[:, None, None]  # (B, 1, 1, H, W)
    one_hot0 = torch.zeros_like(pred[:1, :1, :, :1, :1])  # (1, 1, C, 1, 1)
    one_hot0[:, :, 0] = 1.0
    return torch.where(void, one_hot0, pred)  # (B, N, C, H, W)
