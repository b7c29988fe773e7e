"""Sample-count sweep: GED and M-IoU against the number of samples, with bootstrap CIs.

Headline GED and M-IoU depend on how many samples are drawn. The sweep evaluates one split at
several sample counts N from ONE set of draws per image: the standard representation draws
max(N) ancestral samples and every count uses a prefix of them (i.i.d. draws, so a prefix is a
valid draw of that size, and differences between counts are not resampling noise); the compact
representation draws max(S) samples per expert and S uses the first S of each expert, weights
π_k / S. Compact counts are N = K·S, matched to the requested counts where K divides them.
Uncertainty over images: 95% percentile bootstrap confidence intervals of the per-image mean,
1000 resamples from a fixed seed, vectorised with numpy.
"""

import contextlib
from typing import Any, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from utils.evaluation.metrics import pairwise_distance, scores_from_distances
from utils.labels import hard_labels

SWEEP_COUNTS = (1, 4, 16, 32, 100)
# Bootstrap resample indices drawn at once: bounds memory for large splits.
_MAX_INDICES = 2**22
# Prediction values (B·N·C·H·W) of one forward of the sweep: bounds memory at 100 samples.
_MAX_PRED = 2**28


def bootstrap_ci(values: Sequence[float], n_resamples: int = 1000, level: float = 0.95,
                 seed: int = 0) -> Dict[str, Any]:
    """Mean of per-image values with a percentile bootstrap confidence interval over images.

    NaN values (e.g. images whose GED is undefined) are left out, as in the split means.

    Args:
        values: (I,) per-image values.
        n_resamples: bootstrap resamples R.
        level: coverage of the interval.
        seed: seed of the resampling (the same seed gives the same interval).

    Returns:
        dict with `mean`, `ci_low`, `ci_high` (NaN without values) and `num_images`.
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]  # (I,)
    n = len(x)
    if n == 0:
        return dict(mean=float("nan"), ci_low=float("nan"), ci_high=float("nan"), num_images=0)
    rng = np.random.default_rng(seed)
    step = max(1, _MAX_INDICES // n)
    means = np.concatenate([x[rng.integers(0, n, size=(min(step, n_resamples - r), n))].mean(1)
                            for r in range(0, n_resamples, step)])  # (R,)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return dict(mean=float(x.mean()), ci_low=float(low), ci_high=float(high), num_images=n)


def compact_sizes(counts: Sequence[int], num_expert: int) -> List[int]:
    """Samples per expert S for the compact representation, N = K·S near each count.

    Args:
        counts: requested sample counts N.
        num_expert: K.

    Returns:
        Sorted distinct S >= 1 (S = N / K where K divides N, else the nearest S).
    """
    return sorted({max(1, round(n / num_expert)) for n in counts})


def has_experts(model: nn.Module) -> bool:
    """MoSE (a compact representation, expert probabilities) rather than a baseline, whose
    samples are always uniform (`models.prob_unet`, `models.ssn`)."""
    return hasattr(model, "sample_per_mode")


@contextlib.contextmanager
def sampling(model: nn.Module, eval_sample_num: Optional[int],
             sample_per_mode: Optional[int] = None) -> Iterator[nn.Module]:
    """Temporarily set the model's representation: standard with `eval_sample_num` samples, or
    compact (None) with `sample_per_mode` samples per expert (None: unchanged). A baseline has
    only the standard representation: None leaves its sample count unchanged."""
    experts = has_experts(model)
    saved = model.eval_sample_num, getattr(model, "sample_per_mode", None)
    if experts or eval_sample_num is not None:
        model.eval_sample_num = eval_sample_num
    if experts and sample_per_mode is not None:
        model.sample_per_mode = sample_per_mode
    try:
        yield model
    finally:
        model.eval_sample_num = saved[0]
        if experts:
            model.sample_per_mode = saved[1]


def _draw(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, masked_pred: bool,
          generator: Optional[torch.Generator]) -> Dict[str, torch.Tensor]:
    """Hard samples (B, N, H, W), weights (B, N) and expert probs (B, K) of one batch.

    The forward runs on sub-batches so that no prediction holds more than `_MAX_PRED` values
    (100 samples of 25 classes at 256×512 take 1.3 GB per image).
    """
    B, _, H, W = x.shape
    N = model.eval_sample_num or model.num_expert * model.sample_per_mode
    chunk = max(1, _MAX_PRED // (N * model.num_classes * H * W))
    parts = []
    for i in range(0, B, chunk):
        out = model(x[i:i + chunk], label=labels[i:i + chunk] if masked_pred else None,
                    generator=generator)
        parts.append(dict(samples=hard_labels(out["pred"]), weights=out["weights"],
                          **{k: out[k] for k in ("expert_probs",) if k in out}))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


class _Scorer:
    """Per-image GED and M-IoU of subsets of one batch's samples, from one distance matrix."""

    def __init__(self, samples: torch.Tensor, labels: torch.Tensor, label_probs: torch.Tensor,
                 cfg: Any):
        self.N, M = samples.shape[1], labels.shape[1]
        self.cfg = cfg
        maps = torch.cat([samples, labels.to(samples.device)], dim=1)  # (B, N+M, H, W)
        self.dist = pairwise_distance(maps, cfg.n_classes, cfg.eval_class_ids,
                                      cfg.empty_distance).cpu()  # (B, N+M, N+M)
        self.annotations = list(range(self.N, self.N + M))
        self.v = label_probs.detach().double().cpu()  # (B, M)

    def __call__(self, index: List[int], weights: torch.Tensor) -> tuple:
        """GED (B,) and M-IoU (B,) of the samples at `index` with weights (B, len(index))."""
        keep = index + self.annotations
        dist = self.dist[:, keep][:, :, keep]  # (B, n+M, n+M)
        return scores_from_distances(dist, len(index), weights, self.v, self.cfg.empty_distance,
                                     self.cfg.matching)


def _batch_sweep(model, x, labels, label_probs, cfg, generator, counts, sizes, acc) -> None:
    """Add one batch's per-image GED and M-IoU at every count to the lists in `acc`."""
    B = x.shape[0]
    with sampling(model, max(counts)):
        std = _draw(model, x, labels, cfg.masked_pred, generator)
    score = _Scorer(std["samples"], labels, label_probs, cfg)
    for n in counts:
        ged, miou = score(list(range(n)), torch.full((B, n), 1.0 / n, dtype=torch.float64))
        acc["standard"][n]["ged"].append(ged)
        acc["standard"][n]["miou"].append(miou)
    if not sizes:  # a baseline: no compact representation
        return
    S_max = max(sizes)
    with sampling(model, None, S_max):
        comp = _draw(model, x, labels, cfg.masked_pred, generator)
    score = _Scorer(comp["samples"], labels, label_probs, cfg)
    pi = comp["expert_probs"].detach().double().cpu()  # (B, K)
    for S in sizes:
        index = [k * S_max + s for k in range(pi.shape[1]) for s in range(S)]  # S per expert
        ged, miou = score(index, (pi / S).repeat_interleave(S, dim=1))  # weights (B, K·S)
        acc["compact"][S]["ged"].append(ged)
        acc["compact"][S]["miou"].append(miou)


@torch.no_grad()
def sample_count_sweep(model: nn.Module, loader: DataLoader, cfg: Any, device: torch.device,
                       generator: Optional[torch.Generator] = None,
                       counts: Sequence[int] = SWEEP_COUNTS, n_resamples: int = 1000
                       ) -> Dict[str, Any]:
    """GED and M-IoU of a split at several sample counts, both representations.

    Args:
        model: MoSE (its representation settings are restored afterwards).
        loader: yields (x, labels (B, M, H, W), label_probs (B, M)).
        cfg: settings with `n_classes`, `eval_class_ids`, `masked_pred`, `eval_seed` and the
            metric conventions `empty_distance`, `matching`.
        device: where to compute.
        generator: sampling generator (a freshly seeded one makes the sweep repeatable).
        counts: sample counts N of the standard representation.
        n_resamples: bootstrap resamples.

    Returns:
        dict with `counts`, `num_expert`, and `standard` / `compact`: lists of entries
        {num_samples, (compact: sample_per_mode, matched), ged, miou}, where ged and miou hold
        `mean`, `ci_low`, `ci_high`, `num_images` (95% percentile bootstrap over images).
    """
    model.eval()
    counts = sorted(set(int(n) for n in counts))
    K = getattr(model, "num_expert", None)  # None for the baselines: standard only
    sizes = compact_sizes(counts, K) if has_experts(model) else []
    acc = {"standard": {n: {"ged": [], "miou": []} for n in counts},
           "compact": {S: {"ged": [], "miou": []} for S in sizes}}
    for x, labels, label_probs in tqdm(loader, desc="sweep", leave=False, disable=None):
        _batch_sweep(model, x.to(device), labels.to(device), label_probs, cfg, generator, counts,
                     sizes, acc)
    seed = cfg.eval_seed

    def entry(lists: Dict[str, list]) -> Dict[str, Any]:
        return {m: bootstrap_ci(torch.cat(lists[m]).numpy(), n_resamples, seed=seed)
                for m in ("ged", "miou")}

    standard = [dict(num_samples=n, **entry(acc["standard"][n])) for n in counts]
    compact = [dict(num_samples=K * S, sample_per_mode=S, matched=K * S in counts,
                    **entry(acc["compact"][S])) for S in sizes]
    return dict(counts=counts, num_expert=K, standard=standard, compact=compact,
                bootstrap=dict(resamples=n_resamples, level=0.95, seed=seed))
