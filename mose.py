"""The Python API: load a trained model, predict on arrays, score any method's samples.

Every function takes numpy arrays or torch tensors and returns numpy arrays, floats or small
dataclasses. The metrics are the project's (`utils/evaluation/metrics.py`, `calibration.py`)
with its defaults, MoSE's conventions. docs/api.md shows every call; docs/metrics.md explains
the conventions. Letters: B images, N samples and M annotations per image, K experts, T true
modes, C classes, H × W pixels.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

# The project modules wrapped here, in one block.
from utils.build import build_model, resolve_device, run_dir_of
from utils.config.config import Config, load_config
from utils.evaluation.calibration import mode_calibration as calibration_of_modes
from utils.evaluation.inference import load_predictor, predict_images
from utils.evaluation.inference import preprocess as preprocess_image
from utils.evaluation.metrics import StreamingECE, ged_miou
from utils.evaluation.run import default_checkpoint

__all__ = ["load_model", "predict", "Prediction", "distinct_modes", "ged", "miou", "ece",
           "mode_calibration", "ModeCalibration"]

Array = Union[np.ndarray, torch.Tensor, Sequence]
PathLike = Union[str, os.PathLike]


def load_model(config: PathLike, checkpoint: Union[PathLike, None, bool] = None,
               device: str = "cpu", overrides: Iterable[str] = ()) -> torch.nn.Module:
    """The model of a config with its weights, in eval mode, its settings in `model.config`.

    Args:
        config: a config file, e.g. "experiments/lidc_proposed.py" (relative paths in it, such
            as `log_root`, are read from the working directory, as by main.py).
        checkpoint: a checkpoint file, ours or the authors' released ones (loaded strictly).
            None: the config's `pretrained_model_full_path`, else the run's best-GED weights
            `log/<log_dir_name>/<experiment_name>/<experiment_name>_best_ged.pth`, as for
            `--demo` and `--predict`. False: no weights at all, the model's initial ones
            (seeded by the config's `seed`): an untrained model, to try the API without a run.
        device: "cpu", "cuda" or "auto".
        overrides: `--set` items, e.g. ["eval_sample_num=16"].

    Returns:
        MoSE (or the baseline the config's `method` names) on `device`, in eval mode, with the
        resolved settings (a dict with attribute access) as `model.config`.

    Raises:
        FileNotFoundError: no checkpoint at the path.
        ValueError: an invalid setting, or a checkpoint that does not fit the config.
    """
    cfg = load_config(str(config), list(overrides))
    dev = resolve_device(device)
    if checkpoint is False:
        with torch.random.fork_rng(devices=[]):  # seeded, and the caller's RNG left as it was
            torch.manual_seed(cfg.seed)
            model = build_model(cfg).to(dev).eval()
    else:
        model = load_predictor(cfg, _checkpoint_path(cfg, checkpoint), dev)
    model.config = cfg
    return model


def _checkpoint_path(cfg: Config, checkpoint: Optional[PathLike] = None) -> Path:
    """`checkpoint`, else `pretrained_model_full_path`, else the run's best-GED file (the rule
    of `--demo`)."""
    if checkpoint is True:
        raise ValueError("checkpoint: a path, None (the run's best-GED weights) or False")
    try:
        return default_checkpoint(cfg, run_dir_of(cfg), checkpoint)
    except FileNotFoundError as missing:
        raise FileNotFoundError(f"{missing}; from Python: checkpoint=PATH, or checkpoint=False "
                                "for an untrained model") from None


@dataclass
class Prediction:
    """The predictive distribution of B images, as `predict` returns it.

    Attributes:
        samples: (B, N, H, W) uint8 label maps, the argmax of every sample.
        weights: (B, N) float32 sample weights, summing to one per image (compact: π_k / S,
            expert-major; standard: 1 / N).
        mean_prob: (B, C, H, W) float32 Σ_n w_n p_n, the predicted marginal.
        entropy_total: (B, H, W) float32 entropy of `mean_prob`, in nats.
        entropy_expected: (B, H, W) float32 Σ_n w_n H[p_n]: each sample's own uncertainty.
        mutual_information: (B, H, W) float32 total − expected: where the samples disagree.
        modes: B arrays (T_b, H, W) uint8, the distinct masks, likeliest first. MoSE: the argmax
            of every expert's mean probability, experts with identical masks merged; the
            baselines: the distinct samples.
        mode_probs: B arrays (T_b,) float64, the probability of every mode (MoSE: the summed π of
            its experts; the baselines: the summed weights of its samples).
        pi: (B, K) float32 expert probabilities π (MoSE only, else None).
        expert_mean_prob: (B, K, C, H, W) float32 mean of every expert's S compact samples
            (MoSE only, else None).
    """

    samples: np.ndarray
    weights: np.ndarray
    mean_prob: np.ndarray
    entropy_total: np.ndarray
    entropy_expected: np.ndarray
    mutual_information: np.ndarray
    modes: List[np.ndarray]
    mode_probs: List[np.ndarray]
    pi: Optional[np.ndarray] = None
    expert_mean_prob: Optional[np.ndarray] = None


def predict(model: torch.nn.Module, images: Array, num_samples: Optional[int] = None,
            seed: Optional[int] = None, preprocess: bool = True,
            batch_size: Optional[int] = None) -> Prediction:
    """Samples, weights, π, modes and uncertainty maps of images, as `--predict` computes them.

    Args:
        model: from `load_model` (it reads `model.config`); put in eval mode.
        images: (B, C_in, H, W) or one (C_in, H, W) image, float, as the dataset's .npy files
            store them; any H, W.
        num_samples: None: the config's representation (compact unless `eval_sample_num` is
            set); N: the standard one, N samples drawn from π.
        seed: seed of the sampling (None: the config's `eval_seed`). Batch j draws from a
            generator seeded by (seed, j), so the same images give the same samples.
        preprocess: apply the config's preprocessing, as `--predict` does to an .npy file
            (lidc, folder: per-image standardisation; cityscapes: none, the builder's arrays are
            normalised already). False: the images go to the model as they are.
        batch_size: images per forward (None: the config's `test_batch_size`).

    Returns:
        A `Prediction` with a batch axis B (1 for a single image).
    """
    cfg = _config_of(model)
    x = _tensor(images).float()
    x = x[None] if x.ndim == 3 else x  # (B, C_in, H, W)
    if x.ndim != 4:
        raise ValueError(f"images: expected (B, C_in, H, W) or (C_in, H, W), got {tuple(x.shape)}")
    if preprocess:  # arrays are read as --predict reads .npy files
        x = torch.stack([preprocess_image(im.numpy(), f"images[{b}].npy", cfg)
                         for b, im in enumerate(x)])  # (B, C_in, H, W)
    standard = model.eval_sample_num
    model.eval()
    model.eval_sample_num = standard if num_samples is None else num_samples
    try:
        arrays = predict_images(model, x.to(next(model.parameters()).device),
                                cfg.eval_seed if seed is None else seed,
                                batch_size or cfg.test_batch_size)
    finally:
        model.eval_sample_num = standard
    return _prediction(arrays)


def _prediction(arrays: dict) -> Prediction:
    """A `Prediction` of `predict_images` output, with the modes of every image."""
    if "expert_probs" in arrays:  # MoSE: every expert's mean prediction, weighted by π
        masks = arrays["expert_mean_prob"].argmax(2).astype(np.uint8)  # (B, K, H, W)
        probs = arrays["expert_probs"]  # (B, K)
    else:
        masks, probs = arrays["samples"], arrays["sample_weights"]  # (B, N, H, W), (B, N)
    modes = [distinct_modes(m, p) for m, p in zip(masks, probs)]
    maps = ("mean_prob", "entropy_total", "entropy_expected", "mutual_information")
    return Prediction(samples=arrays["samples"], weights=arrays["sample_weights"],
                      **{k: arrays[k] for k in maps}, modes=[m for m, _ in modes],
                      mode_probs=[p for _, p in modes], pi=arrays.get("expert_probs"),
                      expert_mean_prob=arrays.get("expert_mean_prob"))


def distinct_modes(samples: Array, weights: Optional[Array] = None) -> Tuple[np.ndarray, ...]:
    """The distinct masks of one image's samples with their summed weights, likeliest first.

    Args:
        samples: (N, H, W) int label maps.
        weights: (N,) sample weights (None: uniform 1 / N).

    Returns:
        (T, H, W) distinct masks (the dtype of `samples`) and (T,) float64 probabilities, by
        decreasing probability, ties in order of first appearance.
    """
    masks = _tensor(samples).numpy()
    N = masks.shape[0]
    w = np.full(N, 1.0 / N) if weights is None else _tensor(weights).double().numpy()
    flat = masks.reshape(N, -1)  # (N, H·W)
    unique, first, inverse = np.unique(flat, axis=0, return_index=True, return_inverse=True)
    mass = np.bincount(inverse.ravel(), weights=w, minlength=len(unique))  # (T,)
    order = np.lexsort((first, -mass))
    return unique[order].reshape(-1, *masks.shape[1:]), mass[order]


def ged(samples: Array, annotations: Array, weights: Optional[Array] = None,
        annotation_weights: Optional[Array] = None, num_classes: int = 2,
        eval_class_ids: Optional[Sequence[int]] = None, empty_distance: str = "zero",
        num_samples: Optional[int] = None, per_image: bool = False) -> Union[float, np.ndarray]:
    """Generalised energy distance between samples and annotations, d = 1 − IoU (lower is better).

    Args:
        samples: (B, N, H, W) int label maps of any method, or one image's (N, H, W).
        annotations: (B, M, H, W) int label maps, or one image's (M, H, W).
        weights: (B, N) sample weights summing to one (None: uniform, i.e. i.i.d. samples).
        annotation_weights: (B, M) annotation weights summing to one (None: uniform); a weight
            of 0 marks padding.
        num_classes: C; 2 is binary, the foreground only.
        eval_class_ids: the classes averaged when C > 2 (None: all).
        empty_distance: 'zero' (two empty masks are identical, MoSE) or 'skip' (such a pair is
            left out of every expectation).
        num_samples: score the first N samples only (uniform weights; i.i.d. samples, so a
            prefix is a draw of that size). GED falls as N grows: compare at one N.
        per_image: return every image's GED instead of their mean.

    Returns:
        The mean over images (images whose GED is undefined, NaN, left out) as a float, or
        (B,) float64 per image.
    """
    scores = _scores(samples, annotations, weights, annotation_weights, num_samples,
                     num_classes, eval_class_ids, empty_distance, "hungarian")
    return _reduce(scores[0], per_image)


def miou(samples: Array, annotations: Array, weights: Optional[Array] = None,
         annotation_weights: Optional[Array] = None, num_classes: int = 2,
         eval_class_ids: Optional[Sequence[int]] = None, empty_distance: str = "zero",
         matching: str = "hungarian", num_samples: Optional[int] = None,
         per_image: bool = False) -> Union[float, np.ndarray]:
    """Matched IoU: samples matched to annotations, 1 − d averaged over matched pairs.

    Args:
        samples, annotations, weights, annotation_weights, num_classes, eval_class_ids,
            empty_distance, num_samples, per_image: as for `ged`.
        matching: 'hungarian' (MoSE: uniform weights and N a multiple of M replicate the
            annotations N / M times and match one-to-one, otherwise optimal transport) or 'ot'
            (always the optimal transport plan between the weights).

    Returns:
        The mean over images as a float (higher is better), or (B,) float64 per image.
    """
    scores = _scores(samples, annotations, weights, annotation_weights, num_samples,
                     num_classes, eval_class_ids, empty_distance, matching)
    return _reduce(scores[1], per_image)


def ece(probabilities: Array, annotations: Array, weights: Optional[Array] = None,
        annotation_weights: Optional[Array] = None,
        eval_class_ids: Optional[Sequence[int]] = None, n_bins: int = 10) -> float:
    """Expected calibration error of the pixel-wise marginals over all pixels of all images.

    Args:
        probabilities: (B, N, C, H, W) float class probabilities of every sample, or one
            image's (N, C, H, W); logits are recognised by any value above 1 and go through a
            softmax. A marginal (B, C, H, W) is passed as `probabilities[:, None]`.
        annotations: (B, M, H, W) int label maps, or one image's (M, H, W).
        weights: (B, N) sample weights summing to one (None: uniform).
        annotation_weights: (B, M) annotation weights summing to one (None: uniform).
        eval_class_ids: for C > 2, only pixels whose predicted class is one of these fall in a
            bin (None: all).
        n_bins: equal-width confidence bins (lower, upper] on [0, 1].

    Returns:
        ECE as a fraction (× 100 for the % of the paper's tables).
    """
    p = _batch(_tensor(probabilities), 5, "probabilities")
    p = p if p.is_floating_point() else p.double()  # (B, N, C, H, W)
    y = _batch(_tensor(annotations), 4, "annotations").long()  # (B, M, H, W)
    u = _weights(weights, p.shape[:2], "weights")
    v = _weights(annotation_weights, y.shape[:2], "annotation_weights")
    _check_sizes(p.shape[0], p.shape[-2:], y)
    metric = StreamingECE(p.shape[2], eval_class_ids, n_bins)
    metric.update(p, u, y, v)
    return metric.compute()


@dataclass
class ModeCalibration:
    """Predicted against true probability of the true modes, as `mode_calibration` returns it.

    Attributes:
        predicted: (B, T) float64 summed weight of the samples nearest each true mode (0 on
            merged and padding modes).
        true: (B, T) float64 true probabilities, identical modes merged onto the first.
        valid: (B, T) bool, the distinct modes of positive probability.
        mode_mass_error: (B,) float64 mean |predicted − true| over the valid modes.
        total_variation: (B,) float64 ½ Σ |predicted − true|.
        nearest: (B, N) int64 the true mode every sample is assigned to.
    """

    predicted: np.ndarray
    true: np.ndarray
    valid: np.ndarray
    mode_mass_error: np.ndarray
    total_variation: np.ndarray
    nearest: np.ndarray

    @property
    def mean_mode_mass_error(self) -> float:  # over images
        return float(np.mean(self.mode_mass_error))

    @property
    def mean_total_variation(self) -> float:  # over images
        return float(np.mean(self.total_variation))


def mode_calibration(samples: Array, modes: Array, mode_probs: Array,
                     weights: Optional[Array] = None, num_classes: int = 2,
                     eval_class_ids: Optional[Sequence[int]] = None) -> ModeCalibration:
    """How much weight the samples put on each true mode, where the true distribution is known.

    Every sample goes to its nearest true mode by d = 1 − IoU (a pair without any evaluated
    class at distance 0); the sample weights are summed per mode.

    Args:
        samples: (B, N, H, W) int label maps, or one image's (N, H, W).
        modes: (B, T, H, W) int true modes, or one image's (T, H, W); images with fewer modes
            are padded with any mask of probability 0.
        mode_probs: (B, T) true probabilities summing to one per image.
        weights: (B, N) sample weights summing to one (None: uniform).
        num_classes, eval_class_ids: as for `ged`.

    Returns:
        A `ModeCalibration`.
    """
    s = _batch(_tensor(samples), 4, "samples")
    m = _batch(_tensor(modes), 4, "modes")
    u = _weights(weights, s.shape[:2], "weights")
    p = _weights(mode_probs, m.shape[:2], "mode_probs")
    _check_sizes(s.shape[0], s.shape[-2:], m)
    out = calibration_of_modes(s, u, m, p, num_classes, eval_class_ids)
    return ModeCalibration(predicted=out["predicted"].numpy(), true=out["true"].numpy(),
                           valid=out["valid"].numpy(), mode_mass_error=out["mae"].numpy(),
                           total_variation=out["tv"].numpy(), nearest=out["nearest"].numpy())


def _scores(samples: Array, annotations: Array, weights: Optional[Array],
            annotation_weights: Optional[Array], num_samples: Optional[int], num_classes: int,
            eval_class_ids: Optional[Sequence[int]], empty_distance: str,
            matching: str) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-image (B,) GED and M-IoU of `ged_miou` from API inputs (checked)."""
    s = _batch(_tensor(samples), 4, "samples")  # (B, N, H, W)
    y = _batch(_tensor(annotations), 4, "annotations")  # (B, M, H, W)
    if num_samples is not None:
        if weights is not None:
            raise ValueError("num_samples takes the first samples of i.i.d. ones; weighted "
                             "samples (MoSE's compact ones) are scored whole: leave it out")
        if not 1 <= num_samples <= s.shape[1]:
            raise ValueError(f"num_samples={num_samples}, but {s.shape[1]} samples are given")
        s = s[:, :num_samples]  # (B, num_samples, H, W)
    u = _weights(weights, s.shape[:2], "weights")
    v = _weights(annotation_weights, y.shape[:2], "annotation_weights")
    _check_sizes(s.shape[0], s.shape[-2:], y)
    return ged_miou(s, y, u, v, num_classes=num_classes, eval_class_ids=eval_class_ids,
                    empty_distance=empty_distance, matching=matching)


def _tensor(x: Array) -> torch.Tensor:
    """A CPU tensor of a numpy array, a tensor or nested lists."""
    return x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))


def _batch(x: torch.Tensor, ndim: int, name: str) -> torch.Tensor:
    """`x` with a batch axis: one image's (ndim − 1)-d array gains one."""
    x = x[None] if x.ndim == ndim - 1 else x
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} or {ndim - 1} axes, got {tuple(x.shape)}")
    return x


def _weights(w: Optional[Array], shape: Tuple[int, int], name: str) -> torch.Tensor:
    """(B, n) float64 weights, uniform where `w` is None; checked to sum to one per image."""
    B, n = shape
    if w is None:
        return torch.full((B, n), 1.0 / n, dtype=torch.float64)
    w = _batch(_tensor(w).double(), 2, name)  # (B, n)
    if tuple(w.shape) != (B, n):
        raise ValueError(f"{name}: expected shape {(B, n)}, got {tuple(w.shape)}")
    if (w < 0).any() or not torch.allclose(w.sum(1), torch.ones(B, dtype=w.dtype), atol=1e-4):
        raise ValueError(f"{name}: every image's weights must be non-negative and sum to one")
    return w


def _check_sizes(B: int, hw: Sequence[int], other: torch.Tensor) -> None:
    """The other maps have the same number of images and pixels."""
    if other.shape[0] != B or tuple(other.shape[-2:]) != tuple(hw):
        raise ValueError(f"{B} images of {tuple(hw)} pixels against maps of shape "
                         f"{tuple(other.shape)}: images and sizes must agree")


def _reduce(values: torch.Tensor, per_image: bool) -> Union[float, np.ndarray]:
    """(B,) per-image values, or their mean over the images where they are defined."""
    v = values.double().numpy()
    if per_image:
        return v
    return float(np.mean(v[~np.isnan(v)])) if (~np.isnan(v)).any() else float("nan")


def _config_of(model: torch.nn.Module) -> Config:
    config = getattr(model, "config", None)
    if not isinstance(config, Config):
        raise ValueError("predict reads the settings in model.config: use mose.load_model")
    return config
