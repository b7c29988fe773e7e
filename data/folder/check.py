"""The folder-dataset checker: every problem of a dataset in the folder layout, by file.

`check_folder` reads every image and annotation once and returns one line per problem, each
starting with the offending file or folder: missing folders, empty splits, unsupported or
duplicate files, images without annotations (and annotations without an image), unreadable
files, a channel count other than `input_channels`, annotations that are not single-channel
maps, annotation sizes that differ from their image, label values outside [0, n_classes), and
images whose size differs from the rest of their split (a batch needs one size). Training runs
it first; `python -m data.folder check ROOT --n-classes C` prints it.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from typing import Sequence

import numpy as np
from tqdm import tqdm

from data.folder.layout import FolderItem, read_annotation, read_image, scan_split
from data.npy_folder import SPLITS


class _Checker:
    """Accumulates problems and a summary while reading the files of one dataset."""

    def __init__(self, n_classes: int, input_channels: int | None):
        self.n_classes, self.input_channels = n_classes, input_channels
        self.channel_source = "the config's input_channels"
        self.problems: list[str] = []
        self.summary: dict[str, dict] = {}

    def image(self, path: str) -> tuple[int, int] | None:
        """Read and check one image; returns its (H, W), or None when unreadable."""
        try:
            image = read_image(path)  # (C, H, W)
        except ValueError as err:
            self.problems.append(str(err))
            return None
        if self.input_channels is None:
            self.input_channels, self.channel_source = image.shape[0], path
        if image.shape[0] != self.input_channels:
            self.problems.append(
                f"{path}: {image.shape[0]} channel(s), expected "
                f"{self.input_channels} (from {self.channel_source})"
            )
        return tuple(image.shape[1:])

    def annotation(self, path: str, size: tuple[int, int] | None, classes: Counter) -> None:
        """Read and check one annotation against its image's size and the class range."""
        try:
            labels = read_annotation(path)  # (H, W)
        except ValueError as err:
            self.problems.append(str(err))
            return
        if size is not None and labels.shape != size:
            self.problems.append(
                f"{path}: annotation size {_hw(labels.shape)} differs from its image's {_hw(size)}"
            )
        values, counts = np.unique(labels, return_counts=True)
        bad = values[(values < 0) | (values >= self.n_classes)]
        if bad.size:
            hint = "; a 0/255 mask? store class indices (0, 1)" if 255 in bad else ""
            self.problems.append(
                f"{path}: label values {bad.tolist()[:8]} outside "
                f"[0, {self.n_classes}) (n_classes = {self.n_classes}){hint}"
            )
        classes.update(dict(zip(values.tolist(), counts.tolist())))

    def split(self, items: list[FolderItem], name: str) -> None:
        """Check the files of one split and record its summary."""
        sizes: dict[str, tuple[int, int]] = {}
        classes: Counter = Counter()
        for item in tqdm(items, desc=f"check {name}", leave=False, disable=None):
            size = self.image(item.image)
            if size is not None:
                sizes[item.image] = size
            for path in item.annotations:
                self.annotation(path, size, classes)
        self.mixed_sizes(sizes)
        raters = [len(item.annotations) for item in items]
        self.summary[name] = dict(
            images=len(items),
            raters=(min(raters), max(raters)) if raters else None,
            sizes=sorted(set(sizes.values())),
            classes=dict(sorted(classes.items())),
        )

    def mixed_sizes(self, sizes: dict[str, tuple[int, int]]) -> None:
        """Name every image whose size differs from the most common size of its split."""
        counts = Counter(sizes.values())
        if len(counts) < 2:
            return
        usual, n = counts.most_common(1)[0]
        for path, size in sizes.items():
            if size != usual:
                self.problems.append(
                    f"{path}: size {_hw(size)} differs from the split's usual "
                    f"{_hw(usual)} ({n} images); a batch needs one size, so "
                    "resize or crop the split's images (and annotations) alike"
                )


def _hw(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"


def _run(root: str, n_classes: int, input_channels: int | None, splits: Sequence[str]) -> _Checker:
    if n_classes < 2:
        raise ValueError(
            f"n_classes must be >= 2 (background and at least one class), got {n_classes}"
        )
    if input_channels is not None and input_channels < 1:
        raise ValueError(f"input_channels must be >= 1, got {input_channels}")
    checker = _Checker(n_classes, input_channels)
    if not os.path.isdir(root):
        checker.problems.append(
            f"{root}: dataset folder not found; write an example with: "
            f"python -m data.folder example {root}"
        )
        return checker
    for split in splits:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not os.path.isdir(os.path.join(root, split)):
            checker.problems.append(f"{os.path.join(root, split)}: missing split folder")
            continue
        items, problems = scan_split(root, split)
        checker.problems += problems
        checker.split(items, split)
    return checker


def check_folder(
    root: str, n_classes: int, input_channels: int | None = None, splits: Sequence[str] = SPLITS
) -> list[str]:
    """Validate a dataset in the folder layout.

    Args:
        root: dataset root holding `train/`, `val/`, `test/`.
        n_classes: C; label values must lie in [0, C).
        input_channels: channels every image must have; None: those of the first image.
        splits: the splits to check.

    Returns:
        One line per problem, each starting with the offending file or folder; empty when the
        dataset is ready.
    """
    return _run(root, n_classes, input_channels, splits).problems


def run_check(
    root: str, n_classes: int, input_channels: int | None, splits: Sequence[str] = SPLITS
) -> int:
    """Print every problem (or a summary of a clean dataset); returns the exit code (1 if any).

    Args:
        root, n_classes, input_channels, splits: as for `check_folder`.
    """
    try:
        checker = _run(root, n_classes, input_channels, splits)
    except ValueError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    out = sys.stdout
    for name, s in checker.summary.items():
        raters = "-".join(map(str, sorted(set(s["raters"])))) if s["raters"] else "0"
        sizes = ", ".join(_hw(hw) for hw in s["sizes"]) or "-"
        out.write(
            f"{name}: {s['images']} images, {raters} raters each, size {sizes}, "
            f"label pixels per class {s['classes']}\n"
        )
    if checker.problems:
        out.write("\n".join(checker.problems) + "\n")
        out.write(f"{len(checker.problems)} problem(s) in {root}\n")
        return 1
    out.write(f"{root}: OK ({checker.input_channels} input channel(s), {n_classes} classes)\n")
    return 0
