"""Gating network: expert probabilities π from the global average of the bottleneck feature."""

import torch
from torch import nn


class GatingNetwork(nn.Module):
    """GAP → Linear → ReLU → Linear → ReLU → Linear(no bias) → softmax over experts.

    The authors index the backbone output at a hard-coded level (6), which crashes for shallower
    backbones; the bottleneck is that level for the paper's 7-level U-Net and works at any depth.

    Args:
        in_channels: channels of the bottleneck feature, F[-1].
        num_expert: number of experts K.
    """

    def __init__(self, in_channels: int, num_expert: int):
        super().__init__()
        self.fc_layer = nn.Sequential(
            nn.Linear(in_channels, in_channels),
            nn.ReLU(inplace=True),
            nn.Linear(in_channels, in_channels),
            nn.ReLU(inplace=True),
            nn.Linear(in_channels, num_expert, bias=False),
        )

    @staticmethod
    def pool(u_g: torch.Tensor) -> torch.Tensor:
        """The MLP's input: (B, F[-1], h, w) -> (B, F[-1]) global average."""
        return u_g.mean(dim=(2, 3))

    def forward(self, u_g: torch.Tensor) -> torch.Tensor:
        """Args: u_g (B, F[-1], h, w). Returns: π (B, K), rows summing to one."""
        return torch.softmax(self.fc_layer(self.pool(u_g)), dim=1)  # (B, K)
