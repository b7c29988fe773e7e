"""Multimodal Cityscapes dataset over the processed npy layout (docs/datasets.md).

Reads `<root>/<split>/images/<i>.npy` ((3, H, W) float32, already normalised by the builder),
`labels/<i>.npy` ((T, H, W) uint8, T = 32 modes), `probs/<i>.npy` ((T,) float32) and, when the
black-box channel is used, `bbpreds/<i>.npy` ((H, W) uint8 ids, 0 where void).

Transforms by split: train = random scaled square crop resized to `crop_size` + horizontal
flip; val = centre crop `crop_size`; test = full image. `crop_size` defaults to H // 2 (128 for
the paper's 256 x 512), so the small synthetic scenes (64 x 128) train on 32 x 32 crops.
Files are listed in numeric order (the authors list them lexicographically, which only changes
batch composition). The black-box prediction rides along with the labels through the joint
transform (nearest resampling) and is appended as a float 4th input channel.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from data.npy_folder import check_shape, load_true_modes, npy_shape, numbered_split
from data.transforms import apply_joint, cityscapes_train_transform, cityscapes_val_transform

BUILD_HINT = (
    "python -m data.preprocess.build_cityscapes --raw CITYSCAPES_ROOT --out {root} "
    "[--bbpreds BB_ROOT] (or synthetic data: python -m data.synthetic cityscapes {root})"
)


class CityscapesDataset(Dataset):
    """One split of the processed multimodal Cityscapes data.

    Args:
        root: dataset root holding `train/`, `val/`, `test/`.
        split: 'train', 'val' or 'test'.
        use_bbpred: fill the 4th channel with the black-box prediction (needs `bbpreds/`).
        bbpred_channel: whether the input has the 4th channel; None follows `use_bbpred`.
            True with `use_bbpred=False` gives an all-zero 4th channel (a 4-channel model
            without predictions); False gives 3 channels whatever `use_bbpred` says.
        augment: None = the split's transform (see module docstring); True = training
            augmentation; False = no transform (full images).
        crop_size: side of the training/validation crops; None = H // 2.

    Each item is (input (C_in, h, w) float32 with C_in 3 or 4, labels (T, h, w) int64,
    label_probs (T,) float32).
    """

    def __init__(
        self,
        root: str,
        split: str,
        use_bbpred: bool = True,
        bbpred_channel: bool | None = None,
        augment: bool | None = None,
        crop_size: int | None = None,
    ):
        self.root, self.split = root, split
        self.bbpred_channel = use_bbpred if bbpred_channel is None else bool(bbpred_channel)
        self.use_bbpred = bool(use_bbpred) and self.bbpred_channel
        kinds = ("images", "labels", "probs") + (("bbpreds",) if self.use_bbpred else ())
        hint = BUILD_HINT.format(root=root)
        if self.use_bbpred and not os.path.isdir(os.path.join(root, split, "bbpreds")):
            hint += "; with --bbpreds, or set use_bbpred=False"
        self.paths = numbered_split(root, split, kinds, hint)
        self.image_size = self._check_shapes()
        self.crop_size = int(crop_size or self.image_size[0] // 2)
        self.transform = self._make_transform(augment)

    def _check_shapes(self) -> tuple[int, int]:
        """Check every file's shape from its header; returns the common (H, W)."""
        size, modes = None, None
        for i, image_path in enumerate(self.paths["images"]):
            shape = npy_shape(image_path)
            size = size or tuple(shape[1:])
            check_shape(
                image_path, len(shape) == 3 and shape == (3,) + size, f"(3, H, W) = {(3,) + size}"
            )
            label_shape = npy_shape(self.paths["labels"][i])
            modes = modes or label_shape[0]
            check_shape(
                self.paths["labels"][i],
                label_shape == (modes,) + size,
                f"(T, H, W) = {(modes,) + size}",
            )
            check_shape(
                self.paths["probs"][i],
                npy_shape(self.paths["probs"][i]) == (modes,),
                f"(T,) = {(modes,)}",
            )
            if self.use_bbpred:
                bb_path = self.paths["bbpreds"][i]
                check_shape(bb_path, npy_shape(bb_path) == size, f"(H, W) = {size}")
        return size or (0, 0)

    def _make_transform(self, augment: bool | None):
        """Pick the joint transform for this split."""
        if augment is None:
            if self.split == "train":
                return cityscapes_train_transform(self.crop_size)
            return cityscapes_val_transform(self.crop_size) if self.split == "val" else None
        return cityscapes_train_transform(self.crop_size) if augment else None

    def __len__(self) -> int:
        return len(self.paths["images"])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image = torch.from_numpy(np.load(self.paths["images"][i]).astype(np.float32))  # (3, H, W)
        labels = np.load(self.paths["labels"][i])  # (T, H, W)
        if self.use_bbpred:
            bbpred = np.load(self.paths["bbpreds"][i])[None].astype(labels.dtype)  # (1, H, W)
            labels = np.concatenate([labels, bbpred])  # (T + 1, H, W)
        image, mask = apply_joint(self.transform, image, torch.from_numpy(labels))
        if self.use_bbpred:
            image = torch.cat([image, mask[-1:].float()])  # (4, h, w)
            mask = mask[:-1]  # (T, h, w)
        elif self.bbpred_channel:
            image = torch.cat([image, torch.zeros_like(image[:1])])  # (4, h, w)
        probs = torch.from_numpy(np.load(self.paths["probs"][i]).astype(np.float32))  # (T,)
        return image.float(), mask.long(), probs

    def true_modes(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The true label distribution of item i, aligned with the validation/test output.

        Synthetic sets store it in `modes/` and `mode_probs/`; for real data the 32 labels and
        their probabilities are the true modes. On the val split the centre crop is applied,
        so the modes match the labels the loader yields; train-split modes are uncropped.

        Args:
            i: item index (loader order).

        Returns:
            (modes (T, h, w) int64, probs (T,) float64).
        """
        image_path = self.paths["images"][i]
        found = load_true_modes(os.path.join(self.root, self.split), image_path)
        if found is None:
            found = (
                np.load(self.paths["labels"][i]).astype(np.int64),
                np.load(self.paths["probs"][i]).astype(np.float64),
            )
        modes, probs = found
        if isinstance(self.transform, v2.CenterCrop):  # the val split's deterministic crop
            image = torch.zeros((1,) + modes.shape[-2:])
            _, cropped = apply_joint(self.transform, image, torch.from_numpy(modes))
            modes = cropped.numpy()
        return modes, probs
