"""The evaluation loop: GED, M-IoU and ECE of a model's predictive distribution over a loader."""

import math
from typing import Any, Dict, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, SequentialSampler
from tqdm import tqdm

from utils.evaluation.metrics import StreamingECE, ged_miou
from utils.evaluation.results import true_modes_batch, truth_batch_stats
from utils.labels import hard_labels
from utils.runtime.distributed import batch_generator, batch_positions, gather_objects


def to_device(batch: Any, device: torch.device) -> tuple:
    """(x, labels, label_probs) of a loader batch, on `device`."""
    x, labels, label_probs = batch
    return x.to(device), labels.to(device), label_probs.to(device)


def _nanmean(values: list) -> float:
    if not values:
        return math.nan
    v = torch.cat(values)
    return torch.nanmean(v).item() if not torch.isnan(v).all() else math.nan


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, cfg: Any, device: torch.device,
             generator: Optional[torch.Generator] = None, truth: bool = True,
             desc: str = "eval") -> Dict[str, Any]:
    """GED, M-IoU and ECE of the model's predictive distribution over one split.

    Per-image GED and M-IoU on argmax samples, averaged over images (NaN GEDs skipped); ECE over
    every pixel of the split. With `truth` and a dataset that stores its true modes (synthetic
    sets, read in order), also the true distribution's GED and the mode-mass error.

    Args:
        model: MoSE; compact representation unless `model.eval_sample_num` is set.
        loader: yields (x, labels (B, M, H, W), label_probs (B, M)).
        cfg: settings with `n_classes`, `eval_class_ids`, `masked_pred`.
        device: where to compute.
        generator: one sampling generator for every batch; None (the default): batch j draws
            from a generator seeded by (cfg.eval_seed, j), so results repeat exactly and do not
            depend on how DDP ranks share the batches.
        truth: compare with the true distribution when the dataset has one.
        desc: progress bar label.
    Returns:
        dict with `ged`, `miou`, `ece` (fraction), `num_images`, `representation`,
        `num_samples`, `ece_bins` (`StreamingECE.bins()`, for the reliability diagram),
        `per_image` (`ged` and `miou` of every image in loader order, NaN where undefined), and
        when available `true_ged`, `ged_ratio`, `mode_mass_error`. Under DDP, with the loader
        from `utils.runtime.distributed.shard_eval_loader`, every rank returns the results over the
        whole split, each image counted once (per-batch results gathered, combined in order).
    """
    model.eval()
    use_truth = truth and _has_truth(loader)
    records = []
    for batch, (j, start) in zip(tqdm(loader, desc=desc, leave=False, disable=None),
                                 batch_positions(loader)):
        x, labels, label_probs = to_device(batch, device)
        gen = generator if generator is not None else batch_generator(cfg.eval_seed, j, device)
        out = model(x, label=labels if cfg.masked_pred else None, generator=gen)
        true = true_modes_batch(loader.dataset, start, x.shape[0], device) if use_truth else None
        records.append(dict(batch=j, **_batch_results(out, labels, label_probs, true, cfg)))
    records = sorted(gather_objects(records), key=lambda r: r["batch"])  # every rank's batches
    return _summarise(records, cfg, model)


def _batch_results(out: Dict[str, torch.Tensor], labels: torch.Tensor,
                   label_probs: torch.Tensor, true: Optional[tuple], cfg: Any) -> Dict[str, Any]:
    """Per-image GED, M-IoU (and truth figures) and the ECE accumulators of one batch, on CPU."""
    pred, weights = out["pred"], out["weights"]  # (B, N, C, H, W), (B, N)
    samples = hard_labels(pred)  # (B, N, H, W), argmax over classes
    ged, miou = ged_miou(samples, labels, weights, label_probs, num_classes=cfg.n_classes,
                         eval_class_ids=cfg.eval_class_ids,
                         empty_distance=cfg.empty_distance, matching=cfg.matching)
    ece = StreamingECE(cfg.n_classes, cfg.eval_class_ids)
    ece.update(pred, weights, labels, label_probs)
    result = dict(ged=ged.double().cpu(), miou=miou.double().cpu(), ece=ece.state(),
                  num_images=pred.shape[0], num_samples=pred.shape[1])
    if true is not None:
        result.update(truth_batch_stats(samples, weights, labels, label_probs, true,
                                        cfg.n_classes, cfg.eval_class_ids))
    return result


def _has_truth(loader: DataLoader) -> bool:
    dataset = loader.dataset
    in_order = isinstance(loader.sampler, SequentialSampler)
    return in_order and hasattr(dataset, "true_modes") and dataset.true_modes(0) is not None


def _summarise(records: list, cfg: Any, model: nn.Module) -> Dict[str, Any]:
    ece = StreamingECE(cfg.n_classes, cfg.eval_class_ids)
    state = torch.zeros_like(ece.state())
    for record in records:  # in batch order: the same sums as one streaming pass
        state = state + record["ece"]
    ece.load_state(state)
    per_image = {key: [r[key] for r in records if key in r]
                 for key in ("ged", "miou", "true_ged", "mode_mass_error")}
    num_images = sum(r["num_images"] for r in records)
    num_samples = records[-1]["num_samples"] if records else 0
    standard = model.eval_sample_num is not None
    results = dict(ged=_nanmean(per_image["ged"]), miou=_nanmean(per_image["miou"]),
                   ece=float(ece.compute()) if num_images else math.nan, num_images=num_images,
                   representation="standard" if standard else "compact",
                   num_samples=num_samples, ece_bins=ece.bins(),
                   per_image={key: torch.cat(per_image[key]).tolist() if per_image[key] else []
                              for key in ("ged", "miou")})
    if per_image["true_ged"] and sum(len(v) for v in per_image["true_ged"]) == num_images:
        results["true_ged"] = _nanmean(per_image["true_ged"])
        # the true distribution can equal the annotations (Cityscapes: GED 0): no ratio then
        true_ged = results["true_ged"]
        results["ged_ratio"] = results["ged"] / true_ged if true_ged > 0 else float("nan")
        results["mode_mass_error"] = _nanmean(per_image["mode_mass_error"])
    return results
