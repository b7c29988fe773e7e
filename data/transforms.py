"""Joint image/label augmentations with torchvision.transforms.v2 (docs/datasets.md).

Every transform here is called as `transform(image, mask)` with a `tv_tensors.Image` and a
`tv_tensors.Mask` and applies the same geometry to both; masks are always resampled with
nearest-neighbour interpolation (torchvision's Mask kernels ignore the interpolation argument),
so label ids never mix. Randomness comes from torch's global generator, which the DataLoader
seeds per worker.

- LIDC train: horizontal flip p=.5, vertical flip p=.5, rotation U(-10, 10) degrees with
  p=.5 (bilinear image, nearest labels, zero fill). `data.lidc_augment.lidc_train_batch`
  applies it to a whole batch of tensors at once, which the LIDC dataset uses;
  `lidc_train_transform` is the per-item torchvision form of the same distribution.
- Cityscapes train: random square crop of side int(H * s), s drawn from linspace(.6, .99, 4),
  at a uniform random position, resized to `crop_size` (antialiased bilinear, our stand-in for
  OpenCV's area interpolation; nearest for labels and bbpred), then horizontal flip p=.5.
  At the paper's H = 256 the side is int(256 * s) and `crop_size` 128.
- Cityscapes val: centre crop `crop_size` x `crop_size`; test: no transform (full image).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from data.lidc_augment import ROTATION_DEGREES

CROP_SCALES = tuple(np.linspace(0.6, 0.99, 4).tolist())

JointTransform = Callable[[tv_tensors.Image, tv_tensors.Mask], tuple]


def lidc_train_transform() -> JointTransform:
    """LIDC training augmentation: flips and a +-10 degree rotation.

    Returns:
        A joint transform (image, mask) -> (image, mask).
    """
    rotation = v2.RandomRotation(ROTATION_DEGREES, interpolation=InterpolationMode.BILINEAR, fill=0)
    return v2.Compose(
        [
            v2.RandomHorizontalFlip(p=0.5),
            v2.RandomVerticalFlip(p=0.5),
            v2.RandomApply([rotation], p=0.5),
        ]
    )


class RandomScaledSquareCrop:
    """Random square crop of side int(H * s), s uniform over `scales`, resized to `size`.

    Args:
        size: output side length.
        scales: candidate scale factors relative to the image height.
    """

    def __init__(self, size: int, scales: tuple[float, ...] = CROP_SCALES):
        self.size, self.scales = int(size), tuple(scales)

    def __call__(self, image: tv_tensors.Image, mask: tv_tensors.Mask) -> tuple:
        """Crop and resize image and mask with the same window."""
        H, W = image.shape[-2:]
        scale = self.scales[int(torch.randint(len(self.scales), ()))]
        side = min(int(H * scale), W)  # reference behaviour: int(256 * s) at H = 256
        top = int(torch.randint(H - side + 1, ()))
        left = int(torch.randint(W - side + 1, ()))
        out = [self.size, self.size]
        image = TF.resized_crop(
            image,
            top,
            left,
            side,
            side,
            out,
            interpolation=InterpolationMode.BILINEAR,
            antialias=True,
        )
        # torchvision's NEAREST samples floor(dst * scale), like OpenCV's INTER_NEAREST
        mask = TF.resized_crop(
            mask, top, left, side, side, out, interpolation=InterpolationMode.NEAREST
        )
        return image, mask


def cityscapes_train_transform(crop_size: int) -> JointTransform:
    """Cityscapes training augmentation: random scaled square crop and horizontal flip.

    Args:
        crop_size: output side length (128 for the paper's 256 x 512 images).

    Returns:
        A joint transform (image, mask) -> (image, mask).
    """
    return v2.Compose([RandomScaledSquareCrop(crop_size), v2.RandomHorizontalFlip(p=0.5)])


def cityscapes_val_transform(crop_size: int) -> JointTransform:
    """Cityscapes validation transform: a centre crop.

    Args:
        crop_size: side length of the crop.

    Returns:
        A joint transform (image, mask) -> (image, mask).
    """
    return v2.CenterCrop([crop_size, crop_size])


def apply_joint(
    transform: JointTransform | None, image: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a joint transform to plain tensors.

    Args:
        transform: a joint transform, or None for the identity.
        image: (C, H, W) float tensor.
        mask: (M, H, W) integer tensor (labels, possibly with extra id channels).

    Returns:
        The transformed (image, mask) as plain tensors, (C, H', W') and (M, H', W').
    """
    if transform is None:
        return image, mask
    image, mask = transform(tv_tensors.Image(image), tv_tensors.Mask(mask))
    return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)
