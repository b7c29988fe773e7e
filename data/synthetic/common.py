"""Shared helpers of the synthetic generators: per-split seeding and writing items."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from data.npy_folder import SPLITS, prepare_out_root


def split_rngs(seed: int) -> dict[str, np.random.Generator]:
    """Independent random generators for train, val and test derived from one seed.

    Args:
        seed: the generator seed.

    Returns:
        split -> numpy Generator; a split's data does not depend on the other splits' sizes.
    """
    children = np.random.SeedSequence(seed).spawn(len(SPLITS))
    return {split: np.random.default_rng(child) for split, child in zip(SPLITS, children)}


def make_split_dirs(out: str, split: str, kinds: tuple[str, ...]) -> dict[str, str]:
    """Create `<out>/<split>/<kind>` folders.

    Args:
        out: dataset root.
        split: split name.
        kinds: sub-folder names.

    Returns:
        kind -> folder path.
    """
    dirs = {kind: os.path.join(out, split, kind) for kind in kinds}
    for folder in dirs.values():
        os.makedirs(folder, exist_ok=True)
    return dirs


def save_item(dirs: dict[str, str], index: int, arrays: dict[str, np.ndarray]) -> None:
    """Save one item's arrays as `<dirs[kind]>/<index>.npy`.

    Args:
        dirs: kind -> folder.
        index: item number.
        arrays: kind -> array.
    """
    for kind, array in arrays.items():
        np.save(os.path.join(dirs[kind], f"{index}.npy"), array)


def link_or_copy(src: str, dst: str) -> None:
    """Hard-link `src` to `dst` (same bytes, no extra disk), copying where links fail.

    Args:
        src: existing file.
        dst: new path.
    """
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def start_dataset(out: str, info: dict, overwrite: bool | None) -> None:
    """Prepare the output root and record the generator settings in `synthetic_info.json`.

    Args:
        out: dataset root.
        info: settings to record (JSON-serialisable).
        overwrite: replace existing split folders; None replaces them only when they belong to
            an earlier synthetic set (so a real dataset is never deleted by mistake).
    """
    info_path = os.path.join(out, "synthetic_info.json")
    if overwrite is None:
        overwrite = os.path.isfile(info_path)
    prepare_out_root(out, overwrite)
    with open(info_path, "w") as f:
        json.dump(info, f, indent=1)
