"""Evaluation results: comparison with a known true distribution, result tags and summaries.

Synthetic sets store the true modes of every image and their probabilities. Two figures judge
how close a model gets to them:
- the GED of the true distribution against the same annotations (the modes as samples, their
  probabilities as weights, the same metric code), a floor the model's GED can be compared to;
- the mode-mass error: every sample is assigned to its nearest true mode by the metric distance
  (1 - IoU over the evaluated classes), the sample weights are summed per mode, and the mean
  absolute difference to the true probabilities over the modes of an image is reported
  (identical modes merged first; the one implementation is `utils.evaluation.calibration`).
"""

import math
from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from utils.evaluation.calibration import mode_mass_error
from utils.evaluation.metrics import ged_miou


def true_modes_batch(dataset: Any, start: int, batch_size: int,
                     device: torch.device) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """Stack the true modes of images `start .. start + batch_size - 1`, padded to one T.

    Padding repeats the first mode with probability 0, so it changes no weighted sum.

    Args:
        dataset: has `true_modes(i) -> (modes (T, H, W), probs (T,)) or None`.
        start: dataset index of the first image of the batch.
        batch_size: B.
        device: where to put the result.
    Returns:
        modes (B, T, H, W) int64 and probs (B, T) float64, or None if any image has no truth.
    """
    items = [dataset.true_modes(i) for i in range(start, start + batch_size)]
    if any(item is None for item in items):
        return None
    T = max(len(probs) for _, probs in items)
    modes, probs = [], []
    for m, p in items:
        m, p = torch.as_tensor(m).long(), torch.as_tensor(p).double()
        pad = T - len(p)
        modes.append(torch.cat([m, m[:1].expand(pad, *m.shape[1:])]))  # (T, H, W)
        probs.append(torch.cat([p, p.new_zeros(pad)]))  # (T,)
    return torch.stack(modes).to(device), torch.stack(probs).to(device)


def truth_batch_stats(samples: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor,
                      label_probs: torch.Tensor, truth: Tuple[torch.Tensor, torch.Tensor],
                      num_classes: int, eval_class_ids: Sequence[int]) -> Dict[str, torch.Tensor]:
    """True-distribution GED and mode-mass error of one batch.

    Args:
        samples: (B, N, H, W) argmax samples; weights (B, N).
        labels: (B, M, H, W) annotations; label_probs (B, M).
        truth: (modes (B, T, H, W), probs (B, T)) from `true_modes_batch`.
        num_classes, eval_class_ids: as for the metrics.
    Returns:
        dict with per-image `true_ged` and `mode_mass_error`, (B,) float64 on the CPU.
    """
    modes, probs = truth
    true_ged, _ = ged_miou(modes, labels, weights=probs.to(label_probs.dtype),
                           gt_weights=label_probs, num_classes=num_classes,
                           eval_class_ids=eval_class_ids)
    err = mode_mass_error(samples, weights, modes, probs, num_classes, eval_class_ids)
    return dict(true_ged=true_ged.double().cpu(), mode_mass_error=err.cpu())


def result_tag(representation: str, num_samples: int, sample_per_mode: int) -> str:
    """'compact_S4' or 'standard_N16': names the results file of an evaluation."""
    if representation == "compact":
        return f"compact_S{sample_per_mode}"
    return f"standard_N{num_samples}"


def summary_line(split: str, results: Dict[str, Any]) -> str:
    """One human-readable line: GED / M-IoU / ECE and, with a known truth, the comparison."""
    line = (f"{split}: GED {results['ged']:.4f}  M-IoU {results['miou']:.4f}  "
            f"ECE {100 * results['ece']:.3f}%  ({results['num_images']} images, "
            f"{results['representation']} N={results['num_samples']})")
    if "true_ged" in results:
        ratio = results["ged_ratio"]
        # where the annotations are the true distribution (synthetic Cityscapes) its GED is 0
        ratio_text = f"ratio {ratio:.3f}  " if math.isfinite(ratio) else ""
        line += (f"  | true GED {results['true_ged']:.4f}  {ratio_text}"
                 f"mode-mass error {results['mode_mass_error']:.4f}")
    return line
