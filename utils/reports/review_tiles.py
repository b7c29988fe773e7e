"""The image strip of a review card: one small PNG per image, its tiles side by side.

Tiles, left to right: the input; the mean prediction over it; the total uncertainty H[mean] and
its between-sample part, the mutual information, on one fixed scale [0, ln C] nats (so that
cards compare); the modes (MoSE: every expert's mean segmentation, heaviest π first; a
baseline: its samples); for evaluation runs the annotations. Binary problems draw P(foreground)
(modes, mean) and the masks (samples, annotations) in red over the grey image; more classes draw
label maps in the class palette, background clear. The page shows each tile by cropping the one
strip (`review_page`), so a card costs one file and one image request. Small images are stored
at their own resolution (the page enlarges them with sharp pixels), large ones shrunk to fit
TILE_BOX.

Drawing is numpy indexing into colour tables (plus one PIL resize per tile of a large image);
no matplotlib figure.
"""

import os
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image

from utils.reports.figures import label_palette

TILE_BOX = (128, 192)  # largest tile (height, width) in pixels
RED = np.array([255, 38, 26], dtype=np.float32)  # foreground of binary problems


def tile_size(height: int, width: int) -> Tuple[int, int]:
    """Tile (height, width) of an H x W image: fits TILE_BOX; small images grow by an integer
    factor (sharp pixels), large ones shrink.

    Args:
        height, width: H, W of the image.

    Returns:
        (tile height, tile width) in pixels, each at least 1.
    """
    fit = min(TILE_BOX[0] / height, TILE_BOX[1] / width)
    scale = float(int(fit)) if fit >= 1 else fit
    return max(1, round(height * scale)), max(1, round(width * scale))


@lru_cache(maxsize=1)
def _magma() -> np.ndarray:
    from matplotlib import colormaps

    return (255 * colormaps["magma"](np.linspace(0, 1, 256))[:, :3]).astype(np.uint8)  # (256, 3)


def grey_base(image: np.ndarray) -> np.ndarray:
    """An image for display, min-max scaled: (H, W) or (H, W, 3) -> (H, W, 3) float32 in [0, 255].

    Args:
        image: (H, W) grey or (H, W, 3) colour, any range.

    Returns:
        (H, W, 3) float32.
    """
    image = np.asarray(image, dtype=np.float32)
    low, high = float(image.min()), float(image.max())
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    if scaled.ndim == 2:
        scaled = np.repeat(scaled[..., None], 3, axis=2)  # (H, W, 3)
    return 255 * scaled


def heat(values: np.ndarray, vmax: float) -> np.ndarray:
    """A map (H, W) on [0, vmax] in the magma colours -> (H, W, 3) uint8."""
    index = np.clip(np.asarray(values, dtype=np.float32) / vmax, 0, 1) * 255
    return _magma()[index.astype(np.int64)]


def _blend(base: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """base (H, W, 3), colour (H, W, 3) or (3,), alpha (H, W) in [0, 1] -> (H, W, 3) uint8."""
    a = alpha[..., None]  # (H, W, 1)
    return (base * (1 - a) + colour * a).round().astype(np.uint8)


def draw_labels(base: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """A label map (H, W) over the image: red (binary) or the class palette (C, 3), background
    clear."""
    alpha = np.where(labels > 0, 0.55, 0.0)  # (H, W)
    if len(palette) == 2:
        return _blend(base, RED, alpha)
    return _blend(base, palette[labels].astype(np.float32), alpha)


def draw_prob(base: np.ndarray, prob: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class probabilities (C, H, W) over the image: binary P(foreground) as red opacity (up to
    0.85); more classes: the argmax label map in the palette (C, 3)."""
    if len(palette) == 2:
        return _blend(base, RED, 0.85 * np.clip(prob[1], 0, 1))
    return draw_labels(base, prob.argmax(0), palette)


def review_tiles(image: np.ndarray, mean_prob: np.ndarray, entropy_total: np.ndarray,
                 mutual_information: np.ndarray, modes: np.ndarray,
                 annotations: Optional[np.ndarray] = None,
                 palette: Optional[np.ndarray] = None) -> List[np.ndarray]:
    """Every tile of one card at the image's resolution (module docstring).

    Args:
        image: (H, W) or (H, W, 3) display image, any range.
        mean_prob: (C, H, W) mean prediction.
        entropy_total, mutual_information: (H, W) nats.
        modes: (K, C, H, W) expert mean probabilities, or (N, H, W) integer sample labels, in
            the order shown.
        annotations: (M, H, W) integer labels, or None.
        palette: (C, 3) uint8 class colours (`figures.label_palette` of the dataset); None:
            those of C classes without a dataset.

    Returns:
        List of (H, W, 3) uint8 tiles.
    """
    C = mean_prob.shape[0]
    palette = label_palette(C) if palette is None else palette  # (C, 3)
    base = grey_base(image)  # (H, W, 3)
    scale = float(np.log(C))
    tiles = [base.round().astype(np.uint8), draw_prob(base, mean_prob, palette),
             heat(entropy_total, scale), heat(mutual_information, scale)]
    if modes.ndim == 4:
        tiles += [draw_prob(base, prob, palette) for prob in modes]
    else:
        tiles += [draw_labels(base, labels, palette) for labels in modes]
    for labels in [] if annotations is None else annotations:
        tiles.append(draw_labels(base, labels, palette))
    return tiles


def publish(tmp: str, path: Path) -> None:
    """Give a finished temporary file the usual permissions (mkstemp makes it private) and
    rename it to `path`."""
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def save_strip(path: Path, tiles: List[np.ndarray]) -> Tuple[int, int]:
    """Write the tiles side by side as one PNG (atomically): at the image's resolution, or
    shrunk to `tile_size` for images larger than TILE_BOX (the page enlarges small tiles).

    Args:
        path: the PNG to write (its folder is created).
        tiles: (H, W, 3) uint8 tiles of one size.

    Returns:
        (tile height, tile width) the page shows, `tile_size` of the image.
    """
    H, W = tiles[0].shape[:2]
    th, tw = tile_size(H, W)
    if th < H:
        tiles = [np.asarray(Image.fromarray(t).resize((tw, th), Image.BOX)) for t in tiles]
    strip = Image.fromarray(np.concatenate(tiles, axis=1))  # (h, n·w, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        strip.save(tmp, format="PNG", compress_level=3)
        publish(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise
    return th, tw
