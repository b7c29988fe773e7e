"""GED, M-IoU and ECE recomputed from their definitions with loops over pairs, bins and images in
numpy and scipy (no project metric code), and the predictions of a run's checkpoint drawn again
with the evaluation's seeds: the end-to-end tests compare a run's reported figures with these.

The definitions (docs/metrics.md): the distance between two label maps is 1 − IoU of the
foreground (binary; two empty masks at distance 0) or the mean 1 − IoU over the evaluated
classes present in either map (multi-class; no such class: undefined). GED² = 2·E d(s, y) −
E d(s, s') − E d(y, y') under the sample and annotation weights; an image with an undefined
distance has no GED. M-IoU = 1 − the optimal transport cost between the normalised weights
(for uniform weights with N a multiple of M this equals the Hungarian matching of the samples
with the annotations replicated N / M times; such a matching with an undefined distance scores 0,
the authors' behaviour). ECE: per pixel, the weighted mean of the sample probabilities against
the weighted annotation frequency, in 10 bins (lower, upper] of the confidence.
"""

import math
from typing import Optional, Sequence

import numpy as np
import pytest
import torch
from scipy.optimize import linprog


def distance(a: np.ndarray, b: np.ndarray, num_classes: int,
             eval_class_ids: Optional[Sequence[int]]) -> float:
    """1 − IoU between two (H, W) label maps (NaN where undefined)."""
    if num_classes == 2:
        inter, union = np.sum((a == 1) & (b == 1)), np.sum((a == 1) | (b == 1))
        return 0.0 if union == 0 else 1.0 - inter / union
    values = []
    for c in (range(num_classes) if eval_class_ids is None else eval_class_ids):
        inter, union = np.sum((a == c) & (b == c)), np.sum((a == c) | (b == c))
        if union > 0:
            values.append(1.0 - inter / union)
    return float(np.mean(values)) if values else math.nan


def expectation(first: np.ndarray, second: np.ndarray, u: np.ndarray, v: np.ndarray,
                num_classes: int, eval_class_ids: Optional[Sequence[int]]) -> float:
    """Σ_i Σ_j u_i v_j d(first_i, second_j), one pair at a time."""
    return sum(u[i] * v[j] * distance(first[i], second[j], num_classes, eval_class_ids)
               for i in range(len(first)) for j in range(len(second)))


def ged(samples: np.ndarray, gts: np.ndarray, u: np.ndarray, v: np.ndarray, num_classes: int,
        eval_class_ids: Optional[Sequence[int]] = None) -> float:
    """GED² of one image: samples (N, H, W) with weights u (N,), annotations (M, H, W), v (M,)."""
    args = (num_classes, eval_class_ids)
    return (2 * expectation(samples, gts, u, v, *args) - expectation(samples, samples, u, u, *args)
            - expectation(gts, gts, v, v, *args))


def transport_cost(cost: np.ndarray, u: np.ndarray, v: np.ndarray) -> float:
    """Minimal Σ P_ij cost_ij over plans P ≥ 0 with row sums u and column sums v (an LP)."""
    N, M = cost.shape
    rows = np.kron(np.eye(N), np.ones(M))  # (N, N·M): Σ_j P_ij
    cols = np.kron(np.ones(N), np.eye(M))  # (M, N·M): Σ_i P_ij
    result = linprog(cost.ravel(), A_eq=np.vstack([rows, cols]), b_eq=np.concatenate([u, v]),
                     bounds=(0, None), method="highs")
    assert result.status == 0, result.message
    return float(result.fun)


def miou(samples: np.ndarray, gts: np.ndarray, u: np.ndarray, v: np.ndarray, num_classes: int,
         eval_class_ids: Optional[Sequence[int]] = None) -> float:
    """M-IoU of one image (zero-weight annotations take no part)."""
    gts, v = gts[v > 0], v[v > 0]
    d = np.array([[distance(s, y, num_classes, eval_class_ids) for y in gts] for s in samples])
    uniform = np.all(u == u[0]) and np.all(v == v[0]) and len(samples) % len(gts) == 0
    if np.isnan(d).any():
        return 0.0 if uniform else math.nan
    return 1.0 - transport_cost(d, u / u.sum(), v / v.sum())


def pixel_confidences(pred: np.ndarray, u: np.ndarray, gts: np.ndarray, v: np.ndarray,
                      num_classes: int, eval_class_ids: Optional[Sequence[int]] = None):
    """Confidence, accuracy and whether it is binned, for every pixel of a batch.

    Args:
        pred: (B, N, C, H, W) probabilities, or logits (any value of the batch above 1).
        u: (B, N) sample weights; gts: (B, M, H, W) annotations; v: (B, M) their weights.
    Returns:
        Three (B·H·W,) arrays.
    """
    pred = pred.astype(np.float64)
    if (pred > 1).any():
        pred = np.exp(pred - pred.max(2, keepdims=True))
        pred /= pred.sum(2, keepdims=True)
    marginal = np.einsum("bn,bnchw->bchw", u.astype(np.float64), pred)  # (B, C, H, W)
    frequency = np.stack([np.einsum("bm,bmhw->bhw", v.astype(np.float64), gts == c)
                          for c in range(num_classes)], axis=1)  # (B, C, H, W)
    if num_classes == 2:
        conf, acc = marginal[:, 1], frequency[:, 1]  # (B, H, W)
        counted = np.ones(conf.shape, bool)
    else:
        top = marginal.argmax(1)  # (B, H, W)
        conf = np.take_along_axis(marginal, top[:, None], 1)[:, 0]
        acc = np.take_along_axis(frequency, top[:, None], 1)[:, 0]
        ids = range(num_classes) if eval_class_ids is None else eval_class_ids
        counted = np.isin(top, list(ids))
    return conf.ravel(), acc.ravel(), counted.ravel()


def ece(batches: list, num_classes: int, eval_class_ids: Optional[Sequence[int]] = None,
        n_bins: int = 10, shift: float = 0.0) -> float:
    """ECE (a fraction) over every pixel of `batches`, [(pred, u, gts, v)] as for
    `pixel_confidences`; every pixel counts in the denominator, binned or not. `shift` moves the
    inner bin edges (to bound the effect of rounding on a confidence next to an edge)."""
    conf, acc, counted = (np.concatenate(parts) for parts in zip(
        *(pixel_confidences(*batch, num_classes, eval_class_ids) for batch in batches)))
    edges = [0.0] + [b / n_bins + shift for b in range(1, n_bins)] + [1.0]
    gap = 0.0
    for lower, upper in zip(edges[:-1], edges[1:]):
        inside = counted & (conf > lower) & (conf <= upper)
        gap += abs(conf[inside].sum() - acc[inside].sum())
    return gap / conf.size


def split_predictions(cfg, checkpoint, split: str) -> list:
    """The predictions evaluation makes on a split: the checkpoint in eval mode, batch j of
    `test_batch_size` in order sampled from a generator seeded by numpy's SeedSequence of
    (eval_seed, j).

    Returns:
        [(pred (B, N, C, H, W), weights (B, N), labels (B, M, H, W), label_probs (B, M))] as
        numpy arrays, one tuple per batch.
    """
    from utils.build import build_loaders, build_model
    from utils.runtime.checkpoint import load_model_weights

    model = build_model(cfg)
    load_model_weights(model, checkpoint)
    model.eval()
    batches = []
    with torch.no_grad():
        for j, (x, labels, label_probs) in enumerate(build_loaders(cfg, (split,))[split]):
            seed = int(np.random.SeedSequence([cfg.eval_seed, j]).generate_state(1, np.uint64)[0])
            out = model(x, label=labels if cfg.masked_pred else None,
                        generator=torch.Generator().manual_seed(seed))
            batches.append((out["pred"].numpy(), out["weights"].numpy(), labels.numpy(),
                            label_probs.numpy()))
    return batches


def split_figures(cfg, checkpoint, split: str) -> dict:
    """GED, M-IoU (means over the images where defined) and ECE of a checkpoint on a split.

    Returns:
        dict with `ged`, `miou`, `num_images` and `ece`, the latter as the (low, high) range
        over inner bin edges moved by ±1e-6: a float32 confidence within rounding of an edge
        may fall on either side of it.
    """
    geds, mious = [], []
    batches = split_predictions(cfg, checkpoint, split)
    for pred, u, labels, v in batches:
        samples = pred.argmax(2)  # (B, N, H, W), first maximum on ties
        for b in range(len(pred)):
            args = (samples[b], labels[b], u[b].astype(np.float64), v[b].astype(np.float64),
                    cfg.n_classes, cfg.eval_class_ids)
            geds.append(ged(*args))
            mious.append(miou(*args))
    eces = [ece(batches, cfg.n_classes, cfg.eval_class_ids, shift=s) for s in (-1e-6, 0, 1e-6)]
    return dict(ged=nanmean(geds), miou=nanmean(mious), num_images=len(geds),
                ece=(min(eces), max(eces)))


def assert_reported_figures(results: dict, split: str = "test") -> dict:
    """The GED, M-IoU and ECE an evaluation reported (its results dict, which names the
    checkpoint and holds the resolved config) equal the brute-force figures of that checkpoint.

    Returns:
        The brute-force figures (`split_figures`).
    """
    from utils.config.config import Config

    want = split_figures(Config(results["config"]), results["checkpoint"], split)
    assert results["num_images"] == want["num_images"]
    # distances are exact pixel counts; the project smooths each IoU by 1e-8
    for key in ("ged", "miou"):
        assert results[key] == pytest.approx(want[key], rel=1e-6, abs=1e-7, nan_ok=True), key
    low, high = want["ece"]
    assert low - 1e-6 <= results["ece"] <= high + 1e-6, (results["ece"], want["ece"])
    return want


def nanmean(values: list) -> float:
    """Mean over the defined values (NaN if none)."""
    kept = [x for x in values if not math.isnan(x)]
    return float(np.mean(kept)) if kept else math.nan
