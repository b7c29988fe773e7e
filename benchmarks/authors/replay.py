"""Score stored predictions with this project's evaluation, as if a model produced them.

The authors' test predictions (`worker.py train` writes them) go through the same evaluation
loop, truth comparison and mode calibration as a run of ours (`evaluate`, `analyse_split`), so
their figures and ours come from one code path.
"""

from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
from torch import nn

from utils.build import build_loaders
from utils.config.config import Config
from utils.evaluation.loop import evaluate
from utils.evaluation.results import result_tag
from utils.reports.analyses import analyse_split
from utils.runtime.logger import write_json


class ReplayModel(nn.Module):
    """Returns the stored compact prediction of each image it is given, found by the image's
    exact values (whatever order and batches the loader uses).

    Args:
        images: (n, C_in, H, W) the images as the loader yields them.
        pred: (n, N, C, H, W) class probabilities, N = K·S expert-major.
        weights: (n, N) sample weights (π_k / S).
        num_expert: K.
    """

    def __init__(self, images: torch.Tensor, pred: torch.Tensor, weights: torch.Tensor,
                 num_expert: int):
        super().__init__()
        self.rows = {image.numpy().tobytes(): i for i, image in enumerate(images)}
        self.pred, self.weights = pred, weights
        self.num_expert = num_expert
        self.sample_per_mode = pred.shape[1] // num_expert
        self.eval_sample_num = None  # the compact representation only

    def forward(self, x: torch.Tensor, label: Any = None, generator: Any = None) -> Dict:
        rows = [self.rows[image.cpu().numpy().tobytes()] for image in x]
        B, K, S = len(rows), self.num_expert, self.sample_per_mode
        weights = self.weights[rows]  # (B, N)
        return dict(pred=self.pred[rows], weights=weights,
                    expert_probs=weights.view(B, K, S).sum(-1))  # (B, K)


def replay_model(cfg: Config, predictions: Path, loader: Any) -> ReplayModel:
    """A `ReplayModel` of the predictions file (`pred`, `weights`, `stems`) over the loader's
    dataset, rows matched by file stem."""
    stored = np.load(predictions)
    row_of = {str(stem): i for i, stem in enumerate(stored["stems"])}
    dataset = loader.dataset
    stems = [Path(p).stem for p in dataset.image_paths]
    missing = [s for s in stems if s not in row_of]
    if missing or len(stems) != len(row_of):
        raise ValueError(f"{predictions} holds {len(row_of)} images, the split {len(stems)} "
                         f"(missing e.g. {missing[:3]})")
    order = [row_of[s] for s in stems]
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])  # (n, C_in, H, W)
    pred = torch.from_numpy(stored["pred"][order])  # (n, N, C, H, W)
    weights = torch.from_numpy(stored["weights"][order])  # (n, N)
    return ReplayModel(images, pred, weights, cfg.num_expert)


def score(cfg: Config, predictions: Path, run_dir: Path, split: str = "test") -> Dict:
    """Evaluate stored predictions on a split as `--demo SPLIT` evaluates a model: writes
    `<run_dir>/<split>/results_<tag>.json` and the mode calibration beside it.

    Returns:
        The results dict.
    """
    loader = build_loaders(cfg, (split,))[split]
    model = replay_model(cfg, predictions, loader)
    device = torch.device("cpu")
    results = evaluate(model, loader, cfg, device, desc=split)
    tag = result_tag(results["representation"], results["num_samples"], cfg.sample_per_mode)
    results.update(split=split, tag=tag, checkpoint=str(predictions), config=dict(cfg))
    per_image = results.pop("per_image", {})
    write_json(run_dir / split / f"results_{tag}.json", results)
    analyse_split(model, loader, cfg, device, run_dir / split, dict(results, per_image=per_image))
    return results
