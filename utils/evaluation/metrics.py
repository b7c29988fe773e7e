"""Evaluation metrics on hard samples: GED, matched IoU (M-IoU), and streaming ECE.

Distances are 1 − IoU with IoU = (I + 1e-8) / (U + 1e-8). Binary problems (C = 2) use the
foreground only, so two empty masks are at distance 0. Multi-class problems compute one IoU per
evaluated class, a class absent from both masks being NaN, and average the others.
All pairwise intersections come from one Gram matrix per class.

Papers differ in two conventions, offered as options of `ged_miou` (MoSE's are the defaults):
- `empty_distance`: 'zero' (two empty binary masks are at distance 0) or 'skip' (a pair of maps
  without any evaluated class has no distance; it is left out of every expectation of the GED
  and of the M-IoU average, the remaining weights renormalised).
- `matching`: 'hungarian' (uniform weights with N % M == 0: annotations replicated N / M times
  and matched one-to-one, an unsolvable matrix scoring 0; otherwise optimal transport) or 'ot'
  (always the optimal transport plan; an undefined distance makes the M-IoU NaN).
"""

from typing import Optional, Sequence, Tuple

import numpy as np
import ot
import torch
from scipy.optimize import linear_sum_assignment

SMOOTH = 1e-8


def class_distance(masks: torch.Tensor, nan_if_absent: bool) -> torch.Tensor:
    """1 − IoU between every pair of binary masks.

    Args:
        masks: (B, T, P) float 0/1 masks.
        nan_if_absent: NaN where both masks are empty (multi-class) instead of distance 0.

    Returns:
        (B, T, T) float64 distances.
    """
    inter = (masks @ masks.transpose(1, 2)).double()  # (B, T, T), exact integer counts
    area = inter.diagonal(dim1=1, dim2=2)  # (B, T)
    union = area[:, :, None] + area[:, None, :] - inter  # (B, T, T)
    dist = 1 - (inter + SMOOTH) / (union + SMOOTH)  # (B, T, T)
    if nan_if_absent:
        dist = dist.masked_fill(union == 0, float("nan"))
    return dist


EMPTY_DISTANCES = ("zero", "skip")
MATCHINGS = ("hungarian", "ot")


def pairwise_distance(maps: torch.Tensor, num_classes: int,
                      eval_class_ids: Optional[Sequence[int]] = None,
                      empty_distance: str = "zero") -> torch.Tensor:
    """Distances between all label maps of each image.

    Args:
        maps: (B, T, H, W) int label maps (samples and annotations stacked).
        num_classes: C; C = 2 is the binary foreground-only case.
        eval_class_ids: classes averaged in the multi-class case (default: all).
        empty_distance: 'zero': two empty binary masks are at distance 0; 'skip': NaN instead.
            Multi-class pairs without any evaluated class are NaN either way.

    Returns:
        (B, T, T) float64 distances (NaN where no evaluated class occurs in either map).
    """
    B, T = maps.shape[:2]
    flat = maps.reshape(B, T, -1)  # (B, T, P)
    dtype = torch.float64 if flat.shape[-1] >= 2**24 else torch.float32
    if num_classes == 2:
        return class_distance((flat == 1).to(dtype), nan_if_absent=empty_distance == "skip")
    classes = range(num_classes) if eval_class_ids is None else eval_class_ids
    dists = torch.stack([class_distance((flat == c).to(dtype), nan_if_absent=True)
                         for c in classes])  # (E, B, T, T)
    return torch.nanmean(dists, dim=0)  # (B, T, T), NaN where every class is absent


def ged_from_distances(d_sy, d_ss, d_yy, u, v, skip_undefined: bool = False) -> torch.Tensor:
    """GED² = 2 E d(s, y) − E d(s, s') − E d(y, y') with weights (diagonals included).

    Args:
        d_sy (B, N, M), d_ss (B, N, N), d_yy (B, M, M) distances; u (B, N), v (B, M) weights.
        skip_undefined: each expectation runs over the pairs with a defined (non-NaN) distance,
            their weights renormalised; a term without any such pair is NaN. False: a NaN
            distance makes the image's GED NaN.

    Returns:
        (B,) float64.
    """
    if not skip_undefined:
        cross = torch.einsum("bn,bnm,bm->b", u, d_sy, v)
        self_s = torch.einsum("bn,bnk,bk->b", u, d_ss, u)
        self_y = torch.einsum("bm,bmk,bk->b", v, d_yy, v)
        return 2 * cross - self_s - self_y
    terms = []
    for a, d, b in ((u, d_sy, v), (u, d_ss, u), (v, d_yy, v)):
        defined = ~torch.isnan(d)  # (B, ·, ·)
        total = torch.einsum("bi,bij,bj->b", a, torch.nan_to_num(d), b)  # (B,)
        mass = torch.einsum("bi,bij,bj->b", a, defined.to(a), b)  # (B,)
        terms.append(total / mass)  # NaN where the term has no defined pair
    return 2 * terms[0] - terms[1] - terms[2]


def matched_iou(d_sy: np.ndarray, u: np.ndarray, v: np.ndarray, matching: str = "hungarian",
                skip_undefined: bool = False) -> float:
    """M-IoU of one image from its (N, M) distance matrix.

    'hungarian' with uniform weights and N % M == 0: annotations are replicated N / M times and
    matched to the samples one-to-one; an unsolvable matrix (e.g. with NaN) scores 0. Otherwise
    (and always with 'ot') the optimal transport plan between the normalised weights is used.
    With `skip_undefined`, undefined (NaN) pairs cost 0 in the matching and are left out of the
    average; an image whose matched pairs are all undefined is NaN.
    """
    keep = v > 0  # zero-weight annotations (padding) take no part
    if not keep.any():
        return float("nan")
    d_sy, v = d_sy[:, keep], v[keep]
    N, M = d_sy.shape
    undefined = np.isnan(d_sy)
    cost = np.where(undefined, 0.0, d_sy) if skip_undefined else d_sy
    uniform = np.all(u == u[0]) and np.all(v == v[0]) and N % M == 0
    if matching == "hungarian" and uniform:
        tiled = np.tile(cost, (1, N // M))  # (N, N)
        try:
            rows, cols = linear_sum_assignment(tiled)
        except ValueError:
            return 0.0
        scores = 1 - np.tile(d_sy, (1, N // M))[rows, cols]  # (N,), NaN where undefined
        if skip_undefined:
            return float(np.mean(scores[~np.isnan(scores)])) if (~np.isnan(scores)).any() \
                else float("nan")
        return float(np.mean(scores))
    if matching == "ot" and not skip_undefined and undefined.any():
        return float("nan")
    plan = ot.emd(u / u.sum(), v / v.sum(), cost)  # (N, M)
    if skip_undefined:
        mass = plan * ~undefined  # (N, M)
        return float(np.sum(mass * (1 - cost)) / mass.sum()) if mass.sum() > 0 else float("nan")
    return float(np.sum(plan * (1 - d_sy)))


def check_conventions(empty_distance: str, matching: str) -> None:
    """Raise ValueError for an unknown metric convention."""
    if empty_distance not in EMPTY_DISTANCES:
        raise ValueError(f"empty_distance must be one of {EMPTY_DISTANCES}, got {empty_distance!r}")
    if matching not in MATCHINGS:
        raise ValueError(f"matching must be one of {MATCHINGS}, got {matching!r}")


def ged_miou(samples: torch.Tensor, gts: torch.Tensor, weights: Optional[torch.Tensor] = None,
             gt_weights: Optional[torch.Tensor] = None, num_classes: int = 2,
             eval_class_ids: Optional[Sequence[int]] = None, empty_distance: str = "zero",
             matching: str = "hungarian") -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-image generalised energy distance and matched IoU.

    Args:
        samples: (B, N, H, W) int predicted label maps.
        gts: (B, M, H, W) int annotations.
        weights: (B, N) sample weights (None: uniform).
        gt_weights: (B, M) annotation weights (None: uniform).
        num_classes: C (2: binary, foreground only).
        eval_class_ids: evaluated classes for C > 2 (None: all).
        empty_distance: 'zero' (MoSE) or 'skip' (see the module docstring).
        matching: 'hungarian' (MoSE) or 'ot' (see the module docstring).

    Returns:
        ged (B,) and miou (B,) float64 CPU tensors; an image's GED is NaN if any distance is
        (with 'skip': if a term has no defined distance).
    """
    check_conventions(empty_distance, matching)
    B, N = samples.shape[:2]
    M = gts.shape[1]
    maps = torch.cat([samples.long(), gts.long().to(samples.device)], dim=1)  # (B, N+M, H, W)
    dist = pairwise_distance(maps, num_classes, eval_class_ids, empty_distance).cpu()
    return scores_from_distances(dist, N, uniform_if_none(weights, B, N),
                                 uniform_if_none(gt_weights, B, M), empty_distance, matching)


def scores_from_distances(dist: torch.Tensor, N: int, u: torch.Tensor, v: torch.Tensor,
                          empty_distance: str = "zero", matching: str = "hungarian"
                          ) -> Tuple[torch.Tensor, torch.Tensor]:
    """GED and M-IoU from the distances between N samples and M annotations, stacked.

    Args:
        dist: (B, N+M, N+M) float64 CPU distances, samples first (from `pairwise_distance`).
        N: number of samples.
        u: (B, N) and v: (B, M) float64 CPU weights.
        empty_distance, matching: conventions, as for `ged_miou`.

    Returns:
        ged (B,) and miou (B,) float64 tensors.
    """
    skip = empty_distance == "skip"
    d_ss, d_sy, d_yy = dist[:, :N, :N], dist[:, :N, N:], dist[:, N:, N:]
    ged = ged_from_distances(d_sy, d_ss, d_yy, u, v, skip_undefined=skip)  # (B,)
    u_np, v_np, d_np = u.numpy(), v.numpy(), d_sy.numpy()
    miou = torch.tensor([matched_iou(d_np[b], u_np[b], v_np[b], matching, skip)
                         for b in range(dist.shape[0])], dtype=torch.float64)  # (B,)
    return ged, miou


def uniform_if_none(w: Optional[torch.Tensor], B: int, n: int) -> torch.Tensor:
    """(B, n) float64 CPU weights; uniform 1/n when `w` is None."""
    if w is None:
        return torch.full((B, n), 1.0 / n, dtype=torch.float64)
    return w.detach().double().cpu()


class StreamingECE:
    """Expected calibration error of the pixel-wise marginals, accumulated batch by batch.

    Per pixel, the predicted marginal Σ_n u_n·softmax(pred_n) is compared with the annotation
    marginal Σ_m v_m·onehot(y_m). Binary (C = 2): confidence = predicted foreground probability,
    accuracy = annotation foreground frequency. Multi-class: confidence = top class probability,
    accuracy = annotation frequency of that class; only pixels whose predicted class is evaluated
    fall in a bin, but every pixel counts in the denominator. Bins are (lower, upper], so a
    confidence of exactly 0 falls in none. Only per-bin sums are kept.

    Args:
        num_classes: C.
        eval_class_ids: evaluated classes in the multi-class case (None: all).
        n_bins: number of equal-width bins.
    """

    def __init__(self, num_classes: int, eval_class_ids: Optional[Sequence[int]] = None,
                 n_bins: int = 10):
        self.num_classes = num_classes
        self.eval_class_ids = None if eval_class_ids is None else list(eval_class_ids)
        self.n_bins = n_bins
        self.reset()

    def reset(self) -> None:
        """Clear the accumulators."""
        self.count = torch.zeros(self.n_bins, dtype=torch.float64)
        self.conf_sum = torch.zeros(self.n_bins, dtype=torch.float64)
        self.acc_sum = torch.zeros(self.n_bins, dtype=torch.float64)
        self.total = 0

    @torch.no_grad()
    def update(self, pred: torch.Tensor, weights: torch.Tensor, gts: torch.Tensor,
               gt_weights: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: (B, N, C, H, W) probabilities, or logits (detected as any value > 1).
            weights: (B, N) sample weights.
            gts: (B, M, H, W) int annotations.
            gt_weights: (B, M) annotation weights.
        """
        # reference behaviour: logits are recognised by a value above 1.
        probs = torch.softmax(pred, dim=2) if bool((pred > 1).any()) else pred
        w = weights.to(probs)
        marginal = torch.einsum("bn,bnchw->bchw", w, probs)  # (B, C, H, W)
        y = torch.nn.functional.one_hot(gts.long(), self.num_classes).to(probs)  # (B,M,H,W,C)
        gt_marginal = torch.einsum("bm,bmhwc->bchw", gt_weights.to(probs), y)  # (B, C, H, W)
        if self.num_classes == 2:
            conf, acc = marginal[:, 1], gt_marginal[:, 1]  # (B, H, W)
            counted = torch.ones_like(conf, dtype=torch.bool)
        else:
            conf, cls = marginal.max(dim=1)  # (B, H, W)
            acc = gt_marginal.gather(1, cls[:, None])[:, 0]  # (B, H, W)
            counted = self.evaluated(cls)
        self.accumulate(conf.flatten(), acc.flatten(), counted.flatten())

    def evaluated(self, cls: torch.Tensor) -> torch.Tensor:
        """Mask of pixels whose predicted class is evaluated."""
        if self.eval_class_ids is None:
            return torch.ones_like(cls, dtype=torch.bool)
        ids = torch.tensor(self.eval_class_ids, device=cls.device)
        return torch.isin(cls, ids)

    def accumulate(self, conf: torch.Tensor, acc: torch.Tensor, counted: torch.Tensor) -> None:
        """Add per-pixel confidences and accuracies (1-D) to the bin sums."""
        edges = torch.linspace(0, 1, self.n_bins + 1, device=conf.device, dtype=conf.dtype)
        bin_idx = torch.bucketize(conf, edges, right=False) - 1  # (lower, upper] → 0..n_bins-1
        keep = counted & (bin_idx >= 0) & (bin_idx < self.n_bins)
        idx = bin_idx[keep]
        n = self.n_bins
        self.count += torch.bincount(idx, minlength=n).double().cpu()
        self.conf_sum += torch.bincount(idx, conf[keep].double(), minlength=n).cpu()
        self.acc_sum += torch.bincount(idx, acc[keep].double(), minlength=n).cpu()
        self.total += conf.numel()

    def state(self) -> torch.Tensor:
        """Accumulators as one (3·n_bins + 1,) float64 tensor (for summing across processes)."""
        return torch.cat([self.count, self.conf_sum, self.acc_sum,
                          torch.tensor([float(self.total)], dtype=torch.float64)])

    def load_state(self, state: torch.Tensor) -> None:
        """Set the accumulators from `state()` output (e.g. after an all-reduce)."""
        n = self.n_bins
        state = state.double().cpu()
        self.count, self.conf_sum, self.acc_sum = state[:n], state[n:2 * n], state[2 * n:3 * n]
        self.total = int(state[-1].item())

    def bins(self) -> dict:
        """The per-bin sums as plain lists, for results files and the reliability diagram.

        Returns:
            dict with `edges` (n_bins + 1,), `count`, `conf_sum`, `acc_sum` (n_bins,) and
            `total` (every pixel seen, binned or not).
        """
        edges = torch.linspace(0, 1, self.n_bins + 1, dtype=torch.float64)
        return dict(edges=edges.tolist(), count=self.count.tolist(),
                    conf_sum=self.conf_sum.tolist(), acc_sum=self.acc_sum.tolist(),
                    total=self.total)

    def compute(self) -> float:
        """ECE as a fraction (multiply by 100 for %); NaN before any update."""
        if self.total == 0:
            return float("nan")
        filled = self.count > 0
        gap = (self.conf_sum[filled] - self.acc_sum[filled]).abs()  # = count·|mean conf − acc|
        return float(gap.sum() / self.total)
