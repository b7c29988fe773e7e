"""Metric conventions of `ged_miou`: empty-vs-empty distance ('zero' / 'skip') and matching
('hungarian' / 'ot'), on hand-made cases whose values are worked out in the comments."""

import math

import pytest
import torch

from utils.evaluation.metrics import ged_miou

E = [[0, 0], [0, 0]]  # empty mask
A = [[1, 0], [0, 0]]  # one foreground pixel
B = [[1, 1], [0, 0]]  # A plus one pixel: d(A, B) = 1 - 1/2 = 0.5, d(empty, A or B) = 1


def maps(*masks):
    """(1, T, 2, 2) int64 batch of one image from 2x2 masks."""
    return torch.tensor([list(masks)], dtype=torch.long)


def w(*values):
    return torch.tensor([list(values)], dtype=torch.float64)


def test_defaults_are_moses_conventions():
    g = torch.Generator().manual_seed(0)
    s, y = torch.randint(0, 2, (3, 8, 6, 6), generator=g), torch.randint(0, 2, (3, 4, 6, 6),
                                                                         generator=g)
    s[0] = 0  # empty samples and annotations occur
    y[0, :2] = 0
    default = ged_miou(s, y)
    explicit = ged_miou(s, y, empty_distance="zero", matching="hungarian")
    for a, b in zip(default, explicit):
        assert torch.equal(a, b)


def test_empty_pairs_zero_vs_skip():
    # samples {E, A}, annotations {E, B}, uniform weights.
    # zero: E[d(s,y)] = (0 + 1 + 1 + .5)/4 = .625, E[d(s,s')] = E[d(y,y')] = (0+1+1+0)/4 = .5
    #       GED = 1.25 - 1 = .25; Hungarian pairs E-E (IoU 1), A-B (.5): M-IoU .75.
    # skip: the E-E pairs leave the expectations, weights renormalised over the rest (3/4):
    #       E[d(s,y)] = 2.5/3, E[d(s,s')] = E[d(y,y')] = 2/3, GED = 5/3 - 4/3 = 1/3;
    #       E-E is still matched (cost 0) but left out of the average: M-IoU = .5.
    s, y = maps(E, A), maps(E, B)
    ged, miou = ged_miou(s, y)
    assert ged.item() == pytest.approx(0.25) and miou.item() == pytest.approx(0.75)
    ged, miou = ged_miou(s, y, empty_distance="skip")
    assert ged.item() == pytest.approx(1 / 3) and miou.item() == pytest.approx(0.5)


def test_all_empty_samples_are_undefined_under_skip():
    # samples {E, E}, annotations {E, A}. zero: E[d(s,y)] = .5, E[d(s,s')] = 0, E[d(y,y')] = .5,
    # GED = .5; matching E-E (1) and E-A (0): M-IoU .5. skip: every sample-sample pair is
    # undefined, so the GED is NaN (left out of split means); the only defined matched pair is
    # E-A (IoU 0).
    s, y = maps(E, E), maps(E, A)
    ged, miou = ged_miou(s, y)
    assert ged.item() == pytest.approx(0.5) and miou.item() == pytest.approx(0.5)
    ged, miou = ged_miou(s, y, empty_distance="skip")
    assert math.isnan(ged.item()) and miou.item() == pytest.approx(0.0, abs=1e-7)


def test_identical_sets_with_empty_masks_score_perfectly_either_way():
    s = maps(E, A, B, E)
    for empty in ("zero", "skip"):
        ged, miou = ged_miou(s, s.clone(), empty_distance=empty)
        assert ged.item() == pytest.approx(0.0, abs=1e-12) and miou.item() == pytest.approx(1.0)


def test_skip_changes_nothing_without_empty_masks():
    g = torch.Generator().manual_seed(1)
    s, y = torch.randint(0, 2, (4, 8, 5, 5), generator=g), torch.randint(0, 2, (4, 4, 5, 5),
                                                                         generator=g)
    s[..., 0, 0], y[..., 0, 0] = 1, 1  # no empty mask anywhere
    for a, b in zip(ged_miou(s, y), ged_miou(s, y, empty_distance="skip")):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_uniform_weights_hungarian_equals_ot():
    # Replicating the annotations and matching one-to-one is an optimal transport plan for
    # uniform weights (N % M == 0), so both conventions give the same M-IoU (and GED).
    g = torch.Generator().manual_seed(2)
    s, y = torch.randint(0, 2, (5, 12, 6, 6), generator=g), torch.randint(0, 2, (5, 4, 6, 6),
                                                                          generator=g)
    ged_h, miou_h = ged_miou(s, y, matching="hungarian")
    ged_o, miou_o = ged_miou(s, y, matching="ot")
    assert torch.equal(ged_h, ged_o)
    assert torch.allclose(miou_h, miou_o, rtol=0, atol=1e-12)


def test_weighted_samples_use_transport_under_both_matchings():
    # samples {A, B} with weights (.9, .1), annotations {A, B} uniform. Transport: A sends .5 to
    # A (IoU 1) and .4 to B (IoU .5), B sends .1 to B: M-IoU = .5 + .2 + .1 = .8.
    # GED = 2(.9*.5*.5 + .1*.5*.5) - 2*.9*.1*.5 - 2*.25*.5 = .5 - .09 - .25 = .16.
    # Uniform sample weights instead: identical sets, GED 0 and M-IoU 1.
    s, y = maps(A, B), maps(A, B)
    for matching in ("hungarian", "ot"):
        ged, miou = ged_miou(s, y, w(0.9, 0.1), matching=matching)
        assert ged.item() == pytest.approx(0.16) and miou.item() == pytest.approx(0.8)
        ged, miou = ged_miou(s, y, w(0.5, 0.5), matching=matching)
        assert ged.item() == pytest.approx(0.0, abs=1e-12) and miou.item() == pytest.approx(1.0)


def test_undefined_multiclass_pair_hungarian_scores_zero_ot_is_nan():
    # 3 classes, evaluated [1, 2]; Z holds no evaluated class, so d(Z, Z) is undefined (NaN).
    Z, P = [[0, 0], [0, 0]], [[1, 0], [0, 2]]
    s, y = maps(Z, P), maps(Z, P)
    kw = dict(num_classes=3, eval_class_ids=[1, 2])
    _, miou = ged_miou(s, y, **kw)  # reference behaviour: an unsolvable matrix scores 0
    assert miou.item() == 0.0
    _, miou = ged_miou(s, y, matching="ot", **kw)
    assert math.isnan(miou.item())
    for matching in ("hungarian", "ot"):
        ged, miou = ged_miou(s, y, empty_distance="skip", matching=matching, **kw)
        assert ged.item() == pytest.approx(0.0, abs=1e-12) and miou.item() == pytest.approx(1.0)


def test_unknown_convention_is_an_error():
    s = maps(A, B)
    with pytest.raises(ValueError, match="empty_distance"):
        ged_miou(s, s, empty_distance="one")
    with pytest.raises(ValueError, match="matching"):
        ged_miou(s, s, matching="greedy")
