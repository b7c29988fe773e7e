"""The reports of an evaluated split (`--demo val|test`, the test after training:
`report_checkpoint`), written beside the results file in `<run>/<split>/`:

- `figures/sample_grid_<i>.png` for the first `num_figures` images (compact representation):
  input, annotations with their probabilities, expert samples with their weights, predicted
  marginal and entropy; `figures/reliability_<tag>.png` from the evaluation's ECE bins;
- `mode_calibration.json` / `.png` where the dataset knows its true modes
  (`utils.evaluation.calibration`);
- `sweep.json` / `.png` with `sweep=True` (`utils.evaluation.sweep`);
- `index.html`, the review page of every image, with `per_image.csv` and `review/` (with
  `num_figures` > 0; `utils.reports.review_cards`).

Also the validation-time TensorBoard sample grid of the training loop.
"""

from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, SequentialSampler

from data.specs import dataset_spec
from utils.evaluation.calibration import ModeCalibration
from utils.evaluation.results import true_modes_batch
from utils.evaluation.run import evaluate_checkpoint
from utils.evaluation.sweep import has_experts, sample_count_sweep, sampling
from utils.labels import hard_labels
from utils.reports.figures import (
    calibration_figure,
    predictive_maps,
    reliability_figure,
    sample_grid_figure,
    save_figure,
    sweep_figure,
)
from utils.reports.review_cards import EvaluationReview
from utils.runtime.distributed import is_main
from utils.runtime.logger import logger, write_json
from utils.runtime.seed import make_generator


def report_checkpoint(cfg: Any, split: str, ckpt: Path, device: torch.device,
                      run_dir: Path) -> Dict[str, Any]:
    """Evaluate weights on a split (`utils.evaluation.run.evaluate_checkpoint`: results file and
    summary line), then write the figures, analyses and review page beside the results
    (`analyse_split`, rank 0).

    Returns:
        The results dict (ged, miou, ece fraction, num_images, representation, ...).
    """
    done = evaluate_checkpoint(cfg, split, ckpt, device, run_dir)
    if is_main():
        analyse_split(done.model, done.loader, cfg, device, run_dir / split,
                      dict(done.results, per_image=done.per_image))
    return done.results


def figure_item(x: torch.Tensor, labels: torch.Tensor, label_probs: torch.Tensor,
                out: Dict[str, torch.Tensor], samples: torch.Tensor, b: int, softmax: bool,
                masked_pred: bool) -> Dict[str, Any]:
    """The data of image b of a batch that `figures.sample_grid_figure` draws.

    Args:
        x: (B, C_in, H, W) inputs; labels (B, M, H, W); label_probs (B, M).
        out: the model's output for the batch (compact representation; a baseline's uniform
            samples, without `expert_probs`).
        samples: (B, N, H, W) hard labels of `out['pred']`.
        b: image index in the batch.
        softmax: `out['pred']` holds probabilities (else logits).
        masked_pred: void pixels (label 0) were masked: their entropy is shown as 0.

    Returns:
        dict of CPU tensors / arrays for one image.
    """
    pred = out["pred"][b].float()  # (N, C, H, W)
    probs = pred if softmax else torch.softmax(pred, dim=1)  # (N, C, H, W)
    marginal, entropy = predictive_maps(probs, out["weights"][b])
    if masked_pred:
        entropy[(labels[b, 0] == 0).cpu().numpy()] = 0.0
    return dict(image=x[b].cpu(), labels=labels[b].cpu(), label_probs=label_probs[b].cpu(),
                samples=samples[b].cpu(), weights=out["weights"][b].cpu(),
                expert_probs=out["expert_probs"][b].cpu() if "expert_probs" in out else None,
                compact="expert_probs" in out, marginal=marginal, entropy=entropy)


def _truth_known(loader: DataLoader) -> bool:
    dataset = loader.dataset
    in_order = isinstance(loader.sampler, SequentialSampler)
    return in_order and hasattr(dataset, "true_modes") and dataset.true_modes(0) is not None


@torch.no_grad()
def compact_pass(model: nn.Module, loader: DataLoader, cfg: Any, device: torch.device,
                 figure_dir: Path, split: str,
                 review: Optional[EvaluationReview] = None) -> Optional[ModeCalibration]:
    """Sample grids of the first `cfg.num_figures` images and, with a known truth, the mode
    calibration of the whole split, from one pass in the compact representation (a baseline:
    its `eval_sample_num` uniform samples); with `review`, the review cards of every image.

    Returns:
        The filled `ModeCalibration`, or None when the dataset has no true modes.
    """
    model.eval()
    calibration = None
    if _truth_known(loader):
        calibration = ModeCalibration(cfg.n_classes, cfg.eval_class_ids,
                                      dataset_spec(cfg.dataset).flip_classes, cfg.eval_seed)
    generator, start = make_generator(cfg.eval_seed, device), 0
    for x, labels, label_probs in loader:
        if calibration is None and review is None and start >= cfg.num_figures:
            break
        x, labels = x.to(device), labels.to(device)
        with sampling(model, None):
            out = model(x, label=labels if cfg.masked_pred else None, generator=generator)
        samples = hard_labels(out["pred"])  # (B, N, H, W)
        if review is not None:
            review.add_batch(x, labels, label_probs, out)
        for b in range(max(0, min(x.shape[0], cfg.num_figures - start))):
            item = figure_item(x, labels, label_probs, out, samples, b, cfg.softmax,
                               cfg.masked_pred)
            fig = sample_grid_figure(item, cfg.n_classes, f"{split} image {start + b}",
                                     dataset_spec(cfg.dataset))
            save_figure(fig, figure_dir / f"sample_grid_{start + b}.png")
        if calibration is not None:
            modes, probs = true_modes_batch(loader.dataset, start, x.shape[0], device)
            calibration.update(samples, out["weights"], modes, probs)
        start += x.shape[0]
    return calibration


def analyse_split(model: nn.Module, loader: DataLoader, cfg: Any, device: torch.device,
                  out_dir: Path, results: Dict[str, Any]) -> Dict[str, Any]:
    """Write the figures, the mode calibration and (with `cfg.sweep`) the sample-count sweep.

    Args:
        model: the evaluated MoSE (its representation settings are restored afterwards).
        loader: the split's loader (in order).
        cfg: the run's settings.
        device: where to compute.
        out_dir: `<run>/<split>`.
        results: `utils.evaluation.loop.evaluate` output (`ece_bins`, `tag`, `split`,
            `representation` are used; `per_image` and the metrics go to the review page).

    Returns:
        dict of the headline figures written: `mode_mae`, `mode_tv` (with a truth), `sweep`.
    """
    split, tag, summary = results.get("split", ""), results.get("tag", ""), {}
    figure_dir = out_dir / "figures"
    if cfg.num_figures > 0 and "ece_bins" in results:
        fig = reliability_figure(results["ece_bins"], f"{split} {tag}: ")
        save_figure(fig, figure_dir / f"reliability_{tag}.png")
    in_order = isinstance(loader.sampler, SequentialSampler)
    review = EvaluationReview(out_dir, loader.dataset, cfg) if cfg.num_figures > 0 and in_order \
        else None
    calibration = compact_pass(model, loader, cfg, device, figure_dir, split, review)
    if calibration is not None:
        same = has_experts(model) and results.get("representation", "compact") == "compact"
        name = "compact" if has_experts(model) else f"N={model.eval_sample_num}"
        summary.update(_write_calibration(calibration, out_dir, split, same, name))
    if cfg.sweep:
        sweep = sample_count_sweep(model, loader, cfg, device,
                                   make_generator(cfg.eval_seed, device), cfg.sweep_counts)
        _write_sweep(sweep, out_dir, split)
        summary["sweep"] = sweep
    if review is not None:
        logger.info(f"review page of {len(review.cards)} images: {review.write(results, split)}")
    logger.info(f"figures and analyses written to {out_dir}")
    return summary


def _write_calibration(calibration: ModeCalibration, out_dir: Path, split: str,
                       compact: bool, name: str = "compact") -> dict:
    """mode_calibration.json / .png and a log line; returns the headline figures.

    The calibration always uses the compact representation (a baseline: its uniform samples,
    `name`); when the evaluation did too, its mode-mass error is the summary line's (one
    implementation), so only the interval is logged.
    """
    cal = calibration.summary()
    write_json(out_dir / "mode_calibration.json", cal)
    save_figure(calibration_figure(cal, split), out_dir / "mode_calibration.png")
    mae, tv = cal["mae"], cal["tv"]
    mean = "" if compact else f"{mae['mean']:.4f} ({name}) "
    logger.info(f"{split}: mode calibration over {cal['num_images']} images: mode-mass error "
                f"{mean}95% CI [{mae['ci_low']:.4f}, {mae['ci_high']:.4f}], total variation "
                f"{tv['mean']:.4f} [{tv['ci_low']:.4f}, {tv['ci_high']:.4f}]")
    return dict(mode_mae=mae["mean"], mode_tv=tv["mean"])


def _write_sweep(sweep: Dict[str, Any], out_dir: Path, split: str) -> None:
    """sweep.json / sweep.png and one log line per standard sample count."""
    write_json(out_dir / "sweep.json", sweep)
    save_figure(sweep_figure(sweep, split), out_dir / "sweep.png")
    for e in sweep["standard"]:
        ged, miou = e["ged"], e["miou"]
        logger.info(f"{split} sweep: N={e['num_samples']:<4} GED {ged['mean']:.4f} "
                    f"[{ged['ci_low']:.4f}, {ged['ci_high']:.4f}]  M-IoU {miou['mean']:.4f} "
                    f"[{miou['ci_low']:.4f}, {miou['ci_high']:.4f}]")


@torch.no_grad()
def tensorboard_sample_grid(tb: Any, model: nn.Module, loader: DataLoader, cfg: Any,
                            device: torch.device, step: int) -> None:
    """Add the sample grid of the first image of `loader` to TensorBoard (one forward).

    Args:
        tb: a `SummaryWriter`, or None (nothing is done; also with `num_figures` 0).
        model: MoSE (left in the mode it was in).
        loader: the validation loader.
        cfg: the run's settings.
        device: where to compute.
        step: the global step (epoch).
    """
    if tb is None or cfg.num_figures < 1 or len(loader.dataset) == 0:
        return
    was_training = model.training
    model.eval()
    x, labels, label_probs = (t[None] for t in loader.dataset[0])
    x, labels = x.to(device), labels.to(device)
    with sampling(model, None):
        out = model(x, label=labels if cfg.masked_pred else None,
                    generator=make_generator(cfg.eval_seed, device))
    item = figure_item(x, labels, label_probs, out, hard_labels(out["pred"]), 0, cfg.softmax,
                       cfg.masked_pred)
    fig = sample_grid_figure(item, cfg.n_classes, f"epoch {step}", dataset_spec(cfg.dataset))
    tb.add_figure("val/sample_grid", fig, global_step=step)
    model.train(was_training)

