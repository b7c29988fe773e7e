"""Evaluate weights on a split (`--demo SPLIT`, and the test after training): results file,
summary line, figures, mode calibration and the optional sample-count sweep."""

from pathlib import Path
from typing import Any, Dict, Optional

import torch

from utils.build import build_loaders, build_model
from utils.config.config import Config
from utils.evaluation.loop import evaluate
from utils.evaluation.report import analyse_split
from utils.evaluation.results import result_tag, summary_line
from utils.runtime.checkpoint import load_model_weights
from utils.runtime.distributed import is_main, shard_eval_loader
from utils.runtime.logger import logger, write_json


def default_checkpoint(cfg: Config, run_dir: Path, ckpt: Optional[str]) -> Path:
    """--ckpt, else pretrained_model_full_path, else the run folder's best-GED weights."""
    path = Path(ckpt or cfg.pretrained_model_full_path
                or run_dir / f"{cfg.experiment_name}_best_ged.pth")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: train first "
                                f"(python main.py {cfg.config_file}) or pass --ckpt PATH")
    return path


def evaluate_checkpoint(cfg: Config, split: str, ckpt: Path, device: torch.device,
                        run_dir: Path) -> Dict[str, Any]:
    """Evaluate weights on a split; write `<run_dir>/<split>/results_<tag>.json`, the figures,
    the mode calibration, (with `sweep`) the sample-count sweep and the review page
    `<run_dir>/<split>/index.html` (`utils.evaluation.report`).

    Returns:
        The results dict (ged, miou, ece fraction, num_images, representation, ...).
    """
    loader = build_loaders(cfg, (split,))[split]
    model = build_model(cfg).to(device)
    load_model_weights(model, ckpt)
    results = evaluate(model, shard_eval_loader(loader), cfg, device, desc=split)
    tag = result_tag(results["representation"], results["num_samples"], cfg.sample_per_mode)
    results.update(split=split, tag=tag, checkpoint=str(ckpt), config=dict(cfg))
    per_image = results.pop("per_image", {})  # to the review page's per_image.csv only
    if not is_main():  # every rank holds the gathered results; rank 0 writes them
        return results
    path = run_dir / split / f"results_{tag}.json"
    write_json(path, results)
    logger.info(summary_line(split, results))
    logger.info(f"results written to {path}")
    analyse_split(model, loader, cfg, device, run_dir / split, dict(results, per_image=per_image))
    return results
