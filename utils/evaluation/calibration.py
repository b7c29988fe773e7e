"""Mode calibration: how well the predicted mixture weights match a known true distribution.

Where the true label distribution of an image is known (the synthetic sets; real Cityscapes, whose
32 flip modes have known probabilities), every sample is assigned to its nearest true mode by the
metric distance (1 − IoU over the evaluated classes, `utils.evaluation.metrics`), and the sample
weights are summed per mode. Identical true modes (e.g. Cityscapes modes that differ only by
flipping a class absent from the image) are merged first, their probabilities summed, so a perfect
model scores 0. Per image we report the mean absolute error over the distinct modes
(`mode_mass_error`, also computed by the evaluation loop, `utils.evaluation.loop`) and the total
variation ½ Σ |predicted − true|; where the dataset names flip classes (`data.specs`,
Cityscapes: five) also the predicted and true flip frequency of each, over the images where the
class occurs.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from utils.evaluation.metrics import pairwise_distance
from utils.evaluation.sweep import bootstrap_ci

# (name, class id, flipped id) of each flip class (`data.specs.DatasetSpec.flip_classes`)
FlipClasses = Sequence[Tuple[str, int, int]]


def mode_distances(samples: torch.Tensor, modes: torch.Tensor, num_classes: int,
                   eval_class_ids: Sequence[int]) -> tuple:
    """The metric distance (1 − IoU) from every sample to every true mode, and between modes.

    A pair where every evaluated class is absent from both maps (NaN for the metrics) agrees on
    all evaluated classes, so it is at distance 0 here.

    Args:
        samples: (B, N, H, W) int label maps.
        modes: (B, T, H, W) int label maps.
        num_classes, eval_class_ids: as for the metrics.

    Returns:
        (B, N, T) sample-to-mode and (B, T, T) mode-to-mode float64 CPU distances.
    """
    N = samples.shape[1]
    maps = torch.cat([samples.long(), modes.long().to(samples.device)], dim=1)  # (B, N+T, H, W)
    d = pairwise_distance(maps, num_classes, eval_class_ids).cpu()  # (B, N+T, N+T)
    d = torch.nan_to_num(d.double(), nan=0.0)
    return d[:, :N, N:], d[:, N:, N:]  # (B, N, T), (B, T, T)


def mode_calibration(samples: torch.Tensor, weights: torch.Tensor, modes: torch.Tensor,
                     mode_probs: torch.Tensor, num_classes: int,
                     eval_class_ids: Sequence[int]) -> Dict[str, torch.Tensor]:
    """Predicted vs true probability of every distinct true mode, and the per-image errors.

    Args:
        samples: (B, N, H, W) argmax samples.
        weights: (B, N) sample weights (summing to one per image).
        modes: (B, T, H, W) true modes (padding entries have probability 0).
        mode_probs: (B, T) true probabilities.
        num_classes, eval_class_ids: as for the metrics.

    Returns:
        dict of float64 CPU tensors: `predicted` and `true` (B, T) masses (0 on merged or
        padding modes), `valid` (B, T) bool (distinct modes of positive probability),
        `mae` (B,) mean |predicted − true| over the valid modes, `tv` (B,) total variation
        and `nearest` (B, N) int64, the valid true mode every sample is assigned to.
    """
    d_sm, d_mm = mode_distances(samples, modes, num_classes, eval_class_ids)
    probs = mode_probs.detach().double().cpu()  # (B, T)
    rep = (d_mm <= 1e-12).double().argmax(-1)  # (B, T) first identical mode
    true = torch.zeros_like(probs).scatter_add_(1, rep, probs)  # (B, T) merged
    valid = true > 0  # (B, T): representatives of positive probability
    nearest = d_sm.masked_fill(~valid[:, None], torch.inf).argmin(-1)  # (B, N)
    predicted = torch.zeros_like(probs).scatter_add_(1, nearest, weights.detach().double().cpu())
    gap = (predicted - true).abs() * valid  # (B, T)
    return dict(predicted=predicted, true=true, valid=valid,
                mae=gap.sum(-1) / valid.sum(-1), tv=0.5 * gap.sum(-1), nearest=nearest)


def mode_mass_error(samples: torch.Tensor, weights: torch.Tensor, modes: torch.Tensor,
                    mode_probs: torch.Tensor, num_classes: int,
                    eval_class_ids: Sequence[int]) -> torch.Tensor:
    """Per-image mean |predicted − true| mass over the distinct true modes.

    Args:
        samples, weights, modes, mode_probs, num_classes, eval_class_ids: as for
            `mode_calibration`.

    Returns:
        (B,) float64 CPU errors.
    """
    return mode_calibration(samples, weights, modes, mode_probs, num_classes,
                            eval_class_ids)["mae"]


def flip_frequencies(modes: torch.Tensor, stats: Dict[str, torch.Tensor],
                     flip_classes: FlipClasses) -> Dict[str, Any]:
    """Predicted and true flip frequency of each flip class (Cityscapes: five, F).

    A mode flips class i when it holds the flipped id; a class counts in an image only where it
    (or its flipped copy) occurs in some true mode.

    Args:
        modes: (B, T, H, W) true modes (Cityscapes: in the 25-id space).
        stats: `mode_calibration` output for the same batch.
        flip_classes: (name, class id, flipped id) of every flip class.

    Returns:
        dict with `predicted` and `true` (B, F) float64, NaN where the class does not occur.
    """
    flat = modes.reshape(*modes.shape[:2], -1)  # (B, T, P)
    flipped = torch.stack([(flat == f).any(-1) for _, _, f in flip_classes], -1).cpu()  # (B,T,F)
    present = torch.stack([((flat == c) | (flat == f)).any(-1).any(-1)
                           for _, c, f in flip_classes], -1).cpu()  # (B, F)
    mask = (flipped & stats["valid"][..., None]).double()  # (B, T, F)
    out = {}
    for key in ("predicted", "true"):
        freq = torch.einsum("bt,btc->bc", stats[key], mask)  # (B, F)
        out[key] = freq.masked_fill(~present, float("nan"))
    return out


class ModeCalibration:
    """Accumulates mode calibration over a split, batch by batch.

    Args:
        num_classes: C.
        eval_class_ids: evaluated classes (as for the metrics).
        flip_classes: also report the flip frequency of each of these (name, class id, flipped
            id), the dataset's (`data.specs`); empty: no flips.
        seed: seed of the bootstrap confidence intervals.
    """

    def __init__(self, num_classes: int, eval_class_ids: Sequence[int],
                 flip_classes: FlipClasses = (), seed: int = 0):
        self.num_classes = num_classes
        self.eval_class_ids = list(eval_class_ids)
        self.flip_classes = list(flip_classes)
        self.seed = seed
        self.images: List[Dict[str, Any]] = []

    def update(self, samples: torch.Tensor, weights: torch.Tensor, modes: torch.Tensor,
               mode_probs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Add a batch; arguments as for `mode_calibration`. Returns its output."""
        stats = mode_calibration(samples, weights, modes, mode_probs, self.num_classes,
                                 self.eval_class_ids)
        flips = flip_frequencies(modes, stats, self.flip_classes) if self.flip_classes else None
        for b in range(samples.shape[0]):
            valid = stats["valid"][b]
            order = torch.argsort(stats["true"][b][valid], descending=True)  # by true prob
            item = dict(index=len(self.images), mae=float(stats["mae"][b]),
                        tv=float(stats["tv"][b]),
                        true=stats["true"][b][valid][order].tolist(),
                        predicted=stats["predicted"][b][valid][order].tolist())
            if flips is not None:
                item["flip_true"] = _nan_to_none(flips["true"][b])
                item["flip_predicted"] = _nan_to_none(flips["predicted"][b])
            self.images.append(item)
        return stats

    def summary(self) -> Dict[str, Any]:
        """Overall figures (means with 95% bootstrap CIs over images), by mode rank, per image.

        Returns:
            dict with `num_images`, `mae` and `tv` (mean, ci_low, ci_high), `by_rank` (mean true
            and predicted probability of the k-th likeliest mode, with image counts), `flips`
            (with flip classes: per class mean true and predicted frequency) and `per_image`.
        """
        mae = np.array([im["mae"] for im in self.images])
        tv = np.array([im["tv"] for im in self.images])
        out = dict(num_images=len(self.images), mae=bootstrap_ci(mae, seed=self.seed),
                   tv=bootstrap_ci(tv, seed=self.seed), by_rank=self._by_rank())
        if self.flip_classes:
            out["flips"] = self._flips()
        out["per_image"] = self.images
        return out

    def _by_rank(self) -> Dict[str, List[float]]:
        ranks = max((len(im["true"]) for im in self.images), default=0)
        true, pred, count = np.zeros(ranks), np.zeros(ranks), np.zeros(ranks)
        for im in self.images:
            k = len(im["true"])
            true[:k] += im["true"]
            pred[:k] += im["predicted"]
            count[:k] += 1
        return dict(true=(true / count).tolist(), predicted=(pred / count).tolist(),
                    num_images=count.astype(int).tolist())

    def _flips(self) -> Dict[str, Dict[str, Optional[float]]]:
        out = {}
        for i, (name, _, _) in enumerate(self.flip_classes):
            t = [im["flip_true"][i] for im in self.images if im["flip_true"][i] is not None]
            p = [im["flip_predicted"][i] for im in self.images
                 if im["flip_predicted"][i] is not None]
            out[name] = dict(true=float(np.mean(t)) if t else None,
                             predicted=float(np.mean(p)) if p else None, num_images=len(t))
        return out


def _nan_to_none(values: torch.Tensor) -> List[Optional[float]]:
    return [None if np.isnan(v) else float(v) for v in values.tolist()]
