"""Gating networks: expert probabilities π from the global average of the bottleneck feature
(the paper's) or, as an option, from the input image through a small CNN of their own."""

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


IMAGE_GATE_WIDTH = 16  # channels of the image gate's first convolutions
VIEWS = ("dihedral", "flip_lr")  # the view sets of `image_views`


class ImageGatingNetwork(nn.Module):
    """Expert probabilities π read from the input image by a small CNN of its own (the
    `gate_input='image'` option; not in the paper, whose gate reads the bottleneck).

    conv3×3 (w) → ReLU → conv3×3 (w) → ReLU → max-pool 2 → conv3×3 (2w) → ReLU → max-pool 2 →
    conv3×3 (2w) → ReLU → global average and maximum (4w) → Linear (32) → ReLU → Linear (K) →
    softmax, with w = `IMAGE_GATE_WIDTH`. On the synthetic LIDC set the mode probabilities follow
    the contrast of small regions (core, halo, satellite), which a global average of the
    bottleneck blurs; read from the image, a gate comes closer to what the cues allow
    (docs/extensions.md).

    With `average_views` (the `gate_tta` setting), π in eval mode is the mean of the π of the
    image's `views` (`image_views`): 'dihedral', its flips and, for square images, their
    transposes (8 views), or 'flip_lr', the image and its mirror image; the refit trains on the
    same views (`utils.training.gate_refit.random_view`). In training mode the gate reads the
    image as it is.

    Args:
        input_channels: channels of the image.
        num_expert: number of experts K.
        average_views: average π over the views in eval mode.
        views: 'dihedral' or 'flip_lr' (`VIEWS`), the views the data allows.
    """

    def __init__(self, input_channels: int, num_expert: int, average_views: bool = False,
                 views: str = "dihedral"):
        super().__init__()
        if views not in VIEWS:
            raise ValueError(f"views must be one of {VIEWS}, got {views!r}")
        self.average_views, self.views = average_views, views
        w = IMAGE_GATE_WIDTH
        self.encoder = nn.Sequential(
            nn.Conv2d(input_channels, w, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(inplace=True),
        )
        self.fc_layer = nn.Sequential(nn.Linear(4 * w, 32), nn.ReLU(inplace=True),
                                      nn.Linear(32, num_expert))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C_in, H, W) image. Returns: (B, K) logits."""
        h = self.encoder(x)  # (B, 2w, H/4, W/4)
        return self.fc_layer(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1))  # (B, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, C_in, H, W) image. Returns: π (B, K), rows summing to one."""
        if self.training or not self.average_views:
            return torch.softmax(self.logits(x), dim=1)  # (B, K)
        pi = torch.softmax(self.logits(image_views(x, self.views)), dim=1)  # (V·B, K)
        return pi.view(-1, x.shape[0], pi.shape[1]).mean(dim=0)  # (B, K)


def dihedral_views(x: torch.Tensor) -> torch.Tensor:
    """x (B, C, H, W) -> (V·B, C, H, W), view-major: the image, flipped left-right, flipped
    up-down and both (V = 4) and, for square images, the transposes of those four (V = 8: every
    flip and quarter turn)."""
    views = [x, x.flip(3), x.flip(2), x.flip((2, 3))]
    if x.shape[2] == x.shape[3]:
        views += [v.transpose(2, 3) for v in views]
    return torch.cat(views)


def image_views(x: torch.Tensor, views: str = "dihedral") -> torch.Tensor:
    """x (B, C, H, W) -> (V·B, C, H, W), view-major: 'dihedral' is `dihedral_views`; 'flip_lr'
    the image and its left-right mirror image (V = 2), for data with an up and a down."""
    if views == "dihedral":
        return dihedral_views(x)
    return torch.cat([x, x.flip(3)])
