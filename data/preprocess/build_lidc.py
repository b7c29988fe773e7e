"""Build the LIDC-IDRI training data from the Probabilistic-U-Net 2D crops pickle.

    python -m data.preprocess.build_lidc --pickle data_lidc.pickle --out ../data/lidc_npy \
        [--hdf5 ../data/lidc.hdf5] [--overwrite]

Input: a pickled dict key -> {'image': float (H, W) in [0, 1], 'masks': 4 binary (H, W),
'series_uid': str} (H = W = 128 for the public file, 15,096 crops). Only unpickle files you
trust: unpickling can run arbitrary code.

Output (docs/datasets.md):
- `<out>/{train,val,test}/images/<i>.npy`: crop - 0.5, float32 (H, W);
  `<out>/{train,val,test}/labels/<i>.npy`: the four masks stacked last, uint8 (H, W, 4);
  i counts from 0 in pickle order within each split.
- `<out>/split_manifest.json`: per split the sorted series uids, image and series counts and a
  sha256 over, for each image in order, the bytes of its little-endian float32 image (C order)
  followed by the bytes of its uint8 labels. Two builds with equal digests hold the same data.
- optional HDF5 (`--hdf5`): groups train/val/test with `images` (n, H, W) float32, `labels`
  (n, H, W, 4) uint8 and `series_uid` (n,) UTF-8 strings (the uids themselves; the authors
  stored Python's salted `hash()` of them, which differs per process).

Split: by patient series, exactly as scikit-learn's `train_test_split(test_size=0.2,
random_state=0)` applied twice, reproduced with numpy (see `shuffle_split_indices`).

Reading: the public pickle can exceed 2 GiB, and single reads above 2^31 bytes fail on some
platforms. We stream it with `pickle.load` through `ChunkedReader`, which caps every OS read
at 1 GiB; unlike the classic workaround (read all bytes into a bytearray, then `pickle.loads`),
this never holds a second copy of the file in memory.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import math
import os
import pickle
import sys

import numpy as np
from tqdm import tqdm

from data.npy_folder import SPLITS, prepare_out_root, save_npy, write_manifest

logger = logging.getLogger(__name__)

NUM_ANNOTATIONS = 4
_MAX_READ = 1 << 30  # bytes per OS read, safely below the 2^31 limit
_REQUIRED_KEYS = ("image", "masks", "series_uid")


class ChunkedReader:
    """File wrapper for `pickle.load` whose reads never request more than 1 GiB at once.

    Args:
        f: a binary file object opened for reading (buffered).
    """

    def __init__(self, f):
        self._f = f

    def read(self, n: int = -1) -> bytes:
        """Read up to `n` bytes (all remaining bytes if n < 0) in capped chunks."""
        parts, remaining = [], (math.inf if n is None or n < 0 else n)
        while remaining > 0:
            chunk = self._f.read(int(min(remaining, _MAX_READ)))
            if not chunk:
                break
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def readinto(self, buffer) -> int:
        """Fill `buffer` in capped chunks; returns the number of bytes read."""
        view = memoryview(buffer).cast("B")
        total = 0
        while total < len(view):
            n = self._f.readinto(view[total : total + _MAX_READ])
            if not n:
                break
            total += n
        return total

    def readline(self) -> bytes:
        """Read one line (pickle uses it only for short text opcodes)."""
        return self._f.readline()


def load_pickle(path: str) -> dict:
    """Load the crops pickle with capped reads.

    Args:
        path: the Probabilistic-U-Net LIDC pickle.

    Returns:
        The dict key -> item it holds.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"pickle {path!r} not found")
    with open(path, "rb", buffering=16 << 20) as f:
        data = pickle.load(ChunkedReader(f))
    if not isinstance(data, dict):
        raise ValueError(f"{path!r} holds a {type(data).__name__}, expected a dict of crops")
    if not data:
        raise ValueError(f"{path!r} holds no crops")
    return data


def convert_item(key, item) -> tuple[np.ndarray, np.ndarray, str]:
    """Validate one crop and convert it to the stored arrays.

    Args:
        key: the item's key in the pickle (for messages).
        item: dict with 'image' (H, W) in [0, 1], 'masks' (4 binary (H, W)), 'series_uid'.

    Returns:
        image (H, W) float32 = crop - 0.5, labels (H, W, 4) uint8, series uid str.
    """
    if not isinstance(item, dict):
        raise ValueError(f"crop {key!r} is a {type(item).__name__}, expected a dict")
    missing = [k for k in _REQUIRED_KEYS if k not in item]
    if missing:
        raise ValueError(f"crop {key!r} lacks key(s) {missing}; each crop needs {_REQUIRED_KEYS}")
    image = np.asarray(item["image"], dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"crop {key!r}: image has shape {image.shape}, expected (H, W)")
    if not np.isfinite(image).all() or image.min() < 0.0 or image.max() > 1.0:
        raise ValueError(
            f"crop {key!r}: image values must lie in [0, 1], found range "
            f"[{np.nanmin(image):.4g}, {np.nanmax(image):.4g}]"
        )
    masks = item["masks"]
    if len(masks) != NUM_ANNOTATIONS:
        raise ValueError(f"crop {key!r} has {len(masks)} masks, expected {NUM_ANNOTATIONS}")
    labels = np.stack([np.asarray(m) for m in masks], axis=-1)  # (H, W, 4)
    if labels.shape != image.shape + (NUM_ANNOTATIONS,):
        raise ValueError(f"crop {key!r}: masks have shape {labels.shape[:-1]}, image {image.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"crop {key!r}: masks must be binary (0/1), found {np.unique(labels)[:5]}")
    uid = item["series_uid"]
    uid = uid.decode() if isinstance(uid, bytes) else str(uid)
    return (image - 0.5).astype("<f4"), labels.astype(np.uint8), uid


def shuffle_split_indices(n: int, test_size: float = 0.2, seed: int = 0):
    """Indices of scikit-learn's `train_test_split(test_size=test_size, random_state=seed)`.

    Its ShuffleSplit takes n_test = ceil(test_size * n) (Python float product, so 0.2 * 15
    rounds up to 4 exactly as in scikit-learn), n_train = n - n_test,
    perm = RandomState(seed).permutation(n), test = perm[:n_test],
    train = perm[n_test : n_test + n_train].

    Args:
        n: number of samples.
        test_size: fraction for the test part.
        seed: the random_state.

    Returns:
        (train indices, test indices), int arrays in the order scikit-learn returns them.
    """
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_test <= 0 or n_train <= 0:
        raise ValueError(f"cannot split {n} series into non-empty parts (test_size={test_size})")
    perm = np.random.RandomState(seed).permutation(n)
    return perm[n_test : n_test + n_train], perm[:n_test]


def split_series(uids) -> dict[str, np.ndarray]:
    """Assign patient series to train/val/test as the authors did (docs/datasets.md).

    Args:
        uids: series uid of every crop (repeats allowed).

    Returns:
        {'train', 'val', 'test'} -> arrays of series uids (scikit-learn's output order).
    """
    unique = np.unique(np.asarray(list(uids), dtype=str))  # sorted, as np.unique
    if len(unique) < 3:
        raise ValueError(f"need at least 3 patient series to split, found {len(unique)}")
    rest_idx, test_idx = shuffle_split_indices(len(unique))
    rest, test = unique[rest_idx], unique[test_idx]
    train_idx, val_idx = shuffle_split_indices(len(rest))
    return {"train": rest[train_idx], "val": rest[val_idx], "test": test}


class _LidcWriter:
    """Writes the npy layout (and optional HDF5) split by split, hashing as it goes."""

    def __init__(self, out: str, counts: dict[str, int], shape, hdf5: str | None):
        self.out, self.counts, self.shape = out, counts, tuple(shape)
        self.index = dict.fromkeys(SPLITS, 0)
        self.hashers = {s: hashlib.sha256() for s in SPLITS}
        self.h5 = self._open_hdf5(hdf5) if hdf5 else None

    def _open_hdf5(self, path: str):
        import h5py  # optional output; imported only when asked for

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        h5 = h5py.File(path, "w")
        for split, n in self.counts.items():
            group = h5.create_group(split)
            group.create_dataset("images", (n,) + self.shape, dtype="<f4")
            group.create_dataset("labels", (n,) + self.shape + (NUM_ANNOTATIONS,), dtype="u1")
            group.create_dataset("series_uid", (n,), dtype=h5py.string_dtype("utf-8"))
        return h5

    def add(self, split: str, image: np.ndarray, labels: np.ndarray, uid: str) -> None:
        i = self.index[split]
        save_npy(os.path.join(self.out, split, "images"), i, image)
        save_npy(os.path.join(self.out, split, "labels"), i, labels)
        self.hashers[split].update(image.tobytes())
        self.hashers[split].update(labels.tobytes())
        if self.h5 is not None:
            group = self.h5[split]
            group["images"][i], group["labels"][i], group["series_uid"][i] = image, labels, uid
        self.index[split] = i + 1

    def close(self) -> dict[str, str]:
        if self.h5 is not None:
            self.h5.close()
        return {s: h.hexdigest() for s, h in self.hashers.items()}


def _validate_all(data: dict) -> tuple[list[str], tuple[int, int]]:
    """Check every crop before anything is written; returns the uids and the common shape."""
    uids, shape = [], None
    for key, item in tqdm(data.items(), desc="check crops", leave=False):
        image, _, uid = convert_item(key, item)
        if shape is None:
            shape = image.shape
        elif image.shape != shape:
            raise ValueError(f"crop {key!r} has shape {image.shape}, earlier crops {shape}")
        uids.append(uid)
    return uids, shape


def _manifest(pickle_path: str, shape, splits: dict, counts: dict, digests: dict) -> dict:
    """The split manifest: per split the sorted uids, counts and the content digest."""
    return {
        "dataset": "lidc",
        "source": os.path.basename(pickle_path),
        "image_shape": list(shape),
        "num_annotations": NUM_ANNOTATIONS,
        "split_rule": "np.unique(series uids); sklearn train_test_split(test_size=0.2, "
        "random_state=0) -> test; again on the rest -> val",
        "sha256_of": "per image in order: float32 LE image bytes, then uint8 labels bytes",
        "splits": {
            s: {
                "num_images": counts[s],
                "num_series": len(splits[s]),
                "series_uids": sorted(splits[s].tolist()),
                "sha256": digests[s],
            }
            for s in SPLITS
        },
    }


def build_lidc(
    pickle_path: str, out: str, hdf5: str | None = None, overwrite: bool = False
) -> dict:
    """Build the LIDC npy layout, the manifest and optionally the HDF5 package.

    Args:
        pickle_path: the Probabilistic-U-Net crops pickle.
        out: output root (`<out>/{train,val,test}/{images,labels}`).
        hdf5: optional HDF5 file to write as well.
        overwrite: replace existing split folders under `out`.

    Returns:
        The manifest dict (also written to `<out>/split_manifest.json`).
    """
    data = load_pickle(pickle_path)
    uids, shape = _validate_all(data)
    splits = split_series(uids)
    split_of = {uid: name for name, members in splits.items() for uid in members}
    counts = {s: sum(split_of[u] == s for u in uids) for s in SPLITS}
    prepare_out_root(out, overwrite)
    for split in SPLITS:  # empty splits still get their folders
        for kind in ("images", "labels"):
            os.makedirs(os.path.join(out, split, kind), exist_ok=True)
    writer = _LidcWriter(out, counts, shape, hdf5)
    for key, item in tqdm(data.items(), desc="write crops"):
        image, labels, uid = convert_item(key, item)
        writer.add(split_of[uid], image, labels, uid)
    manifest = _manifest(pickle_path, shape, splits, counts, writer.close())
    write_manifest(out, manifest)
    logger.info("LIDC built in %s: %s", out, {s: counts[s] for s in SPLITS})
    return manifest


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pickle", required=True, help="Probabilistic-U-Net LIDC crops pickle")
    parser.add_argument("--out", required=True, help="output root of the npy layout")
    parser.add_argument("--hdf5", default=None, help="also write this HDF5 package")
    parser.add_argument("--overwrite", action="store_true", help="replace existing splits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        build_lidc(args.pickle, args.out, hdf5=args.hdf5, overwrite=args.overwrite)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
