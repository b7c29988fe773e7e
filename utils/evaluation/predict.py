"""Prediction on new images: `python main.py CONFIG --predict INPUT --out DIR [--ckpt PATH]`.

INPUT is an image file or a folder of them (its .png/.jpg/.jpeg/.npy files, not recursive), read
as `data.folder` reads images and preprocessed as the config's dataset is: per-image
standardisation (lidc, folder) or the Cityscapes normalisation (cityscapes: PNG/JPEG /255 then
per-channel mean/std; npy taken as already normalised, 3 or 4 channels as the model needs).
Any image size runs through the U-Net at evaluation (ceil-mode pooling, upsampling to the skip
size), so images are neither padded nor resized; images of one size share batches of
`test_batch_size`.

Per image, in DIR: `<stem>_prediction.npz` with
- `mean_prob` (C, H, W): Σ_n w_n p_n over the N weighted samples (the compact representation,
  K·S samples weighted π_k / S, or the standard one when `eval_sample_num` is set);
- `entropy_total` (H, W) = H[mean_prob] (nats), split into `entropy_expected` = Σ_n w_n H[p_n]
  (within-sample: each plausible segmentation is unsure, e.g. on boundaries) and
  `mutual_information` = total - expected (between samples: the plausible segmentations
  disagree, i.e. where annotators would disagree, as the model learnt from the raters);
- `samples` (N, H, W) uint8 argmax label maps and `sample_weights` (N,);
- MoSE only: `expert_probs` (K,) π_k and `expert_mean_prob` (K, C, H, W), the mean over each
  expert's S compact samples (always from a compact pass);
- `image` (C_in, H, W) float32 as read from the file;
and `<stem>_prediction.png`, a figure of all that over the image (`--no-figures` skips it: on a
CPU the figure takes about 99% of the time per image). `predictions.csv` holds one
row per image: file, size, π_k, and the per-image means of the three uncertainty maps.
`index.html` is the review page of the run (most ambiguous first; `review_cards`), over the
strips in `review/` (none with `--no-figures`).

Batch j samples from a generator seeded by (eval_seed, j), as in evaluation: the same INPUT,
`test_batch_size` and `eval_seed` give identical files. An image that cannot be read or does
not fit the model is named, gets no output, and the others still do; the run then ends with an
error naming the failures (also in DIR/failures.txt). Files are written under temporary names
and renamed, so a failure never leaves a half-written prediction.
"""

import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy as np
import torch
from tqdm import tqdm

from data.cityscapes_labels import IMAGE_MEAN, IMAGE_STD
from data.folder import IMAGE_EXTS, natural_key, read_image
from data.lidc import standardise
from utils.build import build_model
from utils.config.config import Config
from utils.evaluation.metrics import hard_labels
from utils.runtime.checkpoint import load_model_weights
from utils.runtime.distributed import batch_generator
from utils.runtime.logger import logger

SUFFIX = "_prediction"


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


def output_stems(paths: List[str]) -> Dict[str, str]:
    """Output name of every input: its stem, or stem_ext where two inputs share a stem."""
    stems = [Path(p).stem for p in paths]
    return {p: (s if stems.count(s) == 1 else f"{s}_{Path(p).suffix.lstrip('.').lower()}")
            for p, s in zip(paths, stems)}


def preprocess(raw: np.ndarray, path: str, cfg: Config) -> torch.Tensor:
    """The config's preprocessing of one image.

    Args:
        raw: (C, H, W) float32 as stored.
        path: its file (for the messages and the file type).
        cfg: settings with `dataset`, `input_channels`.

    Returns:
        (C_in, H, W) float32 model input.
    """
    channels = raw.shape[0]
    if channels != cfg.input_channels:
        hint = (" (this Cityscapes model also takes the black-box prediction: pass (4, H, W) "
                "npy files)" if cfg.dataset == "cityscapes" and cfg.input_channels == 4 else "")
        raise ValueError(f"{path}: {channels} channel(s), the model takes {cfg.input_channels} "
                         f"(input_channels of {cfg.config_file}){hint}")
    if cfg.dataset != "cityscapes":
        x = standardise(raw)  # lidc, folder: per image, as their loaders do
    elif path.lower().endswith(".npy"):
        x = raw  # the Cityscapes builder's arrays are normalised already
    else:
        mean, std = np.asarray(IMAGE_MEAN)[:, None, None], np.asarray(IMAGE_STD)[:, None, None]
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


def _atomic(path: Path, write) -> Path:
    """Call `write(tmp_path)` on a temporary file beside `path`; returns the temporary path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
    except BaseException:
        os.remove(tmp)
        raise
    return Path(tmp)


def write_outputs(out_dir: Path, item: Loaded, arrays: Dict[str, np.ndarray], cfg: Config,
                  representation: str, figure: bool = True) -> Dict[str, Any]:
    """Write one image's npz and figure (both or neither); returns its CSV row.

    Args:
        out_dir: output folder.
        item: the input.
        arrays: its arrays (no batch axis).
        cfg: settings (`n_classes`).
        representation: 'compact' or 'standard'.
        figure: also write the PNG.
    """
    from utils.evaluation.predict_figure import prediction_figure

    npz, png = out_dir / f"{item.stem}{SUFFIX}.npz", out_dir / f"{item.stem}{SUFFIX}.png"
    written = {npz: _atomic(npz, lambda p: np.savez_compressed(p, image=item.raw, **arrays))}
    try:
        if figure:
            fig = prediction_figure(item.raw, arrays, cfg.n_classes, Path(item.path).name,
                                    representation)
            written[png] = _atomic(png, lambda p: fig.savefig(p, dpi=110))
    except BaseException:
        os.remove(written[npz])
        raise
    for final, tmp in written.items():
        os.replace(tmp, final)
    return csv_row(item, arrays)


def csv_row(item: Loaded, arrays: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """One row of predictions.csv: file, size, π_k (MoSE), mean uncertainties."""
    row: Dict[str, Any] = dict(file=item.path, height=item.x.shape[1], width=item.x.shape[2],
                               num_samples=len(arrays["sample_weights"]))
    for k, p in enumerate(arrays.get("expert_probs", [])):
        row[f"pi_{k}"] = f"{p:.4f}"
    for name in ("entropy_total", "entropy_expected", "mutual_information"):
        row[f"mean_{name}"] = f"{float(arrays[name].mean()):.5f}"
    return row


def _stream(paths: List[str], stems: Dict[str, str], cfg: Config, batch_size: int,
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


def run_prediction(cfg: Config, input_path: str, out_dir: str, ckpt: Path,
                   device: torch.device, figures: bool = True) -> Dict[str, Any]:
    """Predict every image of INPUT into `out_dir` (module docstring).

    Args:
        cfg: the resolved settings (model, preprocessing, `test_batch_size`, `eval_seed`).
        input_path: an image file or a folder of images.
        out_dir: output folder (created).
        ckpt: the weights.
        device: where the model runs.
        figures: write a PNG per image (about 99% of the time on a CPU; the arrays are in
            the npz either way).

    Returns:
        dict with `num_images`, `num_written`, `out` and `csv`.

    Raises:
        ValueError: after writing the others, when some images failed (named, with reasons).
    """
    paths = list_inputs(input_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_predictor(cfg, ckpt, device)
    from utils.evaluation.review_cards import PredictionReview

    review = PredictionReview(out, figures)
    rows, failures = _predict_all(model, paths, out, cfg, device, figures, review)
    csv_path = write_csv(out, [rows[p] for p in paths if p in rows])
    logger.info(f"predict: {len(rows)} of {len(paths)} images written to {out} ({csv_path.name}, "
                "review page index.html)")
    try:
        report_failures(out, paths, failures)
    finally:  # after failures.txt, which the page links
        review.write(cfg, input_path, paths, ckpt, len(failures))
    return dict(num_images=len(paths), num_written=len(rows), out=str(out), csv=str(csv_path))


def _predict_all(model: torch.nn.Module, paths: List[str], out: Path, cfg: Config,
                 device: torch.device, figures: bool, review: Any) -> tuple:
    """Predict and write every input and its review card (`review.add`); returns
    (path -> CSV row, path -> failure message)."""
    representation = "standard" if cfg.eval_sample_num else "compact"
    rows: Dict[str, Dict[str, Any]] = {}
    failures: Dict[str, str] = {}
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=None)
    stream = _stream(paths, output_stems(paths), cfg, cfg.test_batch_size, failures)
    for j, batch in enumerate(stream):
        x = torch.stack([item.x for item in batch]).to(device)  # (B, C_in, H, W)
        arrays = predict_batch(model, x, batch_generator(cfg.eval_seed, j, device))
        for b, item in enumerate(batch):
            try:
                one = {k: v[b] for k, v in arrays.items()}
                rows[item.path] = write_outputs(out, item, one, cfg, representation, figures)
                review.add(item.path, item.stem, item.raw, one)
            except (OSError, ValueError) as err:
                failures[item.path] = f"{item.path}: its outputs could not be written ({err})"
        bar.update(len(rows) + len(failures) - bar.n)
    bar.update(len(paths) - bar.n)  # trailing unreadable files
    bar.close()
    return rows, failures


def write_csv(out: Path, rows: List[Dict[str, Any]]) -> Path:
    """Write predictions.csv (atomically); columns are the union of the rows' keys in order."""
    path = out / "predictions.csv"
    columns: List[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    os.replace(_atomic(path, write), path)
    return path


def report_failures(out: Path, paths: List[str], failures: Dict[str, str]) -> None:
    """Write failures.txt and raise one error naming the failed images (no-op without any)."""
    stale = out / "failures.txt"
    if not failures:
        if stale.exists():
            stale.unlink()
        return
    lines = [failures[p] for p in paths if p in failures]
    stale.write_text("\n".join(lines) + "\n")
    for line in lines:
        logger.warning(f"predict failed: {line}")
    raise ValueError(f"{len(lines)} of {len(paths)} images failed, e.g. {lines[0]}; the others' "
                     f"predictions are in {out}; all failures are listed in {stale}")
