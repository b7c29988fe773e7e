"""GED, M-IoU and ECE: properties, brute force on small inputs, and the streaming ECE."""

import numpy as np
import ot
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from utils.evaluation.metrics import StreamingECE, ged_miou, pairwise_distance
from utils.labels import hard_labels

IDS = [2, 12, 14, 9, 1, 20, 21, 22, 23, 24]


def brute_distance(a: np.ndarray, b: np.ndarray, num_classes: int, ids) -> float:
    """1 − IoU between two label maps, by the rules of docs/metrics.md, with plain numpy."""
    if num_classes == 2:
        inter = np.sum((a == 1) & (b == 1))
        union = np.sum((a == 1) | (b == 1))
        return 1 - (inter + 1e-8) / (union + 1e-8)
    per_class = []
    for c in ids:
        inter = np.sum((a == c) & (b == c))
        union = np.sum((a == c) | (b == c))
        per_class.append(np.nan if union == 0 else 1 - (inter + 1e-8) / (union + 1e-8))
    return np.nan if np.all(np.isnan(per_class)) else np.nanmean(per_class)


def brute_ged_miou(s, y, u, v, num_classes, ids):
    """One image's GED and M-IoU with loops over pairs (reference for the vectorised code)."""
    N, M = len(s), len(y)
    d = lambda a, b: brute_distance(a, b, num_classes, ids)  # noqa: E731
    d_sy = np.array([[d(a, b) for b in y] for a in s])
    ged = (2 * sum(u[n] * v[m] * d_sy[n, m] for n in range(N) for m in range(M))
           - sum(u[n] * u[k] * d(s[n], s[k]) for n in range(N) for k in range(N))
           - sum(v[m] * v[k] * d(y[m], y[k]) for m in range(M) for k in range(M)))
    if np.allclose(u, u[0], rtol=0, atol=0) and np.allclose(v, v[0], rtol=0, atol=0) \
            and N % M == 0:
        tiled = np.tile(d_sy, (1, N // M))
        try:
            r, c = linear_sum_assignment(tiled)
            miou = np.mean(1 - tiled[r, c])
        except ValueError:
            miou = 0.0
    else:
        miou = np.sum(ot.emd(u / u.sum(), v / v.sum(), d_sy) * (1 - d_sy))
    return ged, miou


def random_maps(seed, B, N, M, H, W, C, weighted):
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(0, C, (B, N, H, W), generator=g)
    y = torch.randint(0, C, (B, M, H, W), generator=g)
    if not weighted:
        return s, y, None, None
    u = torch.softmax(torch.randn(B, N, generator=g, dtype=torch.float64), 1)
    v = torch.softmax(torch.randn(B, M, generator=g, dtype=torch.float64), 1)
    return s, y, u, v


@pytest.mark.parametrize("C,ids,weighted,N", [(2, [1], False, 8), (2, [1], True, 6),
                                              (25, IDS, False, 8), (25, IDS, True, 5)])
def test_ged_and_miou_match_brute_force(C, ids, weighted, N):
    s, y, u, v = random_maps(0, 2, N, 4, 6, 7, C, weighted)
    if C == 2:  # empty masks (multi-class: 42 pixels leave most evaluated classes absent)
        s[0, 0] = 0
        y[1, :2] = 0
    ged, miou = ged_miou(s, y, u, v, num_classes=C, eval_class_ids=ids)
    for b in range(2):
        ub = np.full(N, 1 / N) if u is None else u[b].numpy()
        vb = np.full(4, 0.25) if v is None else v[b].numpy()
        ref_ged, ref_miou = brute_ged_miou(s[b].numpy(), y[b].numpy(), ub, vb, C, ids)
        assert ged[b].item() == pytest.approx(ref_ged, abs=1e-9, nan_ok=True)
        assert miou[b].item() == pytest.approx(ref_miou, abs=1e-9)


def test_classes_absent_from_both_maps_are_skipped_and_all_absent_is_nan():
    a = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    a[0, 0, :2] = 2  # map 0: class 2 on top; map 1: only class 0 (not evaluated)
    d = pairwise_distance(a, 25, IDS)
    assert d[0, 0, 0] == 0  # only class 2 present: identical
    assert d[0, 0, 1] == pytest.approx(1.0)  # class 2 in one map only
    assert torch.isnan(d[0, 1, 1])  # no evaluated class anywhere
    ged, miou = ged_miou(a[:, 1:], a[:, 1:], num_classes=25, eval_class_ids=IDS)
    assert torch.isnan(ged[0]) and miou[0] == 0  # unsolvable assignment scores 0


def test_identical_sets_have_zero_ged_and_full_miou():
    s, _, _, _ = random_maps(1, 2, 4, 4, 8, 8, 2, False)
    ged, miou = ged_miou(s, s.clone())
    torch.testing.assert_close(ged, torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(miou, torch.ones(2, dtype=torch.float64))


def test_metrics_are_permutation_invariant():
    s, y, u, v = random_maps(2, 2, 6, 3, 8, 8, 25, True)
    ps, py = torch.randperm(6), torch.randperm(3)
    a = ged_miou(s, y, u, v, 25, IDS)
    b = ged_miou(s[:, ps], y[:, py], u[:, ps], v[:, py], 25, IDS)
    for x, z in zip(a, b):
        torch.testing.assert_close(x, z)


def test_hungarian_and_emd_agree_for_uniform_weights():
    s, y, _, _ = random_maps(3, 2, 8, 4, 8, 8, 2, False)
    _, hungarian = ged_miou(s, y)
    nearly = torch.full((2, 8), 1 / 8, dtype=torch.float64)
    nearly[:, 0] += 1e-15  # not exactly uniform: the EMD branch
    _, emd = ged_miou(s, y, nearly)
    torch.testing.assert_close(hungarian, emd, atol=1e-9, rtol=0)


def brute_ece(pred, weights, gts, gt_weights, num_classes, ids, n_bins=10):
    """ECE with every pixel kept in memory (the authors' approach), for comparison."""
    if (pred > 1).any():
        pred = torch.softmax(pred, 2)
    marg = (weights[:, :, None, None, None] * pred).sum(1)  # (B, C, H, W)
    onehot = torch.nn.functional.one_hot(gts, num_classes).permute(0, 1, 4, 2, 3).float()
    gmarg = (gt_weights[:, :, None, None, None] * onehot).sum(1)
    if num_classes == 2:
        conf, acc, keep = marg[:, 1], gmarg[:, 1], torch.ones_like(marg[:, 1], dtype=torch.bool)
    else:
        conf, cls = marg.max(1)
        acc = gmarg.gather(1, cls[:, None])[:, 0]
        keep = torch.isin(cls, torch.tensor(ids))
    conf, acc, keep = conf.flatten(), acc.flatten(), keep.flatten()
    edges = torch.linspace(0, 1, n_bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inb = keep & (conf > lo) & (conf <= hi)
        if inb.any():
            ece += inb.sum().item() / conf.numel() * abs(
                conf[inb].double().mean().item() - acc[inb].double().mean().item())
    return ece


@pytest.mark.parametrize("C,ids,logits", [(2, [1], False), (2, [1], True), (25, IDS, True),
                                          (5, [1, 3], False)])
def test_streaming_ece_equals_the_all_pixels_computation(C, ids, logits):
    g = torch.Generator().manual_seed(4)
    out = torch.randn(4, 6, C, 8, 8, generator=g) * 3
    pred = out if logits else torch.softmax(out, 2)
    u = torch.softmax(torch.randn(4, 6, generator=g), 1)
    gts = torch.randint(0, C, (4, 3, 8, 8), generator=g)
    v = torch.softmax(torch.randn(4, 3, generator=g), 1)
    ece = StreamingECE(C, ids)
    for b in range(0, 4, 2):  # two batches
        ece.update(pred[b:b + 2], u[b:b + 2], gts[b:b + 2], v[b:b + 2])
    assert ece.compute() == pytest.approx(brute_ece(pred, u, gts, v, C, ids), abs=1e-9)


def test_ece_bins_exclude_zero_confidence_and_state_round_trips():
    pred = torch.zeros(1, 1, 2, 2, 2)
    pred[..., 0, :, :] = 1.0  # foreground probability exactly 0 everywhere
    pred[0, 0, :, 0, 0] = torch.tensor([0.25, 0.75])
    gts = torch.zeros(1, 1, 2, 2, dtype=torch.long)
    ece = StreamingECE(2, [1])
    ece.update(pred, torch.ones(1, 1), gts, torch.ones(1, 1))
    assert ece.compute() == pytest.approx(0.75 / 4)  # one pixel in a bin, 4 in the denominator
    other = StreamingECE(2, [1])
    other.load_state(ece.state())
    assert other.compute() == ece.compute()


@pytest.mark.parametrize("C", [2, 5])
def test_hard_labels_equal_argmax_with_ties(C):
    g = torch.Generator().manual_seed(5)
    pred = (torch.rand(2, 3, C, 6, 7, generator=g) * 4).round()  # many ties
    assert torch.equal(hard_labels(pred), pred.argmax(2))
