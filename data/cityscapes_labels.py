"""Multimodal Cityscapes label space: the mapping to the 25 ids, the 32 modes, the image
normalisation (docs/datasets.md). The ids, names, flip classes and statistics themselves are
the plain constants of `data.cityscapes_classes`; the builder
(`data/preprocess/build_cityscapes_layout.py`), the synthetic generator and the loaders map with
the functions here.

- Cityscapes label ids (0..33, as stored in `*_gtFine_labelIds.png`) map to the 25 ids
  (`data.cityscapes_classes`); every class Cityscapes ignores in evaluation becomes void (0).
- Mode m (0..31) flips flip class i (order sidewalk, person, car, vegetation, road) iff bit 4 - i
  of m is set; its probability is the product of p_i (flipped) or 1 - p_i (kept).
"""

from __future__ import annotations

import numpy as np

from data.cityscapes_classes import (
    FLIP_CLASSES,
    FLIP_PROBS,
    FLIPPED_IDS,
    IMAGE_MEAN,
    IMAGE_STD,
    NUM_MODES,
)

# Cityscapes label id -> our id, for the 19 evaluated classes; every other id is void.
_EVALUATED_LABEL_IDS = {
    7: 1,
    8: 2,
    11: 3,
    12: 4,
    13: 5,
    17: 6,
    19: 7,
    20: 8,
    21: 9,
    22: 10,
    23: 11,
    24: 12,
    25: 13,
    26: 14,
    27: 15,
    28: 16,
    31: 17,
    32: 18,
    33: 19,
}
MAX_LABEL_ID = 33

def label_id_lut() -> np.ndarray:
    """Lookup table from Cityscapes label ids to the 25 ids.

    Returns:
        (256,) uint8 array; entries beyond label id 33 are void (0).
    """
    lut = np.zeros(256, dtype=np.uint8)
    for label_id, our_id in _EVALUATED_LABEL_IDS.items():
        lut[label_id] = our_id
    return lut


def map_label_ids(label_ids: np.ndarray, *, strict: bool = True) -> np.ndarray:
    """Map a Cityscapes label-id map to the 25-id space (no flips).

    Args:
        label_ids: integer array of any shape holding Cityscapes label ids.
        strict: raise on values outside 0..33 (e.g. a trainIds or colour PNG given by mistake);
            when False they map to void.

    Returns:
        uint8 array of the same shape with values in 0..19.
    """
    values = np.asarray(label_ids).astype(np.int64)
    bad = (values < 0) | (values > MAX_LABEL_ID)
    if strict and bad.any():
        raise ValueError(
            f"label ids must lie in 0..{MAX_LABEL_ID} (Cityscapes *_gtFine_labelIds), found "
            f"{sorted(np.unique(values[bad]).tolist())[:5]}; is this a trainIds or colour map?"
        )
    return label_id_lut()[np.where(bad, 0, values)]


def map_train_ids19(train_ids: np.ndarray) -> np.ndarray:
    """Map the usual 19-class train ids (0..18, 255 ignore) to the 25-id space.

    Args:
        train_ids: integer array of any shape.

    Returns:
        uint8 array of the same shape: train id t -> t + 1, anything else -> void (0).
    """
    values = np.asarray(train_ids).astype(np.int64)
    valid = (values >= 0) & (values <= 18)
    return np.where(valid, values + 1, 0).astype(np.uint8)


def mode_flip_table() -> np.ndarray:
    """Which flip classes each mode flips.

    Returns:
        (32, 5) bool array; entry [m, i] is True iff bit 4 - i of m is set.
    """
    modes = np.arange(NUM_MODES)[:, None]  # (32, 1)
    bits = 4 - np.arange(len(FLIP_CLASSES))[None, :]  # (1, 5)
    return ((modes >> bits) & 1).astype(bool)  # (32, 5)


def mode_probabilities() -> np.ndarray:
    """Probability of each of the 32 modes (product of p or 1 - p over the flip classes).

    Returns:
        (32,) float64 array summing to 1.
    """
    flips = mode_flip_table()  # (32, 5)
    p = np.asarray(FLIP_PROBS, dtype=np.float64)[None, :]  # (1, 5)
    return np.where(flips, p, 1.0 - p).prod(axis=1)  # (32,)


def build_modes(label: np.ndarray) -> np.ndarray:
    """Build the 32 flipped label maps of one or many base label maps.

    Args:
        label: (..., H, W) integer array in the 25-id space without flips.

    Returns:
        (..., 32, H, W) uint8 array; mode m replaces flip class i by its copy iff bit 4 - i of
        m is set.
    """
    base = np.asarray(label).astype(np.uint8)[..., None, :, :]  # (..., 1, H, W)
    modes = np.repeat(base, NUM_MODES, axis=-3)  # (..., 32, H, W)
    flips = mode_flip_table()  # (32, 5)
    for i, (cls, new_id) in enumerate(zip(FLIP_CLASSES, FLIPPED_IDS)):
        flip_here = flips[:, i][:, None, None] & (base == cls)  # (..., 32, H, W)
        modes[flip_here] = new_id
    return modes


def normalise_image(rgb: np.ndarray) -> np.ndarray:
    """Scale an RGB uint8 image to [0, 1] and standardise each channel with the Cityscapes stats.

    Args:
        rgb: (H, W, 3) or (..., H, W, 3) uint8 array.

    Returns:
        (3, H, W) (or (..., 3, H, W)) float32 array.
    """
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    mean = np.asarray(IMAGE_MEAN, dtype=np.float32)
    std = np.asarray(IMAGE_STD, dtype=np.float32)
    x = (x - mean) / std  # (..., H, W, 3)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))  # (..., 3, H, W)
