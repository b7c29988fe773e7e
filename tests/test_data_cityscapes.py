"""Cityscapes builders (fabricated raw tree written with PIL) and Cityscapes loader tests."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from data.cityscapes import CityscapesDataset
from data.cityscapes_labels import build_modes
from data.preprocess.build_cityscapes_layout import build_cityscapes
from data.preprocess.resize_cityscapes import preprocess

RAW, SMALL = (32, 64), (16, 32)  # raw PNG size and the builder's resize target in the tests
# The official Cityscapes table: label id -> 19-class train id (every other id is ignored).
CS_TRAIN_ID = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}
FLIPS = [(2, 20, 8 / 17), (12, 21, 7 / 17), (14, 22, 6 / 17), (9, 23, 5 / 17), (1, 24, 4 / 17)]
MEAN = np.array([0.28689554, 0.32513303, 0.28389177])
STD = np.array([0.18696375, 0.19017339, 0.18720214])
CITIES = [
    ("train", "aachen", 2),
    ("train", "ulm", 1),
    ("train", "bochum", 1),
    ("train", "darmstadt", 1),
    ("val", "frankfurt", 2),
]


def _expected25(label_ids):
    out = np.zeros_like(label_ids)
    for label_id, train_id in CS_TRAIN_ID.items():
        out[label_ids == label_id] = train_id + 1
    return out


def _write_raw(raw, bb, rng):
    """Raw tree: flat-colour images (colour = item number), 2x2-block label ids covering 0..33,
    and label-id black-box predictions at the processed size. Returns base stem -> info."""
    items = {}
    for official, city, count in CITIES:
        for k in range(count):
            base = f"{city}_{k:06d}_000019"
            n = len(items)
            blocks = rng.permutation(np.arange(SMALL[0] * SMALL[1]) % 34).reshape(SMALL)
            label = np.kron(blocks, np.ones((2, 2), np.int64)).astype(np.uint8)  # every id
            colour = np.array([10 + 20 * n, 200 - 15 * n, 7 * n + 3], np.uint8)
            for sub, name, array in (
                ("leftImg8bit", "leftImg8bit", np.tile(colour, RAW + (1,))),
                ("gtFine", "gtFine_labelIds", label),
            ):
                os.makedirs(raw / sub / official / city, exist_ok=True)
                Image.fromarray(array).save(raw / sub / official / city / f"{base}_{name}.png")
            pred = rng.integers(0, 34, SMALL)
            os.makedirs(bb / official / city / "bb_preds", exist_ok=True)
            np.save(bb / official / city / "bb_preds" / f"{base}_prior_preds_trainIds.npy", pred)
            items[base] = {"city": city, "colour": colour, "label": blocks, "pred": pred}
    return items


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    items = _write_raw(root / "raw", root / "bb", np.random.default_rng(0))
    assert preprocess(str(root / "raw"), str(root / "processed"), size=SMALL) == len(items)
    manifest = build_cityscapes(
        str(root / "processed"), str(root / "out"), bbpreds=str(root / "bb")
    )
    return root, items, manifest


def test_preprocessing_resizes_and_keeps_structure(built):
    root, items, _ = built
    for base, info in items.items():
        official = "val" if info["city"] == "frankfurt" else "train"
        image = np.load(
            root / "processed" / "leftImg8bit" / official / info["city"] / f"{base}_leftImg8bit.npy"
        )
        label = np.load(
            root / "processed" / "gtFine" / official / info["city"] / f"{base}_gtFine_labelIds.npy"
        )
        assert image.shape == SMALL + (3,) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, np.broadcast_to(info["colour"], image.shape))
        np.testing.assert_array_equal(label, info["label"])  # nearest on 2x2 blocks is exact


def test_splits_by_city(built):
    _, _, manifest = built
    cities = {s: manifest["splits"][s]["cities"] for s in ("train", "val", "test")}
    assert cities == {
        "train": ["aachen", "bochum"],
        "val": ["darmstadt", "ulm"],
        "test": ["frankfurt"],
    }
    assert [manifest["splits"][s]["num_images"] for s in ("train", "val", "test")] == [3, 2, 2]


def test_labels_modes_probabilities_images_bbpreds(built):
    root, items, manifest = built
    for split in ("train", "val", "test"):
        for i, name in enumerate(manifest["splits"][split]["items"]):
            info = items[name.split("/")[1]]
            folder = root / "out" / split
            labels = np.load(folder / "labels" / f"{i}.npy")
            assert labels.shape == (32,) + SMALL and labels.dtype == np.uint8
            base = _expected25(info["label"])
            probs = np.load(folder / "probs" / f"{i}.npy")
            assert probs.dtype == np.float32 and abs(probs.sum() - 1) < 1e-6
            for m in range(32):
                expected, prob = base.copy(), 1.0
                for k, (cls, new, p) in enumerate(FLIPS):
                    flip = (m >> (4 - k)) & 1
                    expected[base == cls] = new if flip else cls
                    prob *= p if flip else 1 - p
                np.testing.assert_array_equal(labels[m], expected)
                assert probs[m] == pytest.approx(prob, rel=1e-6)
            image = np.load(folder / "images" / f"{i}.npy")
            assert image.shape == (3,) + SMALL and image.dtype == np.float32
            np.testing.assert_allclose(
                image[:, 0, 0], (info["colour"] / 255 - MEAN) / STD, rtol=1e-5
            )
            bbpred = np.load(folder / "bbpreds" / f"{i}.npy")
            np.testing.assert_array_equal(bbpred, np.where(base == 0, 0, _expected25(info["pred"])))
    assert probs[0] == pytest.approx(9 * 10 * 11 * 12 * 13 / 17**5)
    assert probs[16] == pytest.approx(8 * 10 * 11 * 12 * 13 / 17**5)  # sidewalk flipped only
    assert probs[31] == pytest.approx(8 * 7 * 6 * 5 * 4 / 17**5)


def test_trainid_bbpreds_at_other_resolution(built, tmp_path):
    root, items, _ = built
    bb = tmp_path / "bb"
    for name in items:
        city = items[name]["city"]
        official = "val" if city == "frankfurt" else "train"
        pred = np.kron(
            np.where(items[name]["label"] % 5 == 0, 255, items[name]["label"] % 19),
            np.ones((2, 2), np.int64),
        )  # train ids at the raw size
        os.makedirs(bb / official / city / "bb_preds", exist_ok=True)
        np.save(bb / official / city / "bb_preds" / f"{name}_prior_preds_trainIds.npy", pred)
    manifest = build_cityscapes(
        str(root / "processed"), str(tmp_path / "out"), bbpreds=str(bb), bbpred_format="trainids"
    )
    name = manifest["splits"]["test"]["items"][0].split("/")[1]
    small = np.where(items[name]["label"] % 5 == 0, 255, items[name]["label"] % 19)
    expected = np.where(small == 255, 0, small + 1)
    expected[_expected25(items[name]["label"]) == 0] = 0
    np.testing.assert_array_equal(
        np.load(tmp_path / "out" / "test" / "bbpreds" / "0.npy"), expected
    )
    with pytest.raises(ValueError, match="trainids"):  # 255 is no label id
        build_cityscapes(str(root / "processed"), str(tmp_path / "out2"), bbpreds=str(bb))


def test_one_shot_cli_without_bbpreds(built, tmp_path):
    root = built[0]
    cmd = [
        sys.executable,
        "-m",
        "data.preprocess.build_cityscapes",
        "--raw",
        str(root / "raw"),
        "--out",
        str(tmp_path / "out"),
        "--size",
        *map(str, SMALL),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "out" / "split_manifest.json").read_text())
    assert manifest["bbpreds"] is False and not (tmp_path / "out" / "train" / "bbpreds").exists()
    x, labels, probs = CityscapesDataset(str(tmp_path / "out"), "test", use_bbpred=False)[0]
    assert x.shape == (3,) + SMALL and labels.shape == (32,) + SMALL and probs.shape == (32,)
    with pytest.raises(FileNotFoundError, match="--bbpreds"):
        CityscapesDataset(str(tmp_path / "out"), "test", use_bbpred=True)
    bad = subprocess.run(
        cmd[:3] + ["--out", str(tmp_path / "o2"), "--raw", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "leftImg8bit" in bad.stderr


def test_loader_channels_shapes_and_true_modes(built):
    out = str(built[0] / "out")
    crop = SMALL[0] // 2
    for split, shape in (("train", (crop, crop)), ("val", (crop, crop)), ("test", SMALL)):
        x, labels, probs = CityscapesDataset(out, split)[0]
        assert x.shape == (4,) + shape and x.dtype == torch.float32
        assert labels.shape == (32,) + shape and labels.dtype == torch.int64
        assert probs.dtype == torch.float32 and set(labels.unique().tolist()) <= set(range(25))
        assert CityscapesDataset(out, split, use_bbpred=False)[0][0].shape == (3,) + shape
    zeros = CityscapesDataset(out, "test", use_bbpred=False, bbpred_channel=True)[0][0]
    assert zeros.shape == (4,) + SMALL and (zeros[3] == 0).all()
    val = CityscapesDataset(out, "val")
    modes, mode_probs = val.true_modes(1)
    np.testing.assert_array_equal(modes, val[1][1].numpy())  # centre-cropped like the item
    assert modes.dtype == np.int64 and mode_probs.dtype == np.float64
    test = CityscapesDataset(out, "test")
    np.testing.assert_array_equal(
        test.true_modes(0)[0], np.load(os.path.join(out, "test", "labels", "0.npy"))
    )


def test_train_augmentation_keeps_alignment(tmp_path):
    H = 64  # scenes are H x 2H
    rng = np.random.default_rng(0)
    base = np.kron(rng.integers(0, 20, (4, 8)), np.ones((16, 16), np.int64)).astype(np.uint8)
    os.makedirs(tmp_path / "train")
    arrays = {
        "images": np.stack([base.astype(np.float32)] * 3),
        "labels": build_modes(base),
        "probs": np.full(32, 1 / 32, np.float32),
        "bbpreds": base,
    }
    for kind, array in arrays.items():
        os.makedirs(tmp_path / "train" / kind)
        np.save(tmp_path / "train" / kind / "0.npy", array)
    ds = CityscapesDataset(str(tmp_path), "train")
    torch.manual_seed(0)
    sides = set()
    for _ in range(30):
        x, labels, _ = ds[0]
        assert x.shape == (4, H // 2, H // 2) and labels.shape == (32, H // 2, H // 2)
        assert torch.equal(x[3].long(), labels[0])  # bbpred travels with the labels
        assert set(labels.unique().tolist()) <= set(np.unique(arrays["labels"]).tolist())
        lab = labels[0].float()[None, None]  # (1, 1, h, w)
        interior = (F.max_pool2d(lab, 5, 1, 2) == -F.max_pool2d(-lab, 5, 1, 2))[0, 0]
        agree = (x[0].round().long() == labels[0])[interior].float().mean()
        assert interior.float().mean() > 0.2 and agree > 0.99  # same window for both
        sides.add(tuple(labels[0].unique().tolist()))
    assert len(sides) > 5  # crops differ


def test_loader_errors(built, tmp_path):
    with pytest.raises(FileNotFoundError, match="build_cityscapes"):
        CityscapesDataset(str(tmp_path), "val")
    out = built[0] / "out"
    for kind in ("images", "labels", "probs", "bbpreds"):
        os.makedirs(tmp_path / "val" / kind)
        for i in range(2):
            src = out / "val" / kind / f"{i}.npy"
            (tmp_path / "val" / kind / f"{i}.npy").write_bytes(src.read_bytes())
    np.save(tmp_path / "val" / "bbpreds" / "1.npy", np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="1.npy"):
        CityscapesDataset(str(tmp_path), "val")
    os.remove(tmp_path / "val" / "probs" / "1.npy")
    with pytest.raises(ValueError, match="holds 2 files"):
        CityscapesDataset(str(tmp_path), "val", use_bbpred=False)
