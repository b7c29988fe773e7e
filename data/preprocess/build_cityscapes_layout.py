"""Cityscapes step 2: city splits, 25-id labels, the 32 modes, normalised images, black-box preds.

    python -m data.preprocess.build_cityscapes_layout --processed PROCESSED --out OUT \
        [--bbpreds BB_ROOT] [--bbpred-format labelids|trainids] [--overwrite]

Input: the output of `python -m data.preprocess.resize_cityscapes` (step 1) and, optionally, the
CAR authors' black-box predictions
`BB_ROOT/{train,val}/<city>/bb_preds/<base>_prior_preds_trainIds.npy`.

Splits (docs/datasets.md): train = official train minus darmstadt, monchengladbach, ulm; val = those
three cities; test = official val. Items are numbered in (city, file stem) order.

Output `<out>/{train,val,test}/`:
- `images/<i>.npy`: (3, H, W) float32, already /255 and standardised per channel with the
  Cityscapes mean/std (`data.cityscapes_labels.normalise_image`).
- `labels/<i>.npy`: (32, H, W) uint8, the 32 flip modes in the 25-id space.
- `probs/<i>.npy`: (32,) float32 mode probabilities (the same for every image).
- `bbpreds/<i>.npy` (only with `--bbpreds`): (H, W) uint8 black-box prediction mapped to the
  25-id space (no flips) and set to 0 where the label is void. By default the files are taken
  to hold Cityscapes label ids (0..33), as the authors' pipeline maps them like the labels;
  `--bbpred-format trainids` is for files with the usual 19 train ids (0..18, 255 ignore).
  Predictions at another resolution are resized with nearest-neighbour sampling.
- `<out>/split_manifest.json`: per split the cities and the `city/base` stem of every item.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import numpy as np
from tqdm import tqdm

from data.cityscapes_labels import (
    build_modes,
    map_label_ids,
    map_train_ids19,
    mode_probabilities,
    normalise_image,
)
from data.npy_folder import SPLITS, prepare_out_root, save_npy, write_manifest
from data.preprocess.resize_cityscapes import find_pairs, resize_label

logger = logging.getLogger(__name__)

VAL_CITIES = ("darmstadt", "monchengladbach", "ulm")
BBPRED_FORMATS = ("labelids", "trainids")
_STEP1 = "python -m data.preprocess.resize_cityscapes --raw CITYSCAPES_ROOT --out {processed}"


def find_processed_pairs(processed: str, official_split: str) -> list[tuple[str, str, str, str]]:
    """Processed npy pairs of one official split, sorted by city and stem (see `find_pairs`)."""
    return find_pairs(processed, official_split, ".npy",
                      f"; build it with: {_STEP1.format(processed=processed)}")


def assign_splits(processed: str) -> dict[str, list[tuple[str, str, str, str, str]]]:
    """Split the processed pairs by city.

    Args:
        processed: root written by `data.preprocess.resize_cityscapes`.

    Returns:
        {'train', 'val', 'test'} -> (official split, city, base, image path, label path) tuples.
    """
    splits = {s: [] for s in SPLITS}
    for city, base, image_path, label_path in find_processed_pairs(processed, "train"):
        target = "val" if city in VAL_CITIES else "train"
        splits[target].append(("train", city, base, image_path, label_path))
    for city, base, image_path, label_path in find_processed_pairs(processed, "val"):
        splits["test"].append(("val", city, base, image_path, label_path))
    return splits


def bbpred_path(bb_root: str, official_split: str, city: str, base: str) -> str:
    """Path of the CAR black-box prediction for one image.

    Args:
        bb_root: root of the black-box predictions.
        official_split: 'train' or 'val'.
        city: city name.
        base: file stem without suffix, e.g. 'aachen_000000_000019'.

    Returns:
        `<bb_root>/<split>/<city>/bb_preds/<base>_prior_preds_trainIds.npy`.
    """
    return os.path.join(
        bb_root, official_split, city, "bb_preds", f"{base}_prior_preds_trainIds.npy"
    )


def convert_bbpred(pred: np.ndarray, label25: np.ndarray, fmt: str, name: str) -> np.ndarray:
    """Map a black-box prediction to the 25-id space and zero it where the label is void.

    Args:
        pred: (h, w) integer prediction (label ids or 19-class train ids, see `fmt`).
        label25: (H, W) uint8 label in the 25-id space (no flips).
        fmt: 'labelids' or 'trainids'.
        name: file name for messages.

    Returns:
        (H, W) uint8 prediction with values in 0..19.
    """
    pred = np.asarray(pred)
    if pred.ndim != 2:
        raise ValueError(f"black-box prediction {name!r} has shape {pred.shape}, expected (H, W)")
    pred = np.rint(pred).astype(np.int64)
    if fmt == "labelids" and (pred.min() < 0 or pred.max() > 33):
        raise ValueError(
            f"{name!r} holds values outside 0..33, not Cityscapes label ids; "
            "pass --bbpred-format trainids for 19-class train-id files"
        )
    if pred.shape != label25.shape:
        pred = resize_label(np.where((pred < 0) | (pred > 255), 255, pred), label25.shape)
    mapped = map_label_ids(pred) if fmt == "labelids" else map_train_ids19(pred)
    return np.where(label25 == 0, 0, mapped).astype(np.uint8)


def convert_pair(image_path: str, label_path: str) -> tuple[np.ndarray, np.ndarray]:
    """Load one processed pair as the normalised image and the 25-id base label.

    Args:
        image_path: (H, W, 3) uint8 npy.
        label_path: (H, W) label-id npy.

    Returns:
        image (3, H, W) float32, label (H, W) uint8 in the 25-id space (no flips).
    """
    rgb = np.load(image_path)
    label_ids = np.load(label_path)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or label_ids.shape != rgb.shape[:2]:
        raise ValueError(
            f"{image_path!r} {rgb.shape} / {label_path!r} {label_ids.shape}: "
            "expected (H, W, 3) and (H, W)"
        )
    try:
        label25 = map_label_ids(label_ids)
    except ValueError as err:
        raise ValueError(f"{label_path!r}: {err}") from None
    return normalise_image(rgb), label25


def _write_split(out: str, split: str, items: list, bb_root: str | None, fmt: str) -> None:
    """Write images, the 32-mode labels, probabilities and (optionally) bbpreds of one split."""
    folder = os.path.join(out, split)
    kinds = ("images", "labels", "probs") + (("bbpreds",) if bb_root else ())
    for kind in kinds:
        os.makedirs(os.path.join(folder, kind), exist_ok=True)
    probs = mode_probabilities().astype(np.float32)  # (32,)
    for i, (official, city, base, image_path, label_path) in enumerate(
        tqdm(items, desc=f"build {split}")
    ):
        image, label25 = convert_pair(image_path, label_path)
        save_npy(os.path.join(folder, "images"), i, image)
        save_npy(os.path.join(folder, "labels"), i, build_modes(label25))  # (32, H, W)
        save_npy(os.path.join(folder, "probs"), i, probs)
        if bb_root:
            path = bbpred_path(bb_root, official, city, base)
            bbpred = convert_bbpred(np.load(path), label25, fmt, path)
            save_npy(os.path.join(folder, "bbpreds"), i, bbpred)


def _check_bbpreds(splits: dict, bb_root: str) -> None:
    """Fail before writing anything if a black-box prediction file is missing."""
    if not os.path.isdir(bb_root):
        raise FileNotFoundError(f"black-box prediction folder {bb_root!r} not found")
    for items in splits.values():
        for official, city, base, _, _ in items:
            path = bbpred_path(bb_root, official, city, base)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"missing black-box prediction {path!r}")


def _manifest(splits: dict, bbpreds: str | None, bbpred_format: str) -> dict:
    """The split manifest: per split the cities and the `city/base` stem of every item."""
    return {
        "dataset": "cityscapes",
        "val_cities": list(VAL_CITIES),
        "bbpreds": bbpreds is not None,
        "bbpred_format": bbpred_format if bbpreds is not None else None,
        "image_storage": "(3, H, W) float32, /255 then per-channel (x - mean) / std",
        "splits": {
            s: {
                "num_images": len(items),
                "cities": sorted({item[1] for item in items}),
                "items": [f"{item[1]}/{item[2]}" for item in items],
            }
            for s, items in splits.items()
        },
    }


def build_cityscapes(
    processed: str,
    out: str,
    bbpreds: str | None = None,
    bbpred_format: str = "labelids",
    overwrite: bool = False,
) -> dict:
    """Build the multimodal Cityscapes layout from the processed (resized) npy files.

    Args:
        processed: root written by `data.preprocess.resize_cityscapes`.
        out: output root (`<out>/{train,val,test}/{images,labels,probs[,bbpreds]}`).
        bbpreds: root of the black-box predictions, or None to build without them.
        bbpred_format: 'labelids' (authors' files) or 'trainids' (19 train ids, 255 ignore).
        overwrite: replace existing split folders under `out`.

    Returns:
        The manifest dict (also written to `<out>/split_manifest.json`).
    """
    if bbpred_format not in BBPRED_FORMATS:
        raise ValueError(f"bbpred_format must be one of {BBPRED_FORMATS}, got {bbpred_format!r}")
    splits = assign_splits(processed)
    if not any(splits.values()):
        raise FileNotFoundError(f"no processed images under {processed!r}")
    if bbpreds is not None:
        _check_bbpreds(splits, bbpreds)
    prepare_out_root(out, overwrite)
    for split in SPLITS:
        _write_split(out, split, splits[split], bbpreds, bbpred_format)
    manifest = _manifest(splits, bbpreds, bbpred_format)
    write_manifest(out, manifest)
    logger.info("Cityscapes built in %s: %s", out, {s: len(v) for s, v in splits.items()})
    return manifest


def add_bbpred_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the shared `--bbpreds` / `--bbpred-format` options to a parser."""
    parser.add_argument("--bbpreds", default=None, help="root of the black-box predictions")
    parser.add_argument(
        "--bbpred-format",
        default="labelids",
        choices=BBPRED_FORMATS,
        help="what the prediction files hold (default: Cityscapes label ids)",
    )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processed", required=True, help="output of step 1 (resize_cityscapes)")
    parser.add_argument("--out", required=True, help="output root")
    add_bbpred_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing splits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        build_cityscapes(args.processed, args.out, args.bbpreds, args.bbpred_format, args.overwrite)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
