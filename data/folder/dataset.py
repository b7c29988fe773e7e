"""`FolderDataset`: one split of a dataset in the folder layout (see `data.folder`).

Kept apart from `data.folder` so that its checker and example writer start without torch;
`from data.folder import FolderDataset` loads it when first asked for.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from data.folder.layout import CHECK_HINT, read_annotation, read_image, scan_split
from data.lidc import standardise
from data.npy_folder import SPLITS
from data.transforms import apply_joint, lidc_train_transform


def pad_annotations(labels: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad M_i annotations to `size` with zero-weight copies.

    Args:
        labels: (M_i, H, W) annotations.
        size: the padded count M >= M_i.

    Returns:
        labels (M, H, W) (annotation j % M_i in slot j) and weights (M,) float32: 1 / M_i on
        the real annotations, 0 on the copies.
    """
    M_i = labels.shape[0]
    index = torch.arange(size) % M_i  # (M,)
    weights = (torch.arange(size) < M_i).float() / M_i  # (M,)
    return labels[index], weights


class FolderDataset(Dataset):
    """One split of a dataset in the folder layout (module docstring).

    Args:
        root: dataset root holding `train/`, `val/`, `test/`.
        split: 'train', 'val' or 'test'.
        input_channels: expected image channels; None accepts what the files hold.
        n_classes: if given, label values must lie in [0, n_classes).
        augment: apply the training augmentation; None means "only for the train split".

    Each item is (image (C_in, H, W) float32 standardised, labels (M, H, W) int64 padded to the
    split's largest rater count, label_probs (M,) float32: 1 / M_i on real annotations, 0 on
    padding). `ids[i]` is item i's id; `num_annotations` is M.
    """

    def __init__(
        self,
        root: str,
        split: str,
        input_channels: int | None = None,
        n_classes: int | None = None,
        augment: bool | None = None,
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not os.path.isdir(root):
            raise FileNotFoundError(
                f"data folder {root!r} not found; write an example with: "
                f"python -m data.folder example {root}"
            )
        self.root, self.split = root, split
        self.items, problems = scan_split(root, split)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ValueError(
                f"{problems[0]}{more}; list every problem with: " + CHECK_HINT.format(root=root)
            )
        self.ids = [item.id for item in self.items]
        self.num_annotations = max(len(item.annotations) for item in self.items)
        self.input_channels, self.n_classes = input_channels, n_classes
        augment = split == "train" if augment is None else augment
        self.transform = lidc_train_transform() if augment else None

    def __len__(self) -> int:
        return len(self.items)

    def load_image(self, i: int) -> torch.Tensor:
        """Item i's standardised image, (C_in, H, W) float32 (checked channel count)."""
        path = self.items[i].image
        image = read_image(path)  # (C, H, W)
        if self.input_channels is not None and image.shape[0] != self.input_channels:
            raise ValueError(
                f"{path}: {image.shape[0]} channel(s), the config's input_channels "
                f"is {self.input_channels}"
            )
        return torch.from_numpy(standardise(image))  # (C, H, W)

    def load_labels(self, i: int, size: tuple[int, int]) -> torch.Tensor:
        """Item i's annotations, (M_i, H, W) uint8 (checked size and values)."""
        maps = []
        for path in self.items[i].annotations:
            labels = read_annotation(path)  # (H, W)
            if labels.shape != size:
                raise ValueError(f"{path}: size {labels.shape} differs from its image's {size}")
            if self.n_classes is not None and (labels.min() < 0 or labels.max() >= self.n_classes):
                raise ValueError(f"{path}: label values outside [0, {self.n_classes})")
            maps.append(torch.from_numpy(labels.astype(np.uint8)))
        return torch.stack(maps)  # (M_i, H, W)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = self.load_image(i)  # (C_in, H, W)
        labels = self.load_labels(i, tuple(image.shape[1:]))  # (M_i, H, W)
        labels, weights = pad_annotations(labels, self.num_annotations)  # (M, H, W), (M,)
        image, labels = apply_joint(self.transform, image, labels)
        return image.float(), labels.long(), weights

    def true_modes(self, i: int) -> None:
        """Real data has no known true distribution (the evaluation loop asks)."""
        return None
