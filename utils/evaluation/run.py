"""Evaluate weights on a split (`--demo SPLIT`, and the test after training): the results file
and the summary line. The figures, analyses and review page written beside the results are
`utils.reports.analyses`'s."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader

from utils.build import build_loaders, build_model
from utils.config.config import Config
from utils.evaluation.loop import evaluate
from utils.evaluation.results import result_tag, summary_line
from utils.runtime.checkpoint import load_model_weights
from utils.runtime.distributed import is_main, shard_eval_loader
from utils.runtime.logger import logger, write_json


@dataclass
class SplitEvaluation:
    """An evaluated checkpoint: what its results file holds, and what the reports use besides.

    Attributes:
        results: the results dict (ged, miou, ece fraction, num_images, representation, ...).
        per_image: `ged` and `miou` of every image in loader order (not in the results file).
        model: the evaluated model, on the evaluation's device.
        loader: the split's loader (whole and in order).
    """

    results: Dict[str, Any]
    per_image: Dict[str, List[float]]
    model: nn.Module
    loader: DataLoader


def default_checkpoint(cfg: Config, run_dir: Path, ckpt: Optional[str]) -> Path:
    """--ckpt, else pretrained_model_full_path, else the run folder's best-GED weights."""
    path = Path(ckpt or cfg.pretrained_model_full_path
                or run_dir / f"{cfg.experiment_name}_best_ged.pth")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: train first "
                                f"(python main.py {cfg.config_file}) or pass --ckpt PATH")
    return path


def evaluate_checkpoint(cfg: Config, split: str, ckpt: Path, device: torch.device,
                        run_dir: Path) -> SplitEvaluation:
    """Evaluate weights on a split; rank 0 writes `<run_dir>/<split>/results_<tag>.json` and
    logs the summary line.

    Returns:
        The `SplitEvaluation` (every rank holds the gathered results).
    """
    loader = build_loaders(cfg, (split,))[split]
    model = build_model(cfg).to(device)
    load_model_weights(model, ckpt)
    results = evaluate(model, shard_eval_loader(loader), cfg, device, desc=split)
    tag = result_tag(results["representation"], results["num_samples"], cfg.sample_per_mode)
    results.update(split=split, tag=tag, checkpoint=str(ckpt), config=dict(cfg))
    per_image = results.pop("per_image", {})  # to the review page's per_image.csv only
    if is_main():
        path = run_dir / split / f"results_{tag}.json"
        write_json(path, results)
        logger.info(summary_line(split, results))
        logger.info(f"results written to {path}")
    return SplitEvaluation(results, per_image, model, loader)
