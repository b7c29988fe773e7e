"""Helpers for the processed on-disk layout `<root>/<split>/<kind>/<i>.npy`.

Files are listed in NUMERIC order 0, 1, 2, ...; the authors' loaders list them
lexicographically (0, 1, 10, 100, ...), which only changes which images share a batch.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

SPLITS = ("train", "val", "test")


def require_dir(path: str, build_hint: str) -> str:
    """Return `path` if it is a directory, else raise an actionable FileNotFoundError.

    Args:
        path: directory that must exist.
        build_hint: the command that builds it, quoted in the message.

    Returns:
        The same path.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"missing folder {path!r}; build it with: {build_hint}")
    return path


def list_numbered(folder: str) -> list[str]:
    """List `<i>.npy` files of a folder in numeric order.

    Args:
        folder: directory holding files named `0.npy`, `1.npy`, ...

    Returns:
        Full paths sorted by their integer stem.
    """
    stems = []
    for name in os.listdir(folder):
        if not name.endswith(".npy"):
            continue
        stem = name[: -len(".npy")]
        if not stem.isdigit():
            raise ValueError(f"unexpected file {os.path.join(folder, name)!r}: expected <i>.npy")
        stems.append(int(stem))
    stems.sort()
    return [os.path.join(folder, f"{i}.npy") for i in stems]


def npy_shape(path: str) -> tuple[int, ...]:
    """Read the array shape from a .npy header without loading the data.

    Args:
        path: a .npy file.

    Returns:
        The stored shape.

    Raises:
        ValueError: naming the file when it is not a .npy file or holds less data than its
            header announces (a truncated write).
    """
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version in readers:
                shape, _, dtype = readers[version](f)
                data = 0 if dtype.hasobject else int(np.prod(shape)) * dtype.itemsize
                needed = f.tell() + data
            else:  # rarer header versions: let numpy parse it (mmap touches no data pages)
                shape, needed = np.load(path, mmap_mode="r").shape, 0
    except ValueError as err:
        raise ValueError(f"{path!r} is not a readable .npy file: {err}") from None
    size = os.path.getsize(path)
    if size < needed:
        raise ValueError(f"{path!r} is truncated ({size} bytes, its header needs {needed}): "
                         "rebuild the dataset")
    return tuple(shape)


def check_same_count(paths_a: list[str], paths_b: list[str], folder_a: str, folder_b: str):
    """Raise ValueError unless both folders hold the same numbered files.

    Args:
        paths_a: numbered files of the first folder.
        paths_b: numbered files of the second folder.
        folder_a: first folder (for the message).
        folder_b: second folder (for the message).
    """
    if len(paths_a) != len(paths_b):
        raise ValueError(
            f"{folder_a!r} holds {len(paths_a)} files but {folder_b!r} holds {len(paths_b)}; "
            "rebuild the dataset"
        )
    names_a = [os.path.basename(p) for p in paths_a]
    names_b = [os.path.basename(p) for p in paths_b]
    if names_a != names_b:
        missing = sorted(set(names_a) ^ set(names_b))[:3]
        raise ValueError(f"{folder_a!r} and {folder_b!r} are not numbered alike (e.g. {missing})")


def save_npy(folder: str, index: int, array: np.ndarray) -> None:
    """Save `array` as `<folder>/<index>.npy`, creating the folder.

    Args:
        folder: target directory.
        index: item number.
        array: the array to store.
    """
    os.makedirs(folder, exist_ok=True)
    np.save(os.path.join(folder, f"{index}.npy"), array)


def prepare_out_root(out: str, overwrite: bool) -> None:
    """Create `out`, refusing to mix a new build with old split folders unless `overwrite`.

    Args:
        out: output root of a processed dataset.
        overwrite: delete existing `<out>/{train,val,test}` folders (and nothing else).
    """
    existing = [os.path.join(out, s) for s in SPLITS if os.path.exists(os.path.join(out, s))]
    if existing and not overwrite:
        raise ValueError(f"{existing[0]!r} already exists; pass --overwrite to replace the splits")
    for path in existing:
        shutil.rmtree(path)
    os.makedirs(out, exist_ok=True)


def numbered_split(
    root: str, split: str, kinds: tuple[str, ...], build_hint: str
) -> dict[str, list[str]]:
    """List the numbered files of several kinds of one split and check they correspond.

    Args:
        root: dataset root.
        split: 'train', 'val' or 'test'.
        kinds: sub-folder names, e.g. ('images', 'labels'); the first one sets the numbering.
        build_hint: the command that builds the dataset, for missing-folder messages.

    Returns:
        kind -> file paths in numeric order.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"data folder {root!r} not found; build it with: {build_hint}")
    require_dir(os.path.join(root, split), build_hint)
    paths = {}
    for kind in kinds:
        folder = require_dir(os.path.join(root, split, kind), build_hint)
        paths[kind] = list_numbered(folder)
        if kind == kinds[0] and not paths[kind]:
            raise ValueError(f"{folder!r} holds no <i>.npy files; build the dataset with: "
                             f"{build_hint}")
        if kind != kinds[0]:
            first = os.path.join(root, split, kinds[0])
            check_same_count(paths[kinds[0]], paths[kind], first, folder)
    return paths


def check_shape(path: str, ok: bool, expected: str) -> None:
    """Raise ValueError naming `path` when its shape check failed.

    Args:
        path: the file that was checked.
        ok: result of the check.
        expected: description of the expected shape.
    """
    if not ok:
        raise ValueError(f"{path!r} has shape {npy_shape(path)}, expected {expected}")


def load_true_modes(split_dir: str, item_path: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Read `modes/<i>.npy` and `mode_probs/<i>.npy` beside the item's file, if present.

    Args:
        split_dir: `<root>/<split>`.
        item_path: path of the item's image file (its stem names the item).

    Returns:
        (modes (T, H, W) int64, probs (T,) float64), or None when the split has no modes.
    """
    name = os.path.basename(item_path)
    modes_path = os.path.join(split_dir, "modes", name)
    probs_path = os.path.join(split_dir, "mode_probs", name)
    if not (os.path.isfile(modes_path) and os.path.isfile(probs_path)):
        return None
    return np.load(modes_path).astype(np.int64), np.load(probs_path).astype(np.float64)


def write_manifest(out: str, manifest: dict) -> None:
    """Write `<out>/split_manifest.json`.

    Args:
        out: dataset root.
        manifest: JSON-serialisable description of the build.
    """
    with open(os.path.join(out, "split_manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
