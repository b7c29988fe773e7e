"""LIDC training augmentation on a whole batch of tensors (torch only, no torchvision import).

Per item: horizontal flip p=.5, vertical flip p=.5, rotation U(-10, 10) degrees with p=.5
(bilinear image, nearest labels, zero fill), each item drawing its own flips and angle. The
rotation reproduces torchvision's own resampling exactly (`rotate_batch`), so the distribution
equals the per-item torchvision form, `data.transforms.lidc_train_transform` (docs/datasets.md).
Keeping torchvision out of this module saves its import (a second or more) at every start of
an LIDC run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ROTATION_DEGREES = 10.0


def rotation_grid(angles: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """`grid_sample` grids that rotate H x W images counter-clockwise by `angles` degrees.

    The same grid torchvision's `rotate` builds (about the image centre, align_corners=False).

    Args:
        angles: (R,) float angles in degrees.

    Returns:
        (R, H, W, 2) normalised sampling coordinates.
    """
    theta = torch.deg2rad(angles.double())
    cos, sin = theta.cos()[:, None, None], theta.sin()[:, None, None]  # (R, 1, 1)
    x = torch.linspace((1.0 - W) * 0.5, (W - 1.0) * 0.5, W, dtype=torch.float64)[None, None]
    y = torch.linspace((1.0 - H) * 0.5, (H - 1.0) * 0.5, H, dtype=torch.float64)[None, :, None]
    gx = (cos * x - sin * y) / (0.5 * W)  # (R, H, W)
    gy = (sin * x + cos * y) / (0.5 * H)  # (R, H, W)
    return torch.stack([gx, gy], dim=-1).float()  # (R, H, W, 2)


def rotate_batch(images: torch.Tensor, labels: torch.Tensor,
                 angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate images (bilinear) and labels (nearest) with zero fill, one angle per item.

    Matches `torchvision.transforms.v2.functional.rotate` with fill=0: the bilinear image is
    multiplied by the bilinearly resampled coverage of the input, as torchvision does.

    Args:
        images: (R, C, H, W) float.
        labels: (R, M, H, W) integer labels.
        angles: (R,) degrees.

    Returns:
        (R, C, H, W) images and (R, M, H, W) labels of the input dtypes.
    """
    R, C, H, W = images.shape
    grid = rotation_grid(angles, H, W)  # (R, H, W, 2)
    ones = images.new_ones(R, 1, H, W)
    out = F.grid_sample(torch.cat([images.float(), ones], 1), grid, mode="bilinear",
                        padding_mode="zeros", align_corners=False)  # (R, C + 1, H, W)
    rotated = (out[:, :C] * out[:, C:]).to(images.dtype)  # (R, C, H, W)
    lab = F.grid_sample(labels.float(), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)  # (R, M, H, W)
    return rotated, lab.round_().to(labels.dtype)


def lidc_train_batch(images: torch.Tensor, labels: torch.Tensor,
                     generator: torch.Generator | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """LIDC training augmentation on a batch: per item hflip p=.5, vflip p=.5, rotation p=.5.

    The same distribution as `lidc_train_transform` (angle U(-10, 10) degrees), drawn for
    every item independently, with a few tensor operations per batch.

    Args:
        images: (B, C, H, W) float.
        labels: (B, M, H, W) integer labels.
        generator: optional generator (default: torch's global one).

    Returns:
        Augmented (B, C, H, W) images and (B, M, H, W) labels.
    """
    B = images.shape[0]
    u = torch.rand(B, 3, generator=generator)  # (B, 3) hflip, vflip, rotate decisions
    angles = (torch.rand(B, generator=generator) * 2 - 1) * ROTATION_DEGREES  # (B,)
    for flip, dim in ((u[:, 0] < 0.5, -1), (u[:, 1] < 0.5, -2)):
        images = torch.where(flip[:, None, None, None], images.flip(dim), images)
        labels = torch.where(flip[:, None, None, None], labels.flip(dim), labels)
    idx = torch.nonzero(u[:, 2] < 0.5)[:, 0]  # (R,) items to rotate
    if len(idx):
        images, labels = images.clone(), labels.clone()
        images[idx], labels[idx] = rotate_batch(images[idx], labels[idx], angles[idx])
    return images, labels
