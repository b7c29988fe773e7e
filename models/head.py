"""Noise injection and the 1×1-convolution head that turns (decoder feature, latent) into logits.

Names (`fuse.residual`, `fuse.scale`, `fuse.last_layer`, `layers.convolution.<i>.convolution`)
follow the authors' checkpoints.
"""

import torch
from torch import nn

from models.unet import BN_EPS, BN_MOMENTUM


class NoiseInjection(nn.Module):
    """Shift and scale the decoder feature per sample with the latent, then a 1×1 convolution.

    `f = (u_d + r(z)) * (s(z) + 1e-5)`, then Conv1×1(F0 → F0 + L).

    Args:
        num_channels: F0, channels of the decoder feature.
        latent_dim: L.
    """

    def __init__(self, num_channels: int, latent_dim: int):
        super().__init__()
        self.residual = nn.Linear(latent_dim, num_channels)
        self.scale = nn.Linear(latent_dim, num_channels)
        for lin in (self.residual, self.scale):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.last_layer = nn.Conv2d(num_channels, num_channels + latent_dim, kernel_size=1)

    def forward(self, u_d: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Plain formulation: one modulated copy of the decoder feature per sample.

        Args:
            u_d: (B, F0, H, W) decoder feature.
            z: (B, N, L) latents.

        Returns:
            (B·N, F0 + L, H, W) fused feature, sample-major within each image.
        """
        B, F0, H, W = u_d.shape
        N = z.shape[1]
        r = self.residual(z)[..., None, None]  # (B, N, F0, 1, 1)
        s = self.scale(z)[..., None, None]  # (B, N, F0, 1, 1)
        f = (u_d[:, None] + r) * (s + 1e-5)  # (B, N, F0, H, W)
        return self.last_layer(f.reshape(B * N, F0, H, W))  # (B·N, F0 + L, H, W)


class HeadBlock(nn.Module):
    """Conv1×1 → BatchNorm → ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.convolution = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1),
            nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convolution(x)


class HeadLayers(nn.Module):
    """Three `HeadBlock`s with channels F0 + L → F0 → F0 → F0."""

    def __init__(self, num_channels: int, latent_dim: int):
        super().__init__()
        self.convolution = nn.ModuleList(
            [HeadBlock(num_channels + latent_dim, num_channels)]
            + [HeadBlock(num_channels, num_channels) for _ in range(2)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.convolution:
            x = block(x)
        return x
