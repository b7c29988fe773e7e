"""Cityscapes-like synthetic set: simple street scenes in the multimodal 25-id label space.

Scenes are painted in Cityscapes label ids and mapped with `data.cityscapes_labels`, exactly
as real labels are: sky, buildings, trees (vegetation), a fence, a road trapezoid between
sidewalks, terrain or vegetation beyond them, poles with traffic signs, cars on the road,
people on the sidewalks, and void regions (an ego-vehicle band on some images, 'static'
blobs). The image colours each class with per-image brightness and pixel noise. Labels are
the 32 flip modes with their documented probabilities (the same construction as the real builder),
so they are also the true modes: `modes/<i>.npy` is a hard link to `labels/<i>.npy` (a copy
where links are unsupported) and `mode_probs/<i>.npy` equals `probs/<i>.npy`.
The black-box prediction is the unflipped label, shifted by up to one pixel, with a few
rectangles of confusions (road/sidewalk, car/truck, person/rider, vegetation/terrain,
building/wall) and 1% salt noise, set to 0 where the label is void.
"""

from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from data.cityscapes_labels import build_modes, map_label_ids, mode_probabilities, normalise_image
from data.npy_folder import SPLITS
from data.synthetic.common import (
    link_or_copy,
    make_split_dirs,
    save_item,
    split_rngs,
    start_dataset,
)

_CHUNK = 64
# Cityscapes label ids used by the painter.
SKY, BUILDING, VEG, FENCE, ROAD, SIDEWALK, TERRAIN = 23, 11, 21, 13, 7, 8, 22
POLE, SIGN, CAR, PERSON, EGO, STATIC = 17, 20, 26, 24, 1, 4
# RGB colour per label id (Cityscapes palette; void ids dark grey).
_PALETTE = np.full((34, 3), 40, dtype=np.float64)
for _id, _rgb in {
    7: (128, 64, 128),
    8: (244, 35, 232),
    11: (70, 70, 70),
    13: (190, 153, 153),
    17: (153, 153, 153),
    20: (220, 220, 0),
    21: (107, 142, 35),
    22: (152, 251, 152),
    23: (70, 130, 180),
    24: (220, 20, 60),
    26: (0, 0, 142),
    1: (20, 20, 20),
    4: (110, 90, 60),
}.items():
    _PALETTE[_id] = _rgb
# Confusions of the black-box predictor in the 25-id space (identity elsewhere).
_CONFUSE = np.arange(256, dtype=np.uint8)
for _a, _b in {1: 2, 2: 1, 14: 15, 12: 13, 9: 10, 10: 9, 3: 4}.items():
    _CONFUSE[_a] = _b


def _put(lab: np.ndarray, mask: np.ndarray, value: int) -> None:
    """Set `lab` to `value` where the broadcastable `mask` holds (in place)."""
    lab[np.broadcast_to(mask, lab.shape)] = value


def _uniform(rng: np.random.Generator, lo: float, hi: float, shape) -> np.ndarray:
    return rng.uniform(lo, hi, shape)[..., None, None]  # (..., 1, 1) for broadcasting


def _paint_background(rng, n: int, H: int, W: int, Y, X) -> tuple[np.ndarray, np.ndarray]:
    """Sky, buildings, trees and a fence; returns label ids (n, H, W) and the horizon (n,1,1)."""
    lab = np.full((n, H, W), SKY, dtype=np.uint8)
    horizon = _uniform(rng, 0.38, 0.5, n) * H  # (n, 1, 1)
    for _ in range(4):
        x0, width = _uniform(rng, -0.1, 0.9, n) * W, _uniform(rng, 0.1, 0.3, n) * W
        top = _uniform(rng, 0.05, 0.8, n) * horizon
        _put(lab, (X >= x0) & (X < x0 + width) & (Y >= top) & (Y < horizon), BUILDING)
    for _ in range(3):
        cx, cy = _uniform(rng, 0.0, 1.0, n) * W, horizon - _uniform(rng, 0.05, 0.2, n) * H
        r = _uniform(rng, 0.06, 0.14, n) * H
        _put(lab, ((X - cx) / 1.3) ** 2 + (Y - cy) ** 2 < r**2, VEG)
    x0, x1 = _uniform(rng, 0.0, 0.5, n) * W, _uniform(rng, 0.5, 1.0, n) * W
    _put(lab, (X >= x0) & (X < x1) & (Y >= horizon - 0.05 * H) & (Y < horizon), FENCE)
    return lab, horizon


def _paint_ground(rng, lab: np.ndarray, horizon, Y, X) -> tuple[np.ndarray, ...]:
    """Road trapezoid, sidewalks, terrain or vegetation beyond them (in place)."""
    n, H, W = lab.shape
    t = np.clip((Y - horizon) / (H - horizon), 0.0, 1.0)  # (n, H, 1) depth factor
    centre = _uniform(rng, 0.4, 0.6, n) * W
    half = (_uniform(rng, 0.02, 0.06, n) + t * _uniform(rng, 0.25, 0.4, n)) * W  # (n, H, 1)
    walk = np.maximum(1.0, t * _uniform(rng, 0.08, 0.15, n) * W)
    below, offset = Y >= horizon, np.abs(X - centre)
    beyond = np.where(rng.random(n) < 0.5, TERRAIN, VEG).astype(np.uint8)[:, None, None]
    lab[:] = np.where(below, beyond, lab)
    _put(lab, below & (offset < half + walk), SIDEWALK)
    _put(lab, below & (offset < half), ROAD)
    return t, centre, half, walk


def _paint_objects(rng, lab: np.ndarray, horizon, ground, Y, X) -> None:
    """Poles with signs, people on the sidewalks, cars on the road, void regions (in place)."""
    n, H, W = lab.shape
    t, centre, half, walk = ground
    depth = _uniform(rng, 0.2, 1.0, (3, n))  # (3, n, 1, 1) position down the road
    for k in range(3):
        side = np.where(rng.random(n) < 0.5, -1.0, 1.0)[:, None, None]
        foot = horizon + depth[k] * (H - horizon)  # (n, 1, 1)
        scale = depth[k] * H
        x_walk = centre + side * (0.02 * W + depth[k] * 0.33 * W)  # on the sidewalk
        pole_top = foot - 0.5 * scale
        _put(lab, (np.abs(X - x_walk - side * 2) < 0.6) & (Y >= pole_top) & (Y < foot), POLE)
        _put(lab, (np.abs(X - x_walk - side * 2) < 2) & (Y >= pole_top) & (Y < pole_top + 3), SIGN)
        height, x_p = 0.3 * scale + 3, x_walk - side * 1.5
        _put(
            lab,
            (np.abs(X - x_p) < np.maximum(0.6, height / 6)) & (Y >= foot - height) & (Y < foot),
            PERSON,
        )
        car_depth = depth[(k + 1) % 3]
        car_w, car_y = 0.25 * car_depth * H + 3, horizon + car_depth * (H - horizon)
        x_c = centre + _uniform(rng, -0.5, 0.5, n) * (0.04 + 0.3 * car_depth) * W
        _put(lab, (np.abs(X - x_c) < car_w / 2) & (Y >= car_y - 0.45 * car_w) & (Y < car_y), CAR)
    cx, cy = _uniform(rng, 0.0, 1.0, n) * W, _uniform(rng, 0.0, 1.0, n) * H
    _put(lab, (X - cx) ** 2 + (Y - cy) ** 2 < (0.04 * H) ** 2, STATIC)
    ego = np.where(rng.random(n) < 0.5, _uniform(rng, 0.04, 0.1, n)[:, 0, 0] * H, 0.0)
    _put(lab, Y >= H - ego[:, None, None], EGO)


def paint_scenes(rng: np.random.Generator, n: int, size: tuple[int, int]) -> np.ndarray:
    """Paint n street scenes.

    Args:
        rng: random generator.
        n: number of scenes.
        size: (H, W).

    Returns:
        (n, H, W) uint8 Cityscapes label ids.
    """
    H, W = size
    Y = np.arange(H, dtype=np.float64)[None, :, None] + 0.5  # (1, H, 1)
    X = np.arange(W, dtype=np.float64)[None, None, :] + 0.5  # (1, 1, W)
    lab, horizon = _paint_background(rng, n, H, W, Y, X)
    ground = _paint_ground(rng, lab, horizon, Y, X)
    _paint_objects(rng, lab, horizon, ground, Y, X)
    return lab


def render_rgb(rng: np.random.Generator, label_ids: np.ndarray) -> np.ndarray:
    """Colour label-id maps into RGB images with brightness variation and noise.

    Args:
        rng: random generator.
        label_ids: (n, H, W) Cityscapes label ids.

    Returns:
        (n, H, W, 3) uint8 images.
    """
    n, H, _ = label_ids.shape
    brightness = rng.uniform(0.7, 1.1, (n, 1, 1, 1))
    shade = 1.0 - 0.15 * np.linspace(0.0, 1.0, H)[None, :, None, None]  # (1, H, 1, 1)
    rgb = _PALETTE[label_ids] * brightness * shade + rng.normal(0.0, 10.0, label_ids.shape + (3,))
    return np.clip(rgb, 0, 255).astype(np.uint8)  # (n, H, W, 3)


def noisy_bbpred(rng: np.random.Generator, label25: np.ndarray) -> np.ndarray:
    """A black-box-like prediction: shifted, partly confused, salted, void zeroed.

    Args:
        rng: random generator.
        label25: (n, H, W) uint8 labels in the 25-id space (no flips).

    Returns:
        (n, H, W) uint8 predictions with values in 0..19.
    """
    n, H, W = label25.shape
    dy, dx = rng.integers(-1, 2, (2, n))
    rows = np.clip(np.arange(H)[None] + dy[:, None], 0, H - 1)  # (n, H)
    cols = np.clip(np.arange(W)[None] + dx[:, None], 0, W - 1)  # (n, W)
    pred = label25[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]  # (n, H, W)
    Y, X = np.arange(H)[None, :, None], np.arange(W)[None, None, :]
    for _ in range(3):
        y0, x0 = rng.integers(0, H, (n, 1, 1)), rng.integers(0, W, (n, 1, 1))
        h, w = (
            rng.integers(2, max(3, H // 4), (n, 1, 1)),
            rng.integers(2, max(3, W // 4), (n, 1, 1)),
        )
        box = (Y >= y0) & (Y < y0 + h) & (X >= x0) & (X < x0 + w)  # (n, H, W)
        pred = np.where(box, _CONFUSE[pred], pred)
    salt = rng.random(pred.shape) < 0.01
    pred = np.where(salt, rng.integers(1, 20, pred.shape), pred)
    return np.where(label25 == 0, 0, pred).astype(np.uint8)


def _write_split(
    out: str, split: str, n: int, size: tuple[int, int], rng: np.random.Generator
) -> None:
    """Generate and write one split."""
    kinds = ("images", "labels", "probs", "bbpreds", "modes", "mode_probs")
    dirs = make_split_dirs(out, split, kinds)
    probs = mode_probabilities().astype(np.float32)  # (32,)
    for start in tqdm(range(0, n, _CHUNK), desc=f"synthetic cityscapes {split}", leave=False):
        m = min(_CHUNK, n - start)
        label_ids = paint_scenes(rng, m, size)  # (m, H, W)
        images = normalise_image(render_rgb(rng, label_ids))  # (m, 3, H, W)
        label25 = map_label_ids(label_ids)  # (m, H, W)
        labels = build_modes(label25)  # (m, 32, H, W)
        bbpreds = noisy_bbpred(rng, label25)  # (m, H, W)
        for j in range(m):
            i = start + j
            save_item(
                dirs,
                i,
                {
                    "images": images[j],
                    "labels": labels[j],
                    "probs": probs,
                    "bbpreds": bbpreds[j],
                    "mode_probs": probs,
                },
            )
            link_or_copy(
                os.path.join(dirs["labels"], f"{i}.npy"), os.path.join(dirs["modes"], f"{i}.npy")
            )


def make_cityscapes(
    out: str,
    n_train: int = 300,
    n_val: int = 50,
    n_test: int = 50,
    size: tuple[int, int] = (64, 128),
    seed: int = 0,
    overwrite: bool | None = None,
) -> dict[str, int]:
    """Write a Cityscapes-like synthetic dataset in the builder's layout.

    Args:
        out: dataset root (`<out>/{train,val,test}/{images,labels,probs,bbpreds,modes,
            mode_probs}`).
        n_train: training images.
        n_val: validation images.
        n_test: test images.
        size: (H, W) of the scenes; W >= H >= 16.
        seed: random seed; the output is identical for equal arguments.
        overwrite: replace existing split folders; None replaces only an earlier synthetic set.

    Returns:
        split -> number of images written.
    """
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    H, W = (int(v) for v in size)
    if H < 16 or W < H or min(counts.values()) < 0:
        raise ValueError(f"need W >= H >= 16 and non-negative counts, got size={size}, {counts}")
    info = {
        "dataset": "cityscapes",
        "synthetic": True,
        "size": [H, W],
        "seed": seed,
        "counts": counts,
    }
    start_dataset(out, info, overwrite)
    rngs = split_rngs(seed)
    for split in SPLITS:
        _write_split(out, split, counts[split], (H, W), rngs[split])
    return counts
