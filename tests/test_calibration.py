"""Mode calibration against known true modes: hand-made cases, merging of identical modes,
Cityscapes flip frequencies, and the accumulator's summary."""

import math

import numpy as np
import pytest
import torch

from data.cityscapes_classes import EVAL_CLASS_IDS, FLIP_PROBS
from data.cityscapes_labels import build_modes, mode_probabilities
from data.specs import dataset_spec
from utils.evaluation import results
from utils.evaluation.calibration import ModeCalibration, flip_frequencies, mode_calibration

E = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
A = [[1, 1, 0], [1, 1, 0], [0, 0, 0]]  # 4 pixels
A2 = [[1, 1, 0], [1, 0, 0], [0, 0, 0]]  # A minus one pixel: nearest to A
C = [[0, 0, 0], [0, 0, 1], [0, 1, 1]]  # disjoint from A


def batch(*masks):
    return torch.tensor([list(masks)], dtype=torch.long)


def probs(*values):
    return torch.tensor([list(values)], dtype=torch.float64)


def test_hand_case_errors():
    # true: E .7, A .3; samples A, A2 (-> A), E, E with weight .25 each: predicted (.5, .5).
    stats = mode_calibration(batch(A, A2, E, E), probs(.25, .25, .25, .25), batch(E, A),
                             probs(.7, .3), 2, [1])
    assert stats["predicted"][0].tolist() == pytest.approx([0.5, 0.5])
    assert stats["mae"].item() == pytest.approx(0.2) and stats["tv"].item() == pytest.approx(0.2)


def test_perfect_model_scores_zero():
    modes = batch(E, A, C)
    p = probs(.5, .3, .2)
    stats = mode_calibration(modes, p, modes, p, 2, [1])
    assert stats["mae"].item() == 0.0 and stats["tv"].item() == 0.0


def test_identical_modes_are_merged_and_padding_ignored():
    # A appears twice (.3 + .2) and a padding copy of E has probability 0: three distinct
    # modes E .5, A .5 (C, probability 0, does not count). Samples A, E at .5 each: no error.
    stats = mode_calibration(batch(A, E), probs(.5, .5), batch(E, A, A, C), probs(.5, .3, .2, 0),
                             2, [1])
    assert stats["valid"][0].tolist() == [True, True, False, False]
    assert stats["mae"].item() == 0.0 and stats["tv"].item() == 0.0
    # the evaluation's mode-mass error is this implementation
    err = results.mode_mass_error(batch(A, E), probs(.5, .5), batch(E, A, A, C),
                                  probs(.5, .3, .2, 0), 2, [1])
    assert err.item() == 0.0


def _scene():
    """A 4x6 Cityscapes-like label in the 25-id space: road, sidewalk, person, vegetation, no
    car, so the 32 modes collapse to 16 distinct ones."""
    base = np.full((4, 6), 11, dtype=np.uint8)  # sky
    base[2:, :3] = 1  # road
    base[2:, 3:] = 2  # sidewalk
    base[1, 4] = 12  # person
    base[0, :2] = 9  # vegetation
    return build_modes(base)  # (32, 4, 6)


def test_cityscapes_flip_frequencies_of_a_perfect_model():
    modes = torch.from_numpy(_scene()).long()[None]  # (1, 32, H, W)
    p = torch.from_numpy(mode_probabilities())[None]  # (1, 32)
    stats = mode_calibration(modes, p, modes, p, 25, EVAL_CLASS_IDS)
    assert stats["valid"].sum().item() == 16  # car absent: pairs of modes are identical
    assert stats["mae"].item() == pytest.approx(0.0, abs=1e-12)
    flips = flip_frequencies(modes, stats, dataset_spec("cityscapes").flip_classes)
    expected = [FLIP_PROBS[0], FLIP_PROBS[1], math.nan, FLIP_PROBS[3], FLIP_PROBS[4]]
    for key in ("true", "predicted"):
        assert np.allclose(flips[key][0].numpy(), expected, equal_nan=True)


def test_cityscapes_flip_frequency_of_a_model_that_never_flips():
    modes = torch.from_numpy(_scene()).long()[None]
    p = torch.from_numpy(mode_probabilities())[None]
    stats = mode_calibration(modes[:, :1], torch.ones(1, 1, dtype=torch.float64), modes, p, 25,
                             EVAL_CLASS_IDS)  # one sample: mode 0 (nothing flipped)
    flips = flip_frequencies(modes, stats, dataset_spec("cityscapes").flip_classes)
    assert np.allclose(flips["predicted"][0].numpy(), [0, 0, math.nan, 0, 0], equal_nan=True)
    assert stats["tv"].item() == pytest.approx(1 - mode_probabilities()[[0, 4]].sum())


def test_accumulator_summary():
    cal = ModeCalibration(2, [1])
    cal.update(batch(A, A2, E, E), probs(.25, .25, .25, .25), batch(E, A), probs(.7, .3))
    cal.update(batch(A, C), probs(.5, .5), batch(A, C, E), probs(.5, .5, 0))
    out = cal.summary()
    assert out["num_images"] == 2
    assert out["mae"]["mean"] == pytest.approx(0.1) and out["tv"]["mean"] == pytest.approx(0.1)
    assert out["mae"]["ci_low"] <= out["mae"]["mean"] <= out["mae"]["ci_high"]
    # by rank: image 1 sorted (.7, .3) vs predicted (.5, .5); image 2 (.5, .5) vs (.5, .5)
    assert out["by_rank"]["true"] == pytest.approx([0.6, 0.4])
    assert out["by_rank"]["predicted"] == pytest.approx([0.5, 0.5])
    assert [im["index"] for im in out["per_image"]] == [0, 1]
    assert "flips" not in out
