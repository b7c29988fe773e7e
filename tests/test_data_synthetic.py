"""Synthetic generators: layouts, known truth, ambiguity floor, determinism, loading."""

import filecmp
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from data import build_dataloaders
from data.cityscapes_labels import build_modes
from data.synthetic import make_cityscapes, make_lidc

FLIP_CLASSES = (2, 12, 14, 9, 1)


def _distance(a, b):
    """Binary 1 - IoU between every pair of masks, (P, ...) x (Q, ...) -> (P, Q)."""
    a = a.reshape(len(a), -1).astype(bool)
    b = b.reshape(len(b), -1).astype(bool)
    inter = (a[:, None] & b[None]).sum(-1)
    union = (a[:, None] | b[None]).sum(-1)
    return 1.0 - (inter + 1e-8) / (union + 1e-8)


def _ged(samples, u, gts, v):
    return (
        2 * u @ _distance(samples, gts) @ v
        - u @ _distance(samples, samples) @ u
        - v @ _distance(gts, gts) @ v
    )


def test_ged_helper_reference_values():
    empty, full = np.zeros((1, 4, 4)), np.ones((1, 4, 4))
    assert _ged(empty, np.ones(1), empty, np.ones(1)) == pytest.approx(0.0)
    both = np.concatenate([empty, full])
    assert _ged(both, np.full(2, 0.5), full, np.ones(1)) == pytest.approx(0.5)  # 2*.5 - .5 - 0


@pytest.fixture(scope="module")
def lidc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "lidc"
    make_lidc(str(root), n_train=24, n_val=16, n_test=200, seed=3)
    return root


def _lidc_item(root, split, i):
    def load(kind):
        return np.load(root / split / kind / f"{i}.npy")

    return load("images"), load("labels"), load("modes"), load("mode_probs")


def test_lidc_layout_and_truth(lidc_root):
    for i in range(16):
        image, labels, modes, probs = _lidc_item(lidc_root, "val", i)
        assert image.dtype == np.float32 and image.shape == (32, 32)
        assert -0.5 <= image.min() and image.max() <= 0.5
        assert labels.dtype == np.uint8 and labels.shape == (32, 32, 4)
        assert (
            2 <= len(modes) <= 4 and modes.shape[1:] == (32, 32) and set(np.unique(modes)) <= {0, 1}
        )
        assert probs.dtype == np.float32 and probs.sum() == pytest.approx(1.0, abs=1e-6)
        assert modes[0].sum() == 0 and modes[1].sum() > 0  # "nothing" and "core" always there
        # every annotation is a jittered copy of some mode
        d = _distance(labels.transpose(2, 0, 1), modes).min(axis=1)
        assert (d < 0.5).all()


def test_lidc_is_genuinely_ambiguous(lidc_root):
    geds, ambiguous = [], 0
    for i in range(200):
        _, labels, modes, probs = _lidc_item(lidc_root, "test", i)
        geds.append(_ged(modes, probs.astype(float), labels.transpose(2, 0, 1), np.full(4, 0.25)))
        ambiguous += (probs >= 0.2).sum() >= 2
    assert ambiguous >= 100 and np.mean(geds) >= 0.08


def test_lidc_mode_probabilities_follow_visible_contrast(lidc_root):
    contrast, p_empty = [], []
    for i in range(200):
        image, _, modes, probs = _lidc_item(lidc_root, "test", i)
        core = modes[1].astype(bool)
        contrast.append(image[core].mean() - np.median(image[~modes.any(0)]))
        p_empty.append(probs[0])
    assert np.corrcoef(contrast, p_empty)[0, 1] < -0.5


def test_lidc_deterministic_and_seeded(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        make_lidc(str(tmp_path / name), n_train=3, n_val=2, n_test=2, size=20, seed=seed)
    for kind in ("images", "labels", "modes", "mode_probs"):
        files = [f"{i}.npy" for i in range(3)]
        match, mismatch, errors = filecmp.cmpfiles(
            tmp_path / "a" / "train" / kind, tmp_path / "b" / "train" / kind, files, shallow=False
        )
        assert match == files and not errors
    a = np.load(tmp_path / "a" / "train" / "images" / "0.npy")
    assert a.shape == (20, 20)
    assert not np.array_equal(a, np.load(tmp_path / "c" / "train" / "images" / "0.npy"))


def test_lidc_loads_through_real_loader(lidc_root):
    loaders = build_dataloaders(
        "lidc",
        str(lidc_root),
        train_batch_size=8,
        val_batch_size=4,
        test_batch_size=64,
        label_range=[0],
    )
    x, y, p = next(iter(loaders["train"]))
    assert x.shape == (8, 1, 32, 32) and y.shape == (8, 1, 32, 32) and p.shape == (8, 1)
    x, y, p = next(iter(loaders["test"]))
    assert y.shape == (64, 4, 32, 32) and len(loaders["test"]) == 4
    modes, probs = loaders["test"].dataset.true_modes(5)
    np.testing.assert_array_equal(modes, np.load(lidc_root / "test" / "modes" / "5.npy"))
    assert modes.dtype == np.int64 and probs.dtype == np.float64


@pytest.fixture(scope="module")
def cs_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn") / "cityscapes"
    make_cityscapes(str(root), n_train=6, n_val=4, n_test=4, seed=0)
    return root


def test_cityscapes_layout_modes_and_bbpreds(cs_root):
    present = set()
    for i in range(6):

        def load(kind, i=i):
            return np.load(cs_root / "train" / kind / f"{i}.npy")

        labels, probs, bbpred = load("labels"), load("probs"), load("bbpreds")
        assert load("images").shape == (3, 64, 128) and load("images").dtype == np.float32
        assert labels.shape == (32, 64, 128) and labels.dtype == np.uint8
        np.testing.assert_array_equal(labels, build_modes(labels[0]))
        np.testing.assert_array_equal(load("modes"), labels)
        np.testing.assert_array_equal(load("mode_probs"), probs)
        assert probs.shape == (32,) and probs.sum() == pytest.approx(1.0, abs=1e-6)
        assert probs[0] == pytest.approx(9 * 10 * 11 * 12 * 13 / 17**5, rel=1e-6)
        assert labels[0].max() <= 19 and (labels[0] == 0).any()
        assert bbpred.max() <= 19 and (bbpred[labels[0] == 0] == 0).all()
        agree = (bbpred == labels[0]).mean()
        assert 0.6 < agree < 1.0  # informative but noisy
        present |= set(np.unique(labels[0]).tolist())
    assert set(FLIP_CLASSES) <= present and len(present - {0}) >= 8


def test_cityscapes_loads_and_is_deterministic(cs_root, tmp_path):
    loaders = build_dataloaders(
        "cityscapes", str(cs_root), train_batch_size=2, val_batch_size=2, test_batch_size=3
    )
    assert next(iter(loaders["train"]))[0].shape == (2, 4, 32, 32)
    x, y, p = next(iter(loaders["test"]))
    assert x.shape == (3, 4, 64, 128) and y.shape == (3, 32, 64, 128) and p.shape == (3, 32)
    assert next(
        iter(
            build_dataloaders("cityscapes", str(cs_root), use_bbpred=False, splits=("val",))["val"]
        )
    )[0].shape == (1, 3, 32, 32)
    make_cityscapes(str(tmp_path / "again"), n_train=6, n_val=4, n_test=4, seed=0)
    for kind in ("images", "labels", "bbpreds"):
        assert filecmp.cmp(
            cs_root / "test" / kind / "3.npy",
            tmp_path / "again" / "test" / kind / "3.npy",
            shallow=False,
        )


def test_cli_and_overwrite_policy(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "data.synthetic",
        "lidc",
        str(tmp_path / "s"),
        "--train",
        "3",
        "--val",
        "2",
        "--test",
        "1",
        "--size",
        "16",
    ]
    for _ in range(2):  # an earlier synthetic set is replaced
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "s" / "train" / "images")) == ["0.npy", "1.npy", "2.npy"]
    assert np.load(tmp_path / "s" / "test" / "labels" / "0.npy").shape == (16, 16, 4)
    os.makedirs(tmp_path / "real" / "train")  # not synthetic: kept unless --overwrite
    with pytest.raises(ValueError, match="overwrite"):
        make_cityscapes(str(tmp_path / "real"), n_train=1, n_val=1, n_test=1)


def test_lidc_without_satellite_and_halo_together(tmp_path):
    # satellite_with_halo=False: an image shows a halo or a satellite, never both (at most three
    # modes), and its scenes are otherwise those of the default set
    make_lidc(str(tmp_path / "x"), n_train=0, n_val=0, n_test=200, seed=3,
              satellite_with_halo=False)
    make_lidc(str(tmp_path / "d"), n_train=0, n_val=0, n_test=200, seed=3)
    counts = {"x": [], "d": []}
    for name in counts:
        for i in range(200):
            _, labels, modes, probs = _lidc_item(tmp_path / name, "test", i)
            counts[name].append(len(modes))
            assert probs.sum() == pytest.approx(1.0, abs=1e-6)
    assert max(counts["x"]) == 3 and max(counts["d"]) == 4
    assert {2, 3} <= set(counts["x"])
    # only images that had both lose a mode
    assert all(x == d or (d == 4 and x == 3) for x, d in zip(counts["x"], counts["d"]))


def test_a_synthetic_set_made_with_other_settings_is_kept_with_a_warning(tmp_path, caplog):
    import logging

    from utils.build import prepare_data
    from utils.config.config import load_config

    root = tmp_path / "lidc"
    options = "synthetic_options={'n_train': 4, 'n_val': 2, 'n_test': 2, 'size': 16, 'seed': %d}"
    cfg = load_config("experiments/synthetic_lidc.py", [f"data_folder='{root}'", options % 0])
    with caplog.at_level(logging.INFO, logger="mose"):
        prepare_data(cfg)
        assert [r.getMessage().startswith("generating") for r in caplog.records] == [True]
        first = np.load(root / "train" / "images" / "0.npy")
        caplog.clear()
        prepare_data(cfg)  # same settings: kept, nothing said
        assert not caplog.records
        prepare_data(load_config("experiments/synthetic_lidc.py", [f"data_folder='{root}'",
                                                                   options % 1]))
    assert np.array_equal(first, np.load(root / "train" / "images" / "0.npy"))  # kept
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "seed 0 -> 1" in caplog.records[0].getMessage()


def test_lidc_wobble_reshapes_outlines_without_resizing_them(tmp_path):
    # wobble traces every annotation's outline differently (2-4 lobes) around the same modes;
    # wobble 0 draws nothing more from the generator, so the default set is unchanged
    make_lidc(str(tmp_path / "w"), n_train=0, n_val=0, n_test=60, seed=5, jitter=0.0,
              wobble=0.4)
    make_lidc(str(tmp_path / "e"), n_train=0, n_val=0, n_test=60, seed=5, jitter=0.0)
    moved, changed, nonempty = [], 0, 0
    for i in range(60):
        img_w, labels_w, modes_w, probs_w = _lidc_item(tmp_path / "w", "test", i)
        img_e, labels_e, modes_e, probs_e = _lidc_item(tmp_path / "e", "test", i)
        assert np.array_equal(img_w, img_e) and np.array_equal(modes_w, modes_e)
        assert np.array_equal(probs_w, probs_e)
        exact = labels_e.transpose(2, 0, 1)  # (A, S, S): jitter 0 draws the modes themselves
        assert (_distance(exact, modes_e).min(axis=1) == 0).all()
        for w, e in zip(labels_w.transpose(2, 0, 1), exact):
            if e.sum() == 0:
                assert w.sum() == 0  # "nothing" has no outline to trace
                continue
            nonempty += 1
            changed += not np.array_equal(w, e)
            moved.append(abs(int(w.sum()) - int(e.sum())) / e.sum())
    # the same masks are annotated (same mode draws): outlines differ, areas barely
    assert changed >= 0.9 * nonempty
    assert np.median(moved) < 0.1
    info = (tmp_path / "w" / "synthetic_info.json").read_text()
    assert '"wobble": 0.4' in info and '"jitter": 0.0' in info


def test_cli_lidc_options_reach_the_generator(tmp_path):
    # the demo's set from the command line: the options land in synthetic_info.json
    out = tmp_path / "demo"
    cmd = [sys.executable, "-m", "data.synthetic", "lidc", str(out), "--train", "1", "--val",
           "1", "--test", "1", "--size", "16", "--jitter", "0", "--wobble", "0.6", "--exclusive"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    info = json.loads((out / "synthetic_info.json").read_text())
    assert (info["jitter"], info["wobble"], info["satellite_with_halo"]) == (0.0, 0.6, False)
    bad = [sys.executable, "-m", "data.synthetic", "cityscapes", str(tmp_path / "c"),
           "--wobble", "0.6"]
    result = subprocess.run(bad, capture_output=True, text=True)
    assert result.returncode != 0 and "lidc only" in result.stderr
