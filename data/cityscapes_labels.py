"""Multimodal Cityscapes label space: the 25-id mapping, the five flip classes and the 32 modes.

The one place that defines these constants (docs/datasets.md); the builder
(`data/preprocess/cityscapes_data_loader.py`), the synthetic generator and the loaders import
them from here.

- Cityscapes label ids (0..33, as stored in `*_gtFine_labelIds.png`) map to 25 ids: 0 void
  (every class Cityscapes ignores in evaluation), the 19 evaluated classes as their usual train
  id + 1 (road 1 ... bicycle 19), and the flipped copies sidewalk_2 20, person_2 21, car_2 22,
  vegetation_2 23, road_2 24.
- Mode m (0..31) flips flip class i (order sidewalk, person, car, vegetation, road) iff bit 4 - i
  of m is set; its probability is the product of p_i (flipped) or 1 - p_i (kept).
"""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 25
NUM_MODES = 32
VOID_ID = 0
EVAL_CLASS_IDS = (2, 12, 14, 9, 1, 20, 21, 22, 23, 24)

CLASS_NAMES = (
    "void",
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
    "sidewalk_2",
    "person_2",
    "car_2",
    "vegetation_2",
    "road_2",
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

# Flip classes in mode-bit order (bit 4 - i of the mode index flips class i).
FLIP_CLASSES = (2, 12, 14, 9, 1)  # sidewalk, person, car, vegetation, road
FLIPPED_IDS = (20, 21, 22, 23, 24)
FLIP_PROBS = (8 / 17, 7 / 17, 6 / 17, 5 / 17, 4 / 17)

IMAGE_MEAN = (0.28689554, 0.32513303, 0.28389177)
IMAGE_STD = (0.18696375, 0.19017339, 0.18720214)


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
