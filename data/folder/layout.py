"""Reading a dataset in the folder layout: file names, images, annotations, one split's items.

The lowest part of `data.folder`: it imports nothing else of the package (the layout itself is
described in the package docstring).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from data.npy_folder import SPLITS

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".npy")
ANNOTATION_EXT = ".png"
CHECK_HINT = "python -m data.folder check {root} --n-classes C"
# PIL modes read as one channel of numbers; P and colour modes are converted to RGB.
_GREY_MODES = ("1", "L", "I", "I;16", "I;16B", "I;16L", "F")
_LABEL_MODES = ("1", "L", "P", "I", "I;16", "I;16B", "I;16L")
_READ_ERRORS = (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError)


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value ('img2' before 'img10')."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _pil_array(path: str, modes: tuple[str, ...] | None) -> np.ndarray:
    """Decode an image file with PIL; `modes` restricts the accepted modes (None: any)."""
    with Image.open(path) as img:
        img.load()
        if modes is not None and img.mode not in modes:
            raise ValueError(
                f"PNG mode {img.mode} is not a single-channel label map; save it as "
                "an 8-bit grey (mode L) or palette (mode P) PNG of class indices"
            )
        if modes is None and img.mode not in _GREY_MODES + ("RGB", "RGBA", "LA"):
            img = img.convert("RGBA" if img.mode == "PA" else "RGB")
        return np.array(img)


def _npy_image(path: str) -> np.ndarray:
    """Load an npy image as (H, W, C)."""
    array = np.load(path, allow_pickle=False)
    if array.dtype.kind not in "buif":
        raise ValueError(f"dtype {array.dtype} is not numeric")
    if array.ndim == 2:
        return array[..., None]
    if array.ndim == 3 and array.shape[2] <= 4:
        return array
    if array.ndim == 3 and array.shape[0] <= 4:
        return array.transpose(1, 2, 0)
    raise ValueError(f"shape {array.shape} is not (H, W), (H, W, C) or (C, H, W) with C <= 4")


def read_image(path: str) -> np.ndarray:
    """Read an image file as it is stored (no standardisation).

    Args:
        path: a .png, .jpg, .jpeg or .npy file.

    Returns:
        (C, H, W) float32 array.

    Raises:
        ValueError: naming the file when it cannot be read or holds non-finite values.
    """
    try:
        if path.lower().endswith(".npy"):
            array = _npy_image(path)  # (H, W, C)
        else:
            array = _pil_array(path, None)
            array = array[..., None] if array.ndim == 2 else array  # (H, W, C)
    except _READ_ERRORS as err:
        raise ValueError(f"{path}: unreadable image ({err})") from None
    image = np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32)  # (C, H, W)
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"{path}: empty image of shape {array.shape}")
    if not np.isfinite(image).all():
        raise ValueError(f"{path}: holds NaN or infinite values")
    return image


def read_annotation(path: str) -> np.ndarray:
    """Read an annotation PNG as a label map.

    Args:
        path: a single-channel .png file of class indices.

    Returns:
        (H, W) int64 array.

    Raises:
        ValueError: naming the file when it cannot be read or is not a single-channel map.
    """
    try:
        return _pil_array(path, _LABEL_MODES).astype(np.int64)
    except _READ_ERRORS as err:
        raise ValueError(f"{path}: unreadable annotation ({err})") from None


@dataclass
class FolderItem:
    """One image of a split: its id, image file and annotation files (sorted by rater)."""

    id: str
    image: str
    annotations: list[str] = field(default_factory=list)


def _listing(folder: str) -> list[str]:
    """Visible entries of a folder (hidden files such as .DS_Store are skipped)."""
    return sorted((n for n in os.listdir(folder) if not n.startswith(".")), key=natural_key)


def _images(folder: str, problems: list[str]) -> dict[str, str]:
    """id -> image path; unsupported files and duplicate ids go to `problems`."""
    images: dict[str, str] = {}
    for name in _listing(folder):
        path = os.path.join(folder, name)
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTS or not os.path.isfile(path):
            problems.append(f"{path}: not an image file (expected {'/'.join(IMAGE_EXTS)})")
        elif stem in images:
            problems.append(f"{path}: duplicate id {stem!r} (also {images[stem]})")
        else:
            images[stem] = path
    return images


def _annotations(folder: str, problems: list[str]) -> list[str]:
    """Annotation PNGs of one image folder; other files go to `problems`."""
    paths = []
    for name in _listing(folder):
        path = os.path.join(folder, name)
        if name.lower().endswith(ANNOTATION_EXT) and os.path.isfile(path):
            paths.append(path)
        else:
            problems.append(f"{path}: not an annotation (expected <rater>.png label maps)")
    return paths


def scan_split(root: str, split: str) -> tuple[list[FolderItem], list[str]]:
    """List the items of one split without reading any file.

    Args:
        root: dataset root.
        split: 'train', 'val' or 'test'.

    Returns:
        The usable items (an image with at least one annotation) in natural id order, and the
        layout problems found, each naming its file or folder.
    """
    split_dir = os.path.join(root, split)
    dirs = {kind: os.path.join(split_dir, kind) for kind in ("images", "annotations")}
    missing = [d for d in dirs.values() if not os.path.isdir(d)]
    if missing:
        return [], [f"{d}: missing folder" for d in missing]
    problems: list[str] = []
    images = _images(dirs["images"], problems)
    annotated = {}
    for name in _listing(dirs["annotations"]):
        path = os.path.join(dirs["annotations"], name)
        if not os.path.isdir(path):
            problems.append(f"{path}: not a folder (expected annotations/<id>/<rater>.png)")
        elif name not in images:
            problems.append(f"{path}: annotations of an image that does not exist")
        else:
            annotated[name] = _annotations(path, problems)
    items = []
    for image_id, path in images.items():
        if not annotated.get(image_id):
            where = os.path.join(dirs["annotations"], image_id)
            problems.append(f"{path}: missing annotations (no {where}/<rater>.png)")
        else:
            items.append(FolderItem(image_id, path, annotated[image_id]))
    if not images:
        problems.append(f"{dirs['images']}: empty split (no images)")
    return items, problems


def image_channels(root: str) -> int | None:
    """Channel count of a dataset's first readable image (train, then val, then test).

    Args:
        root: dataset root.

    Returns:
        The channel count, or None when no image can be read.
    """
    for split in SPLITS:
        folder = os.path.join(root, split, "images")
        if not os.path.isdir(folder):
            continue
        for name in _listing(folder):
            if os.path.splitext(name)[1].lower() in IMAGE_EXTS:
                try:
                    return read_image(os.path.join(folder, name)).shape[0]
                except ValueError:
                    continue
    return None
