"""LIDC-IDRI dataset over the processed npy layout (docs/datasets.md).

Reads `<root>/<split>/images/<i>.npy` ((H, W) float32, crop - 0.5) and `labels/<i>.npy`
((H, W, 4) uint8). Each item is standardised per image, (x - mean) / std (std taken as 1 for a
constant image, where the formula is undefined), and then augmented (training split only):
augmentation therefore fills rotated-in corners with 0, i.e. the image mean. Files are listed in
numeric order (the authors list them lexicographically; only batch composition differs).
Synthetic sets (`data.synthetic`) add `modes/<i>.npy` and `mode_probs/<i>.npy`.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from data.lidc_augment import lidc_train_batch
from data.npy_folder import check_shape, load_true_modes, npy_shape, numbered_split

CACHE_BYTES = 256 * 2**20  # per dataset object (and per DataLoader worker)
BUILD_HINT = (
    "python -m data.preprocess.build_lidc --pickle LIDC_PICKLE --out {root} "
    "(or synthetic data: python -m data.synthetic lidc {root})"
)


def standardise(image: np.ndarray) -> np.ndarray:
    """Standardise an image to zero mean and unit standard deviation.

    Args:
        image: (H, W) float array.

    Returns:
        (H, W) float32 array; a constant image becomes all zeros.
    """
    image = np.asarray(image, dtype=np.float32)
    std = float(image.std())
    return (image - image.mean()) / (std if std > 0 else 1.0)


class LIDCDataset(Dataset):
    """One split of the processed LIDC data.

    Args:
        root: dataset root holding `train/`, `val/`, `test/`.
        split: 'train', 'val' or 'test'.
        label_range: annotation indices to use for the training split (e.g. [0] for the
            one-annotation setting); None uses all. Validation and test always use all.
        augment: apply the training augmentation; None means "only for the train split".

    Each item is (image (1, H, W) float32, labels (M, H, W) int64, label_probs (M,) float32
    uniform 1/M).
    """

    def __init__(
        self,
        root: str,
        split: str,
        label_range: Sequence[int] | int | None = None,
        augment: bool | None = None,
    ):
        self.root, self.split = root, split
        paths = numbered_split(root, split, ("images", "labels"), BUILD_HINT.format(root=root))
        self.image_paths, self.label_paths = paths["images"], paths["labels"]
        self.num_annotations = self._check_shapes()
        self.annotation_ids = self._annotation_ids(label_range if split == "train" else None)
        self.augment = split == "train" if augment is None else augment
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._cache_bytes = 0

    def _check_shapes(self) -> int:
        """Check every file's shape from its header; returns the number of annotations."""
        num_annotations, image_shape = None, None
        for image_path, label_path in zip(self.image_paths, self.label_paths):
            shape = npy_shape(image_path)
            image_shape = image_shape or shape
            check_shape(
                image_path, len(shape) == 2 and shape == image_shape, f"(H, W) = {image_shape}"
            )
            label_shape = npy_shape(label_path)
            num_annotations = num_annotations or (label_shape[-1] if label_shape else None)
            check_shape(
                label_path,
                label_shape == shape + (num_annotations,),
                f"(H, W, M) = {shape + (num_annotations,)}",
            )
        return num_annotations or 0

    def _annotation_ids(self, label_range) -> list[int]:
        """Validate `label_range` and return the annotation indices to load."""
        if label_range is None:
            return list(range(self.num_annotations))
        ids = [int(label_range)] if np.isscalar(label_range) else [int(i) for i in label_range]
        if not ids or any(i < 0 or i >= self.num_annotations for i in ids):
            raise ValueError(
                f"label_range {label_range!r} must hold annotation indices in "
                f"0..{self.num_annotations - 1}"
            )
        return ids

    def __len__(self) -> int:
        return len(self.image_paths)

    def load(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Item i before augmentation: standardised (1, H, W) image, (M, H, W) uint8 labels.

        Items are kept in memory after their first load while they fit in `CACHE_BYTES` (all
        of a synthetic set; reading two small .npy files costs more than a training step's
        share of a small model). They are never modified: batches are stacked copies.
        """
        if i in self._cache:
            return self._cache[i]
        image = torch.from_numpy(standardise(np.load(self.image_paths[i])))[None]  # (1, H, W)
        labels = np.load(self.label_paths[i])[..., self.annotation_ids]  # (H, W, M)
        labels = torch.from_numpy(np.ascontiguousarray(labels.transpose(2, 0, 1)))  # (M, H, W)
        size = image.nbytes + labels.nbytes
        if self._cache_bytes + size <= CACHE_BYTES:
            self._cache[i] = (image, labels)
            self._cache_bytes += size
        return image, labels

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.__getitems__([i])[0]

    def __getitems__(self, indices: Sequence[int]) -> list:
        """Items `indices`, augmented together (the DataLoader asks for a batch at once).

        Augmentation on the stacked batch (`lidc_train_batch`) draws every item's flips and
        angle independently, so a batch means what per-item augmentation means, at a fraction
        of the per-item cost.

        Returns:
            A list of (image (1, H, W) float32, labels (M, H, W) int64, label_probs (M,)).
        """
        images, labels = (torch.stack(t) for t in zip(*(self.load(i) for i in indices)))
        if self.augment:
            images, labels = lidc_train_batch(images, labels)  # (B, 1, H, W), (B, M, H, W)
        M = labels.shape[1]
        probs = torch.full((M,), 1.0 / M, dtype=torch.float32)
        images, labels = images.float(), labels.long()
        return [(images[j], labels[j], probs.clone()) for j in range(len(indices))]

    def true_modes(self, i: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The true label distribution of item i, stored by the synthetic generator.

        Args:
            i: item index (loader order).

        Returns:
            (modes (T, H, W) int64, probs (T,) float64), or None for real LIDC data.
        """
        return load_true_modes(os.path.join(self.root, self.split), self.image_paths[i])
