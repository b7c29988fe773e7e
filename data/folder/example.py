"""An example dataset in the folder layout, drawn by the synthetic LIDC generator.

Each image (grey PNG, S x S) shows an ambiguous blob (`data.synthetic.lidc`); each is annotated
by 2 to 5 of five raters (`rater_a` ... `rater_e`, a random subset per image), every rater
drawing one of the image's plausible masks independently, as binary label maps (0 background,
1 lesion). `python -m data.folder example OUT [--train N --val N --test N --size S]`.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image
from tqdm import tqdm

from data.npy_folder import SPLITS, prepare_out_root
from data.synthetic.common import split_rngs
from data.synthetic.lidc import (
    _distances,
    draw_annotations,
    mode_probabilities,
    render_images,
    sample_params,
)

RATERS = ("rater_a", "rater_b", "rater_c", "rater_d", "rater_e")
_CHUNK = 256


def _write_chunk(
    out: str,
    split: str,
    ids: range,
    images: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    raters: tuple[int, int],
) -> None:
    """Write the PNGs of a chunk: images (n, S, S) in [0, 1], labels (n, S, S, A) 0/1."""
    for j, i in enumerate(ids):
        image_id = f"case_{i:04d}"
        pixels = np.round(images[j] * 255).astype(np.uint8)  # (S, S)
        Image.fromarray(pixels).save(os.path.join(out, split, "images", image_id + ".png"))
        folder = os.path.join(out, split, "annotations", image_id)
        os.makedirs(folder)
        count = int(rng.integers(raters[0], raters[1] + 1))
        who = np.sort(rng.choice(len(RATERS), count, replace=False))
        for a, r in enumerate(who):
            Image.fromarray(labels[j, :, :, a]).save(os.path.join(folder, RATERS[r] + ".png"))


def _write_split(
    out: str, split: str, n: int, size: int, rng: np.random.Generator, raters: tuple[int, int]
) -> None:
    """Generate one split: scenes, their images, and up to five annotations per image."""
    os.makedirs(os.path.join(out, split, "images"))
    os.makedirs(os.path.join(out, split, "annotations"))
    p = sample_params(rng, n, size)
    probs = mode_probabilities(p)  # (n, 4)
    for start in tqdm(range(0, n, _CHUNK), desc=f"example {split}", leave=False, disable=None):
        idx = slice(start, min(start + _CHUNK, n))
        d_main, d_sat = _distances(p, idx, size)  # (n, S, S) each
        images = render_images(p, idx, size, d_main, d_sat, rng)  # (n, S, S)
        labels = np.concatenate(
            [draw_annotations(p, idx, probs[idx], d_main, d_sat, rng, size) for _ in range(2)],
            axis=-1,
        )  # (n, S, S, 8)
        _write_chunk(out, split, range(idx.start, idx.stop), images, labels, rng, raters)


def write_example(
    out: str,
    n_train: int = 2000,
    n_val: int = 200,
    n_test: int = 200,
    size: int = 32,
    seed: int = 0,
    raters: tuple[int, int] = (2, 5),
    overwrite: bool = False,
) -> dict[str, int]:
    """Write an example dataset in the folder layout.

    Args:
        out: dataset root (`<out>/{train,val,test}/{images,annotations}`).
        n_train: training images.
        n_val: validation images.
        n_test: test images.
        size: image side S (>= 8).
        seed: random seed; the output is identical for equal arguments.
        raters: (fewest, most) raters per image, within 1..5.
        overwrite: replace existing split folders of `out`.

    Returns:
        split -> number of images written.
    """
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if size < 8 or min(counts.values()) < 1:
        raise ValueError(
            f"need size >= 8 and at least one image per split, got size={size}, {counts}"
        )
    if not 1 <= raters[0] <= raters[1] <= len(RATERS):
        raise ValueError(f"raters must satisfy 1 <= fewest <= most <= 5, got {raters}")
    prepare_out_root(out, overwrite)
    rngs = split_rngs(seed)
    for split in SPLITS:
        _write_split(out, split, counts[split], size, rngs[split], raters)
    info = dict(
        layout="folder",
        source="data.synthetic.lidc",
        size=size,
        seed=seed,
        counts=counts,
        raters=list(raters),
        n_classes=2,
        input_channels=1,
    )
    with open(os.path.join(out, "example_info.json"), "w") as f:
        json.dump(info, f, indent=1)
    return counts
