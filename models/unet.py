"""U-Net backbone of MoSE: returns the bottleneck feature and the full-resolution decoder feature.

Module names (`contracting_path.<i>.layers.<j>`, `upsampling_path.<j>.conv_block.layers.<k>`)
follow the authors' checkpoints so their released weights load without a key map.
"""

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.01


def init_conv(conv: nn.Conv2d) -> None:
    """Kaiming-normal weights (fan_in, relu) and truncated-normal biases (std 0.001, ±2σ)."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
    if conv.bias is not None:
        nn.init.trunc_normal_(conv.bias, mean=0.0, std=0.001, a=-0.002, b=0.002)


class ConvBlock(nn.Module):
    """Optional 2×2 average pooling, then 3 × [Conv3×3 → BatchNorm → ReLU].

    Args:
        in_channels: input channels.
        out_channels: output channels of every convolution.
        pool: start with `AvgPool2d(2, 2, ceil_mode=True)` (encoder levels after the first).
    """

    def __init__(self, in_channels: int, out_channels: int, pool: bool = False):
        super().__init__()
        layers: List[nn.Module] = []
        if pool:
            layers.append(nn.AvgPool2d(kernel_size=2, stride=2, ceil_mode=True))
        for i in range(3):
            conv = nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1)
            init_conv(conv)
            layers += [conv, nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM),
                       nn.ReLU(inplace=True)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class UpBlock(nn.Module):
    """Bilinear ×2 upsampling, concatenation with the skip feature, then a `ConvBlock`."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int):
        super().__init__()
        self.conv_block = ConvBlock(in_channels + skip_channels, out_channels, pool=False)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # Upsampling to the skip's size equals scale_factor=2 for even sizes and keeps odd sizes
        # (from ceil_mode pooling) working.
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv_block(torch.cat([x, skip], dim=1))  # (B, F[i], H_i, W_i)


class Unet(nn.Module):
    """U-Net without a classification layer.

    Args:
        input_channels: channels of the input image.
        num_filters: channels per level, e.g. [32, 64, 128, 192, 192, 192, 192]; depth >= 2.
    """

    def __init__(self, input_channels: int, num_filters: Sequence[int]):
        super().__init__()
        if len(num_filters) < 2:
            raise ValueError(f"num_filters needs at least 2 levels, got {list(num_filters)}")
        self.num_filters = list(num_filters)
        self.contracting_path = nn.ModuleList()
        in_ch = input_channels
        for i, f in enumerate(self.num_filters):
            self.contracting_path.append(ConvBlock(in_ch, f, pool=i > 0))
            in_ch = f
        self.upsampling_path = nn.ModuleList(
            UpBlock(self.num_filters[i + 1], self.num_filters[i], self.num_filters[i])
            for i in range(len(self.num_filters) - 2, -1, -1)
        )

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode and decode.

        Args:
            x: (B, C_in, H, W) float image.

        Returns:
            u_g: (B, F[-1], h, w) bottleneck feature (input of the gating network).
            u_d: (B, F[0], H, W) decoder output.
        """
        skips = []
        for block in self.contracting_path:
            x = block(x)
            skips.append(x)
        u_g = x
        for up, skip in zip(self.upsampling_path, reversed(skips[:-1])):
            x = up(x, skip)
        return u_g, x
