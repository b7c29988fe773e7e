"""Inference on new images: read and preprocess image files, and turn a model's predictive
distribution into arrays (`--predict`; the files it writes are `utils.reports.prediction`'s).

An input is an image file, read as `data.folder` reads images and preprocessed as the config's
dataset is (`preprocess`): per-image standardisation (lidc, folder) or the Cityscapes
normalisation (PNG/JPEG /255 then per-channel mean/std; npy taken as already normalised, 3 or
4 channels as the model needs). Any image size runs through the U-Net at evaluation (ceil-mode
pooling, upsampling to the skip size), so images are neither padded nor resized; consecutive
images of one size share a batch (`input_batches`).

The arrays of an image (`predict_batch`):
- `mean_prob` (C, H, W): Σ_n w_n p_n over the N weighted samples (the compact representation,
  K·S samples weighted π_k / S, or the standard one when `eval_sample_num` is set);
- `entropy_total` (H, W) = H[mean_prob] (nats), split into `entropy_expected` = Σ_n w_n H[p_n]
  (within-sample: each plausible segmentation is unsure, e.g. on boundaries) and
  `mutual_information` = total - expected (between samples: the plausible segmentations
  disagree, i.e. where annotators would disagree, as the model learnt from the raters);
- `samples` (N, H, W) uint8 argmax label maps and `sample_weights` (N,);
- MoSE only: `expert_probs` (K,) π_k and `expert_mean_prob` (K, C, H, W), the mean over each
  expert's S compact samples (always from a compact pass).
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List

import numpy as np
import torch

from data.folder import IMAGE_EXTS, natural_key, read_image
from data.lidc import standardise
from data.specs import dataset_spec
from utils.build import build_model
from utils.config.config import Config
from utils.labels import hard_labels
from utils.runtime.checkpoint import load_model_weights
from utils.runtime.distributed import batch_generator
from utils.runtime.logger import logger


@dataclass
class Loaded:
    """One readable input: its file, output stem, stored array and model input."""

    path: str
    stem: str
    raw: np.ndarray  # (C, H, W) float32 as stored
    x: torch.Tensor  # (C_in, H, W) float32 preprocessed


def list_inputs(input_path: str) -> List[str]:
    """The image files to predict: INPUT itself, or the image files of the folder INPUT.

    Args:
        input_path: an image file or a folder.

    Returns:
        Paths in natural name order.
    """
    path = Path(input_path)
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise FileNotFoundError(f"--predict {input_path}: no such file or folder")
    names = sorted((n for n in os.listdir(path) if not n.startswith(".")), key=natural_key)
    files = [str(path / n) for n in names if Path(n).suffix.lower() in IMAGE_EXTS
             and (path / n).is_file()]
    if not files:
        raise ValueError(f"--predict {input_path}: the folder holds no image files "
                         f"({'/'.join(IMAGE_EXTS)})")
    if len(files) < len(names):
        logger.info(f"predict: skipping {len(names) - len(files)} entries of {input_path} that "
                    "are not image files")
    return files


def preprocess(raw: np.ndarray, path: str, cfg: Config) -> torch.Tensor:
    """The config's preprocessing of one image: its dataset's normalisation (`data.specs`).

    Without dataset statistics (lidc, folder) every image is standardised on its own, as their
    loaders do; with them (cityscapes) a PNG/JPEG is scaled by 1/255 and standardised per
    channel, and an npy file is taken as normalised already, as the builder stores them.

    Args:
        raw: (C, H, W) float32 as stored.
        path: its file (for the messages and the file type).
        cfg: settings with `dataset`, `input_channels`.

    Returns:
        (C_in, H, W) float32 model input.
    """
    spec, channels = dataset_spec(cfg.dataset), raw.shape[0]
    if channels != cfg.input_channels:
        labels = spec.label_channel is not None and spec.label_channel < cfg.input_channels
        hint = (f" (channel {spec.label_channel} of this model's input is a label map, e.g. a "
                f"black-box prediction: pass ({cfg.input_channels}, H, W) npy files)"
                if labels else "")
        raise ValueError(f"{path}: {channels} channel(s), the model takes {cfg.input_channels} "
                         f"(input_channels of {cfg.config_file}){hint}")
    if spec.image_mean is None:
        x = standardise(raw)
    elif path.lower().endswith(".npy"):
        x = raw
    else:
        mean = np.asarray(spec.image_mean)[:, None, None]  # (3, 1, 1)
        std = np.asarray(spec.image_std)[:, None, None]  # (3, 1, 1)
        x = (raw / 255.0 - mean) / std  # (3, H, W)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def load_input(path: str, stem: str, cfg: Config) -> Loaded:
    """Read and preprocess one input; raises ValueError naming the file."""
    raw = read_image(path)  # (C, H, W)
    return Loaded(path, stem, raw, preprocess(raw, path, cfg))


def uncertainty(probs: torch.Tensor, weights: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Mean prediction and the entropy decomposition of a weighted sample set.

    Args:
        probs: (B, N, C, H, W) class probabilities.
        weights: (B, N) sample weights summing to one.

    Returns:
        `mean_prob` (B, C, H, W), `entropy_total`, `entropy_expected`, `mutual_information`
        (B, H, W) in nats.
    """
    w = weights.to(probs)
    mean = torch.einsum("bn,bnchw->bchw", w, probs)  # (B, C, H, W)
    total = -torch.xlogy(mean, mean).sum(1)  # (B, H, W)
    per_sample = -torch.xlogy(probs, probs).sum(2)  # (B, N, H, W)
    expected = torch.einsum("bn,bnhw->bhw", w, per_sample)  # (B, H, W)
    return dict(mean_prob=mean, entropy_total=total, entropy_expected=expected,
                mutual_information=(total - expected).clamp_min(0))


def _probabilities(model: torch.nn.Module, out: Dict[str, torch.Tensor]) -> torch.Tensor:
    pred = out["pred"]  # (B, N, C, H, W)
    return pred if getattr(model, "softmax", True) else torch.softmax(pred, dim=2)


@torch.no_grad()
def predict_batch(model: torch.nn.Module, x: torch.Tensor,
                  generator: torch.Generator) -> Dict[str, np.ndarray]:
    """Every output array of a batch.

    Args:
        model: MoSE (or a model returning `pred` and `weights`), in eval mode.
        x: (B, C_in, H, W) preprocessed images of one size.
        generator: the batch's sampling generator.

    Returns:
        name -> (B, ...) numpy array (module docstring).
    """
    standard = getattr(model, "eval_sample_num", None)
    arrays: Dict[str, torch.Tensor] = {}
    if hasattr(model, "gating"):  # MoSE: a compact pass gives every expert's mean
        model.eval_sample_num = None
        try:
            out = model(x, generator=generator)
        finally:
            model.eval_sample_num = standard
        probs = _probabilities(model, out)  # (B, K·S, C, H, W)
        B, N, C, H, W = probs.shape
        K = out["expert_probs"].shape[1]
        arrays["expert_probs"] = out["expert_probs"]  # (B, K)
        arrays["expert_mean_prob"] = probs.reshape(B, K, N // K, C, H, W).mean(2)  # (B,K,C,H,W)
    if not arrays or standard is not None:
        out = model(x, generator=generator)
        probs = _probabilities(model, out)  # (B, N, C, H, W)
    arrays.update(uncertainty(probs, out["weights"]))
    arrays["samples"] = hard_labels(probs).to(torch.uint8)  # (B, N, H, W)
    arrays["sample_weights"] = out["weights"]  # (B, N)
    return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
            for k, v in arrays.items()}


def predict_images(model: torch.nn.Module, x: torch.Tensor, eval_seed: int,
                   batch_size: int) -> Dict[str, np.ndarray]:
    """Every output array of images of one size, `batch_size` images per forward.

    Batch j samples from the generator seeded by (eval_seed, j), as `--predict` does: the same
    images in the same order give the arrays of its npz files.

    Args:
        model: as for `predict_batch`, in eval mode.
        x: (B, C_in, H, W) preprocessed images, on the model's device.
        eval_seed: seed of the sampling generators.
        batch_size: images per forward.

    Returns:
        name -> (B, ...) numpy array (module docstring).
    """
    parts = [predict_batch(model, x[i:i + batch_size], batch_generator(eval_seed, j, x.device))
             for j, i in enumerate(range(0, x.shape[0], batch_size))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def input_batches(paths: List[str], stems: Dict[str, str], cfg: Config, batch_size: int,
                  failures: Dict[str, str]) -> Iterator[List[Loaded]]:
    """Batches of consecutive readable inputs of one size (at most `batch_size`), in order;
    unreadable or unfitting inputs go to `failures` (path -> message)."""
    batch: List[Loaded] = []
    for path in paths:
        try:
            item = load_input(path, stems[path], cfg)
        except ValueError as err:
            failures[path] = str(err)
            continue
        if batch and (len(batch) == batch_size or batch[0].x.shape != item.x.shape):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def load_predictor(cfg: Config, ckpt: Path, device: torch.device) -> torch.nn.Module:
    """The config's model with the checkpoint's weights, in eval mode on `device`."""
    model = build_model(cfg)
    try:
        load_model_weights(model, ckpt)
    except ValueError as err:
        raise ValueError(f"{ckpt}: {err} (config {cfg.config_file})") from None
    return model.to(device).eval()


