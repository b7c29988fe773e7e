"""LIDC builder (fabricated pickle) and LIDC loader tests."""

import hashlib
import json
import math
import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from data.lidc import LIDCDataset
from data.preprocess import build_lidc as builder

SIZE = 128
# scikit-learn 1.9.1 train_test_split(test_size=0.2, random_state=0) applied twice to the
# sorted uids series_00..series_{n-1}, recorded once (scikit-learn is not a dependency).
SKLEARN_SPLITS = {
    12: {"train": [2, 7, 5, 3, 1, 10, 9], "val": [0, 8], "test": [6, 11, 4]},
    21: {
        "train": [0, 19, 18, 15, 7, 5, 12, 17, 6, 10, 4, 3],
        "val": [14, 2, 16, 9],
        "test": [8, 13, 20, 1, 11],
    },
}


def _crop(rng, uid):
    return {
        "image": rng.random((SIZE, SIZE)),
        "masks": [(rng.random((SIZE, SIZE)) > 0.7).astype(np.uint8) for _ in range(4)],
        "series_uid": uid,
    }


def _fabricate(path, n_series=12, seed=0):
    """Pickle of n_series series with 1-3 crops each, series interleaved in pickle order."""
    rng = np.random.default_rng(seed)
    order = [f"series_{k:02d}" for k in rng.permutation(n_series) for _ in range(1 + k % 3)]
    rng.shuffle(order)
    data = {f"crop_{i}": _crop(rng, uid) for i, uid in enumerate(order)}
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=4)
    return data


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("lidc")
    data = _fabricate(root / "crops.pkl")
    manifest = builder.build_lidc(
        str(root / "crops.pkl"), str(root / "npy"), hdf5=str(root / "lidc.h5")
    )
    return root, data, manifest


def _documented_split(uids):
    """The documented split (docs/datasets.md) written out independently of the builder."""

    def tts(arr):
        n_test = math.ceil(0.2 * len(arr))
        perm = np.random.RandomState(0).permutation(len(arr))
        return arr[perm[n_test:]], arr[perm[:n_test]]

    rest, test = tts(np.unique(uids))
    train, val = tts(rest)
    return {"train": set(train), "val": set(val), "test": set(test)}


@pytest.mark.parametrize("n", sorted(SKLEARN_SPLITS))
def test_split_matches_recorded_sklearn_output(n):
    uids = [f"series_{k:02d}" for k in range(n)][::-1] * 2
    splits = builder.split_series(uids)
    for name, expected in SKLEARN_SPLITS[n].items():
        assert [int(u[-2:]) for u in splits[name]] == expected


def test_split_needs_three_series():
    with pytest.raises(ValueError, match="at least 3"):
        builder.split_series(["a", "b", "a"])


def test_build_split_membership_and_order(built):
    root, data, manifest = built
    uids = [item["series_uid"] for item in data.values()]
    expected = _documented_split(np.array(uids))
    for split in ("train", "val", "test"):
        assert set(manifest["splits"][split]["series_uids"]) == expected[split]
        keys = [k for k, item in data.items() if item["series_uid"] in expected[split]]
        assert manifest["splits"][split]["num_images"] == len(keys)
        for i, key in enumerate(keys):  # pickle order within the split
            image = np.load(root / "npy" / split / "images" / f"{i}.npy")
            labels = np.load(root / "npy" / split / "labels" / f"{i}.npy")
            assert image.dtype == np.float32 and image.shape == (SIZE, SIZE)
            np.testing.assert_allclose(image, data[key]["image"] - 0.5, atol=1e-7)
            assert labels.dtype == np.uint8 and labels.shape == (SIZE, SIZE, 4)
            np.testing.assert_array_equal(labels, np.stack(data[key]["masks"], -1))
        assert not (root / "npy" / split / "images" / f"{len(keys)}.npy").exists()


def test_manifest_hashes_and_hdf5(built):
    root, data, _ = built
    manifest = json.loads((root / "npy" / "split_manifest.json").read_text())
    with h5py.File(root / "lidc.h5", "r") as h5:
        for split, info in manifest["splits"].items():
            digest = hashlib.sha256()
            for i in range(info["num_images"]):
                digest.update(np.load(root / "npy" / split / "images" / f"{i}.npy").tobytes())
                digest.update(np.load(root / "npy" / split / "labels" / f"{i}.npy").tobytes())
            assert digest.hexdigest() == info["sha256"]
            np.testing.assert_array_equal(
                h5[split]["images"][0], np.load(root / "npy" / split / "images" / "0.npy")
            )
            uids = [u.decode() for u in h5[split]["series_uid"][:]]
            assert set(uids) == set(info["series_uids"]) and len(uids) == info["num_images"]


def test_chunked_reader_reassembles(tmp_path, monkeypatch):
    monkeypatch.setattr(builder, "_MAX_READ", 7)  # force many partial reads
    data = {"a": {"image": np.linspace(0, 1, 300).reshape(15, 20), "masks": [b"x" * 50] * 4}}
    with open(tmp_path / "p.pkl", "wb") as f:
        pickle.dump(data, f, protocol=5)
    loaded = builder.load_pickle(str(tmp_path / "p.pkl"))
    np.testing.assert_array_equal(loaded["a"]["image"], data["a"]["image"])
    assert loaded["a"]["masks"] == data["a"]["masks"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.pop("series_uid"), "lacks key"),
        (lambda c: c.pop("masks"), "lacks key"),
        (lambda c: c.__setitem__("image", c["image"] * 2.0 + 0.1), r"\[0, 1\]"),
        (lambda c: c.__setitem__("masks", [m * 255 for m in c["masks"]]), "binary"),
        (lambda c: c.__setitem__("masks", c["masks"][:3]), "3 masks"),
    ],
)
def test_bad_pickles_raise(tmp_path, mutate, message):
    rng = np.random.default_rng(1)
    data = {f"k{i}": _crop(rng, f"s{i % 4}") for i in range(6)}
    mutate(data["k3"])
    with open(tmp_path / "bad.pkl", "wb") as f:
        pickle.dump(data, f)
    with pytest.raises(ValueError, match=message) as err:
        builder.build_lidc(str(tmp_path / "bad.pkl"), str(tmp_path / "out"))
    assert "k3" in str(err.value)
    assert not (tmp_path / "out" / "train").exists()  # nothing written


def test_cli_reports_errors(tmp_path):
    with open(tmp_path / "list.pkl", "wb") as f:
        pickle.dump([1, 2], f)
    cmd = [
        sys.executable,
        "-m",
        "data.preprocess.build_lidc",
        "--pickle",
        str(tmp_path / "list.pkl"),
        "--out",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=os.getcwd())
    assert result.returncode != 0 and "expected a dict" in result.stderr


def test_loader_standardises_and_selects_annotations(built):
    root = str(built[0] / "npy")
    val = LIDCDataset(root, "val", label_range=[0])
    image, labels, probs = val[0]
    stored = np.load(os.path.join(root, "val", "images", "0.npy"))
    np.testing.assert_allclose(
        image[0].numpy(), (stored - stored.mean()) / stored.std(), rtol=1e-4, atol=1e-5
    )
    assert image.shape == (1, SIZE, SIZE) and image.dtype == torch.float32
    assert labels.shape == (4, SIZE, SIZE) and labels.dtype == torch.int64  # val uses all
    torch.testing.assert_close(probs, torch.full((4,), 0.25))
    train = LIDCDataset(root, "train", label_range=[0], augment=False)
    _, labels, probs = train[1]
    stored = np.load(os.path.join(root, "train", "labels", "1.npy"))
    np.testing.assert_array_equal(labels.numpy(), stored[None, ..., 0])
    torch.testing.assert_close(probs, torch.ones(1))
    with pytest.raises(ValueError, match="label_range"):
        LIDCDataset(root, "train", label_range=[4])


def test_augmentation_keeps_image_and_labels_aligned(tmp_path):
    yy, xx = np.mgrid[0:32, 0:32]
    mask = ((yy - 12) ** 2 + (xx - 19) ** 2 < 36) | ((yy > 24) & (xx < 8))  # asymmetric shape
    for kind, array in (
        ("images", mask.astype(np.float32) - 0.5),
        ("labels", np.repeat(mask[..., None], 4, -1).astype(np.uint8)),
    ):
        os.makedirs(tmp_path / "train" / kind)
        np.save(tmp_path / "train" / kind / "0.npy", array)
    ds = LIDCDataset(str(tmp_path), "train")
    torch.manual_seed(0)
    changed = 0
    for _ in range(40):
        image, labels, _ = ds[0]
        assert set(labels.unique().tolist()) <= {0, 1}
        assert (labels == labels[0]).all()  # all annotations moved together
        # zero fill equals the standardised mean, below the fg/bg midpoint
        midpoint = (image.max() + image.min()) / 2
        agree = ((image[0] > midpoint) == labels[0].bool()).float().mean()
        assert agree > 0.97
        changed += int(not np.array_equal(labels[0].numpy(), mask))
    assert changed > 20  # augmentation actually happens


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="build_lidc"):
        LIDCDataset(str(tmp_path), "train")
    for kind in ("images", "labels"):
        os.makedirs(tmp_path / "val" / kind)
    for i in range(3):
        np.save(tmp_path / "val" / "images" / f"{i}.npy", np.zeros((8, 8), np.float32))
    for i in range(2):
        np.save(tmp_path / "val" / "labels" / f"{i}.npy", np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ValueError, match="3 files"):
        LIDCDataset(str(tmp_path), "val")
    np.save(tmp_path / "val" / "labels" / "2.npy", np.zeros((8, 4), np.uint8))
    with pytest.raises(ValueError, match="2.npy"):
        LIDCDataset(str(tmp_path), "val")
