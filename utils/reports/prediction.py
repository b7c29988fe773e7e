"""The outputs of `python main.py CONFIG --predict INPUT --out DIR [--ckpt PATH]`.

INPUT is an image file or a folder of them (its .png/.jpg/.jpeg/.npy files, not recursive);
`utils.evaluation.inference` reads, preprocesses and predicts them. Per image, in DIR:
`<stem>_prediction.npz` with the arrays of `utils.evaluation.inference.predict_batch` and
`image` (C_in, H, W) float32 as read from the file, and `<stem>_prediction.png`, a figure of
all that over the image (`utils.reports.prediction_figure`; `--no-figures` skips it: on a CPU
the figure takes about 99% of the time per image). `predictions.csv` holds one row per image:
file, size, π_k, and the per-image means of the three uncertainty maps. `index.html` is the
review page of the run (most ambiguous first; `review_cards`), over the strips in `review/`
(none with `--no-figures`).

Batch j samples from a generator seeded by (eval_seed, j), as in evaluation: the same INPUT,
`test_batch_size` and `eval_seed` give identical files. An image that cannot be read or does
not fit the model is named, gets no output, and the others still do; the run then ends with an
error naming the failures (also in DIR/failures.txt). Files are written under temporary names
and renamed, so a failure never leaves a half-written prediction.
"""

import csv
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
from tqdm import tqdm

from data.specs import dataset_spec
from utils.config.config import Config
from utils.evaluation.inference import (
    Loaded,
    input_batches,
    list_inputs,
    load_predictor,
    predict_batch,
)
from utils.methods import method_spec
from utils.reports.prediction_figure import prediction_figure
from utils.reports.review_cards import PredictionReview
from utils.runtime.distributed import batch_generator
from utils.runtime.logger import logger

SUFFIX = "_prediction"


def output_stems(paths: List[str]) -> Dict[str, str]:
    """Output name of every input: its stem, or stem_ext where two inputs share a stem."""
    stems = [Path(p).stem for p in paths]
    return {p: (s if stems.count(s) == 1 else f"{s}_{Path(p).suffix.lstrip('.').lower()}")
            for p, s in zip(paths, stems)}



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
    npz, png = out_dir / f"{item.stem}{SUFFIX}.npz", out_dir / f"{item.stem}{SUFFIX}.png"
    written = {npz: _atomic(npz, lambda p: np.savez_compressed(p, image=item.raw, **arrays))}
    try:
        if figure:
            fig = prediction_figure(item.x.numpy(), arrays, cfg.n_classes, Path(item.path).name,
                                    representation, dataset_spec(cfg.dataset))
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
    review = PredictionReview(out, figures, dataset_spec(cfg.dataset))
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
    representation = method_spec(cfg.method).representation(cfg.eval_sample_num)
    rows: Dict[str, Dict[str, Any]] = {}
    failures: Dict[str, str] = {}
    bar = tqdm(total=len(paths), desc="predict", unit="img", disable=None)
    stream = input_batches(paths, output_stems(paths), cfg, cfg.test_batch_size, failures)
    for j, batch in enumerate(stream):
        x = torch.stack([item.x for item in batch]).to(device)  # (B, C_in, H, W)
        arrays = predict_batch(model, x, batch_generator(cfg.eval_seed, j, device))
        for b, item in enumerate(batch):
            try:
                one = {k: v[b] for k, v in arrays.items()}
                rows[item.path] = write_outputs(out, item, one, cfg, representation, figures)
                review.add(item.path, item.stem, item.x.numpy(), one)
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
