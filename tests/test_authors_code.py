"""The side-by-side harness (benchmarks/authors/) in its smallest form, against the authors'
code when a checkout is given (`MOSE_AUTHORS_CODE=PATH`): one timed step of each path on both
paper configs, and one short epoch of their engine on a tiny synthetic set, scored by our
evaluation. Without a checkout these tests skip and say why; the helpers that need no
checkout are tested either way."""

import json
import os
import sys

import numpy as np
import pytest
import torch

from benchmarks.authors import learning, speed
from benchmarks.authors.replay import ReplayModel
from benchmarks.authors.tree import ENV, AuthorsCodeUnavailable, find_tree, identify

TINY = ["synthetic_options={'n_train': 32, 'n_val': 8, 'n_test': 8, 'size': 32, 'seed': 0, "
        "'satellite_with_halo': False, 'jitter': 0.0, 'wobble': 0.6}",
        "val_batch_size=4", "test_batch_size=4"]


@pytest.fixture(scope="module")
def authors_tree():
    try:
        return find_tree()
    except AuthorsCodeUnavailable as missing:
        pytest.skip(f"no checkout of the authors' code: {missing}")


def test_without_a_tree_the_error_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(AuthorsCodeUnavailable, match="git clone .*8261e7d"):
        find_tree()
    with pytest.raises(AuthorsCodeUnavailable, match="no models/MoSE.py"):
        find_tree(str(tmp_path))


def test_replay_returns_each_images_prediction_whatever_the_order():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(5, 1, 4, 4, generator=g)
    pred = torch.rand(5, 6, 2, 4, 4, generator=g)
    weights = torch.rand(5, 6, generator=g)
    model = ReplayModel(images, pred, weights, num_expert=3)
    out = model(images[[3, 0]])
    assert torch.equal(out["pred"], pred[[3, 0]]) and torch.equal(out["weights"], weights[[3, 0]])
    assert torch.allclose(out["expert_probs"], weights[[3, 0]].view(2, 3, 2).sum(-1))


@pytest.mark.slow
def test_speed_smallest(authors_tree, tmp_path, monkeypatch):
    out = tmp_path / "speed.json"
    monkeypatch.setattr(sys, "argv", [
        "speed", "--authors-code", str(authors_tree), "--batch", "1", "--steps", "1",
        "--rounds", "1", "--threads", "1", "--paths", "authors", "default",
        "--matmul-size", "0", "--out", str(out)])
    speed.main()
    result = json.loads(out.read_text())
    assert result["provenance"]["authors_code"] == identify(authors_tree)
    for config in ("lidc_proposed", "cityscapes_proposed"):
        got = result["configs"][config]
        for kind in ("train", "eval"):
            assert got[f"authors_{kind}_img_per_s"]["median"] > 0
            assert got[f"default_{kind}_ratio"]["median"] > 0


def test_learning_one_short_epoch(authors_tree, tmp_path, monkeypatch):
    sets = [f"data_folder='{tmp_path / 'data'}'", *TINY]
    monkeypatch.setattr(sys, "argv", [
        "learning", "--authors-code", str(authors_tree), "--rows", learning.AUTHORS,
        "--seeds", "0", "--epochs", "1", "--log-root", str(tmp_path / "log"),
        "--out", str(tmp_path / "learning"),
        *[item for s in sets for item in ("--set", s)]])
    learning.main()
    result = json.loads((tmp_path / "learning.json").read_text())
    run = result["configs"][learning.AUTHORS]["runs"][0]
    assert run["epochs"] == 1 and 0 < run["ged"] <= 2 and 0 <= run["mode_mass_error"] <= 1
    assert run["ged_ratio"] == pytest.approx(run["ged"] / run["true_ged"])
    own = result["authors_own_metrics"]["0"]
    assert abs(own["ece"] - run["ece"]) < 0.05  # their ECE and ours, of different draws
    stored = np.load(tmp_path / "log" / "synthetic" / "authors_code_seed0" / "predictions.npz")
    assert stored["pred"].shape == (8, 16, 2, 32, 32)
    assert os.path.isfile(tmp_path / "learning.md")
