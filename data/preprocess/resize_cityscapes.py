"""Cityscapes step 1: resize the raw PNGs to quarter resolution and store them as npy.

    python -m data.preprocess.resize_cityscapes --raw CITYSCAPES_ROOT --out PROCESSED \
        [--size 256 512]

Reads `RAW/leftImg8bit/{train,val}/<city>/<base>_leftImg8bit.png` and the matching
`RAW/gtFine/{train,val}/<city>/<base>_gtFine_labelIds.png`; writes
`PROCESSED/leftImg8bit/{train,val}/<city>/<base>_leftImg8bit.npy` ((H, W, 3) uint8) and
`PROCESSED/gtFine/{train,val}/<city>/<base>_gtFine_labelIds.npy` ((H, W) uint8 label ids),
keeping cities and file stems. Resizing uses Pillow: BILINEAR for images (Pillow widens the
filter when shrinking, i.e. it antialiases) and NEAREST for labels. The default size is
256 x 512, a quarter of the 1024 x 2048 originals; `--size` exists for tests and other setups.
Then run `python -m data.preprocess.build_cityscapes_layout` (step 2).
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys

import numpy as np
from PIL import Image
from tqdm import tqdm

logger = logging.getLogger(__name__)

OFFICIAL_SPLITS = ("train", "val")
IMAGE_SUFFIX = "_leftImg8bit"
LABEL_SUFFIX = "_gtFine_labelIds"
DEFAULT_SIZE = (256, 512)


def find_pairs(root: str, split: str, ext: str,
               missing_hint: str) -> list[tuple[str, str, str, str]]:
    """List the image/label file pairs of one official split, sorted by city and stem.

    Args:
        root: folder holding `leftImg8bit/` and `gtFine/` (raw PNGs or processed npy files).
        split: 'train' or 'val'.
        ext: file extension, '.png' or '.npy'.
        missing_hint: what to tell the user when the image folder is absent.

    Returns:
        (city, base stem, image path, label path) tuples.
    """
    image_root = os.path.join(root, "leftImg8bit", split)
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"missing folder {image_root!r}{missing_hint}")
    pairs = []
    for image_path in sorted(glob.glob(os.path.join(image_root, "*", f"*{IMAGE_SUFFIX}{ext}"))):
        city = os.path.basename(os.path.dirname(image_path))
        base = os.path.basename(image_path)[: -len(f"{IMAGE_SUFFIX}{ext}")]
        label_path = os.path.join(root, "gtFine", split, city, f"{base}{LABEL_SUFFIX}{ext}")
        if not os.path.isfile(label_path):
            raise FileNotFoundError(f"no label {label_path!r} for image {image_path!r}")
        pairs.append((city, base, image_path, label_path))
    return pairs


def find_raw_pairs(raw: str, split: str) -> list[tuple[str, str, str, str]]:
    """Raw Cityscapes PNG pairs of one official split (see `find_pairs`)."""
    pairs = find_pairs(raw, split, ".png", " (from Cityscapes leftImg8bit_trainvaltest.zip)")
    if not pairs:
        raise FileNotFoundError(
            f"no *{IMAGE_SUFFIX}.png files under {os.path.join(raw, 'leftImg8bit', split)!r}")
    return pairs


def resize_image(path: str, size: tuple[int, int]) -> np.ndarray:
    """Load an RGB PNG and resize it bilinearly.

    Args:
        path: image file.
        size: (H, W) target.

    Returns:
        (H, W, 3) uint8 array.
    """
    with Image.open(path) as img:
        img = img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(img, dtype=np.uint8)


def resize_label(label: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an integer id map with nearest-neighbour sampling.

    Args:
        label: (h, w) integer array with values in 0..255.
        size: (H, W) target.

    Returns:
        (H, W) uint8 array.
    """
    label = np.asarray(label)
    if label.min() < 0 or label.max() > 255:
        raise ValueError(f"id map values must fit in 0..255, found {label.min()}..{label.max()}")
    img = Image.fromarray(label.astype(np.uint8))  # 2-D uint8 -> mode "L"
    return np.asarray(img.resize((size[1], size[0]), Image.NEAREST), dtype=np.uint8)


def load_label_png(path: str) -> np.ndarray:
    """Read a label-id PNG (8- or 16-bit, grey or palette) as integer ids.

    Args:
        path: label file.

    Returns:
        (h, w) int64 array.
    """
    with Image.open(path) as img:
        array = np.asarray(img)
    if array.ndim != 2:
        raise ValueError(f"{path!r} has shape {array.shape}; expected a single-channel id map")
    return array.astype(np.int64)


def preprocess(raw: str, out: str, size: tuple[int, int] = DEFAULT_SIZE) -> int:
    """Resize every official train/val image and label of a Cityscapes tree to npy.

    Args:
        raw: Cityscapes root.
        out: processed root.
        size: (H, W) target resolution.

    Returns:
        Number of image/label pairs written.
    """
    pairs = [(split,) + p for split in OFFICIAL_SPLITS for p in find_raw_pairs(raw, split)]
    for split, city, base, image_path, label_path in tqdm(pairs, desc="resize cityscapes"):
        image_dir = os.path.join(out, "leftImg8bit", split, city)
        label_dir = os.path.join(out, "gtFine", split, city)
        os.makedirs(image_dir, exist_ok=True)
        os.makedirs(label_dir, exist_ok=True)
        image = resize_image(image_path, size)
        label = resize_label(load_label_png(label_path), size)
        np.save(os.path.join(image_dir, f"{base}{IMAGE_SUFFIX}.npy"), image)
        np.save(os.path.join(label_dir, f"{base}{LABEL_SUFFIX}.npy"), label)
    logger.info("resized %d Cityscapes pairs to %s in %s", len(pairs), size, out)
    return len(pairs)


def add_size_argument(parser: argparse.ArgumentParser) -> None:
    """Add the shared `--size H W` option to a parser."""
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=list(DEFAULT_SIZE),
        metavar=("H", "W"),
        help="target resolution (default 256 512)",
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", required=True, help="Cityscapes root (leftImg8bit/, gtFine/)")
    parser.add_argument("--out", required=True, help="processed output root")
    add_size_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        preprocess(args.raw, args.out, tuple(args.size))
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
