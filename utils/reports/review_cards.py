"""The review cards of a run: per image its strip (`review_tiles`) and the values the page sorts
by, gathered while the run computes them; then `index.html` (`review_page`).

- `PredictionReview` (`--predict INPUT --out DIR`): every written image; the strips go to
  `DIR/review/<stem>.png` (not with `--no-figures`, which writes no PNG); the cards link the
  image's `_prediction.png` and `.npz`; `predictions.csv` stays the file for scripts.
- `EvaluationReview` (`--demo val|test`, the test after training): every image of the split
  from the compact pass of `analyses.compact_pass`, with its annotations, and its GED and M-IoU
  taken from the evaluation itself (`results['per_image']`, not recomputed); writes
  `<run>/<split>/per_image.csv` (id, GED, M-IoU, mean uncertainties, entropy of π, π_k) and
  the strips to `<run>/<split>/review/<index>.png`.

The modes shown: MoSE's experts (mean over each expert's samples) heaviest π first, a
baseline's samples heaviest weight first; at most `MAX_MODES`, and `MAX_ANNOTATIONS`
annotations. The entropy of π is in nats (0: one expert holds all the mass; ln K: uniform).
"""

import csv
import datetime
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from data.specs import DatasetSpec, dataset_spec
from utils.evaluation.inference import uncertainty
from utils.methods import method_spec
from utils.reports.figures import display_image, label_palette
from utils.reports.review_page import stored, write_review_page
from utils.reports.review_tiles import publish, review_tiles, save_strip

MAX_MODES = 16
MAX_ANNOTATIONS = 16
STRIPS = "review"


def pi_entropy(weights: np.ndarray) -> float:
    """Entropy -Σ π_k ln π_k (nats) of mode weights (K,)."""
    p = np.asarray(weights, dtype=np.float64)
    return float(-(p * np.log(np.where(p > 0, p, 1.0))).sum())


def make_card(image_id: str, stem: str, strip: Optional[str], tile: Sequence[int], mi: float,
              h: float, weights: np.ndarray, order: np.ndarray, experts: bool,
              ged: Optional[float] = None, miou: Optional[float] = None,
              annots: Sequence[float] = (), empty: Sequence[bool] = ()) -> Dict[str, Any]:
    """One card dict (`review_page` module docstring).

    Args:
        image_id: the name the page shows and searches.
        stem: fills `{stem}` in the page's link templates.
        strip: the strip's path relative to the page, or None.
        tile: (tile height, tile width).
        mi, h: mean mutual information and total entropy over the image's pixels (nats).
        weights: (K,) π (MoSE) or (N,) sample weights.
        order: indices of the modes shown, in strip order.
        experts: `weights` is π (the entropy of π is stored).
        ged, miou: the image's evaluation figures (evaluation runs).
        annots: the probabilities of the annotations shown.
        empty: per mode shown, its segmentation has no foreground (the caption says so).
    """
    empty = list(empty) or [False] * len(order)
    return dict(id=image_id, stem=stem, strip=strip, th=int(tile[0]), tw=int(tile[1]),
                mi=stored(mi), h=stored(h), hpi=stored(pi_entropy(weights)) if experts else None,
                ged=stored(ged), miou=stored(miou),
                modes=[[int(k), stored(weights[k]), int(e)] for k, e in zip(order, empty)],
                nmodes=len(weights),
                annots=[stored(p) for p in annots])


def empty_modes(modes: np.ndarray) -> List[bool]:
    """Per mode, whether its segmentation has no foreground class.

    Args:
        modes: (K, C, H, W) probabilities (argmax taken) or (N, H, W) labels.
    """
    labels = modes.argmax(1) if modes.ndim == 4 else modes  # (K, H, W)
    return [not bool(m.any()) for m in labels]


def mode_order(weights: np.ndarray) -> np.ndarray:
    """Indices of the modes shown: heaviest first (stable), at most MAX_MODES."""
    return np.argsort(-np.asarray(weights), kind="stable")[:MAX_MODES]


def model_facts(cfg: Any, num_modes: int, experts: bool) -> str:
    """'MoSE, K=4 experts, S=4 samples each' or 'prob_unet, N=16 samples'."""
    method = cfg.get("method", "mose")
    if experts:
        return f"{method}, K={num_modes} experts, S={cfg.sample_per_mode} samples each"
    return f"{method}, N={num_modes} samples"


def now() -> str:
    """The local date and time, to the second (the page's 'written' fact)."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


class PredictionReview:
    """The cards of `--predict`, one per written image (module docstring).

    Args:
        out: the output folder DIR.
        figures: write the strips (False with `--no-figures`: cards without images).
        spec: the dataset's spec (display and colours, `data.specs`), or None.
    """

    def __init__(self, out: Path, figures: bool, spec: Optional[DatasetSpec] = None):
        self.out, self.figures, self.spec = Path(out), figures, spec
        self.cards: Dict[str, Dict[str, Any]] = {}
        self.num_modes, self.experts = 0, False

    def add(self, path: str, stem: str, x: np.ndarray, arrays: Dict[str, np.ndarray]) -> None:
        """The card of one written image.

        Args:
            path: the input file; stem: its output stem.
            x: (C_in, H, W) the model's input.
            arrays: its `predict_batch` arrays (no batch axis).
        """
        self.experts = "expert_probs" in arrays
        weights = arrays["expert_probs"] if self.experts else arrays["sample_weights"]  # (K,)
        self.num_modes = len(weights)
        order = mode_order(weights)
        strip, tile = None, (0, 0)
        modes = arrays["expert_mean_prob" if self.experts else "samples"][order]
        if self.figures:
            palette = label_palette(arrays["mean_prob"].shape[0], self.spec)
            tiles = review_tiles(display_image(x, self.spec), arrays["mean_prob"],
                                 arrays["entropy_total"], arrays["mutual_information"], modes,
                                 palette=palette)
            strip = f"{STRIPS}/{stem}.png"
            tile = save_strip(self.out / strip, tiles)
        self.cards[path] = make_card(Path(path).name, stem, strip, tile,
                                     float(arrays["mutual_information"].mean()),
                                     float(arrays["entropy_total"].mean()), weights, order,
                                     self.experts, empty=empty_modes(modes))

    def write(self, cfg: Any, input_path: str, paths: List[str], ckpt: Path,
              num_failed: int) -> Path:
        """Write DIR/index.html for the cards added (in the order of `paths`)."""
        cards = [self.cards[p] for p in paths if p in self.cards]

        def mean(key: str) -> str:
            return f"{np.mean([c[key] for c in cards]):.4f}" if cards else "\u2013"

        facts = [("config", cfg.config_file), ("checkpoint", str(ckpt)), ("written", now()),
                 ("images", f"{len(cards)} of {len(paths)} written, {num_failed} failed"),
                 ("model", model_facts(cfg, self.num_modes, self.experts)),
                 ("representation", method_spec(cfg.method).representation(cfg.eval_sample_num)),
                 ("mean MI", mean("mi")), ("mean H", mean("h"))]
        links = [("arrays", "{stem}_prediction.npz")]
        if self.figures:
            links.insert(0, ("figure", "{stem}_prediction.png"))
        header = dict(title=f"{cfg.experiment_name}: prediction of {input_path}", facts=facts,
                      files=[("predictions.csv", "predictions.csv"),
                             ("failures.txt", "failures.txt")],
                      config=dict(cfg), csv="predictions.csv")
        return write_review_page(self.out, header, cards, cfg.n_classes,
                                 "expert" if self.experts else "sample", links)


def image_ids(dataset: Any) -> List[str]:
    """Names of a dataset's images in loader order: the folder dataset's ids, else the stems of
    the numbered image files, else the indices."""
    if hasattr(dataset, "ids"):
        return [str(i) for i in dataset.ids]
    paths = getattr(dataset, "image_paths", None)
    if paths is None and isinstance(getattr(dataset, "paths", None), dict):
        paths = dataset.paths.get("images")
    if paths is not None and len(paths) == len(dataset):
        return [Path(p).stem for p in paths]
    return [str(i) for i in range(len(dataset))]


class EvaluationReview:
    """The cards of an evaluated split, one per image (module docstring).

    Args:
        out_dir: `<run>/<split>`.
        dataset: the split's dataset (for the image names).
        cfg: the run's settings (`softmax`, `masked_pred`, `n_classes`, `dataset`).
    """

    def __init__(self, out_dir: Path, dataset: Any, cfg: Any):
        self.out_dir, self.cfg = Path(out_dir), cfg
        self.ids = image_ids(dataset)
        self.cards: List[Dict[str, Any]] = []
        self.pis: List[Optional[np.ndarray]] = []
        self.num_modes, self.experts = 0, False

    @torch.no_grad()
    def add_batch(self, x: torch.Tensor, labels: torch.Tensor, label_probs: torch.Tensor,
                  out: Dict[str, torch.Tensor]) -> None:
        """The cards of the next batch of the split (in loader order).

        Args:
            x: (B, C_in, H, W) inputs; labels (B, M, H, W); label_probs (B, M).
            out: the model's compact-representation output for the batch (a baseline: its
                uniform samples).
        """
        pred = out["pred"].float()  # (B, N, C, H, W)
        probs = pred if self.cfg.softmax else torch.softmax(pred, dim=2)
        B, N, C, H, W = probs.shape
        maps = uncertainty(probs, out["weights"])
        if self.cfg.masked_pred:  # void pixels carry no prediction (as in the sample grids)
            void = labels[:, 0] == 0  # (B, H, W)
            for key in ("entropy_total", "mutual_information"):
                maps[key] = maps[key].masked_fill(void, 0.0)
        self.experts = "expert_probs" in out
        if self.experts:
            K = out["expert_probs"].shape[1]
            modes = probs.reshape(B, K, N // K, C, H, W).mean(2)  # (B, K, C, H, W)
            weights = out["expert_probs"]  # (B, K)
        else:
            modes, weights = pred.argmax(2), out["weights"]  # (B, N, H, W), (B, N)
        arrays = {k: v.cpu().numpy() for k, v in dict(
            maps, modes=modes, weights=weights.float(), labels=labels[:, :MAX_ANNOTATIONS],
            label_probs=label_probs[:, :MAX_ANNOTATIONS].float()).items()}
        mi = arrays["mutual_information"].mean((1, 2))  # (B,)
        h = arrays["entropy_total"].mean((1, 2))  # (B,)
        for b in range(B):
            self._add(x[b], {k: v[b] for k, v in arrays.items()}, float(mi[b]), float(h[b]))

    def _add(self, x: torch.Tensor, a: Dict[str, np.ndarray], mi: float, h: float) -> None:
        """Write one image's strip and keep its card."""
        index = len(self.cards)
        order = mode_order(a["weights"])
        self.num_modes = len(a["weights"])
        spec = dataset_spec(self.cfg.dataset)
        image = display_image(x, spec)  # (H, W) or (H, W, 3)
        real = a["label_probs"] > 0  # (M,), the folder dataset pads with zero-weight copies
        tiles = review_tiles(image, a["mean_prob"], a["entropy_total"], a["mutual_information"],
                             a["modes"][order], a["labels"][real],
                             label_palette(self.cfg.n_classes, spec))
        strip = f"{STRIPS}/{index}.png"
        tile = save_strip(self.out_dir / strip, tiles)
        image_id = self.ids[index] if index < len(self.ids) else str(index)
        self.cards.append(make_card(image_id, str(index), strip, tile, mi, h, a["weights"],
                                    order, self.experts, annots=a["label_probs"][real],
                                    empty=empty_modes(a["modes"][order])))
        self.pis.append(a["weights"] if self.experts else None)

    def write(self, results: Dict[str, Any], split: str) -> Path:
        """Add each image's GED and M-IoU (`results['per_image']`), write per_image.csv and
        index.html.

        Args:
            results: the evaluation's results (`per_image`, `ged`, `miou`, `ece`, `tag`,
                `checkpoint`, `representation`, `num_samples`, and the truth figures).
            split: the split's name.

        Returns:
            The page's path.
        """
        per_image = results.get("per_image") or {}
        for key in ("ged", "miou"):
            values = per_image.get(key, [])
            if len(values) == len(self.cards):  # else: a partial pass, no per-image figures
                for card, value in zip(self.cards, values):
                    card[key] = stored(value)
        csv_path = self._write_csv()
        header = dict(title=f"{self.cfg.experiment_name}: {split} split", csv=csv_path.name,
                      facts=self._facts(results), config=dict(self.cfg), files=[
                          (f"results_{results.get('tag', '')}.json",
                           f"results_{results.get('tag', '')}.json"),
                          ("per_image.csv", "per_image.csv"),
                          ("mode calibration", "mode_calibration.png"),
                          ("sweep", "sweep.png"), ("figures", "figures/")])
        return write_review_page(self.out_dir, header, self.cards, self.cfg.n_classes,
                                 "expert" if self.experts else "sample")

    def _facts(self, results: Dict[str, Any]) -> list:
        metrics = "  ".join(f"{name} {results[key]:.4f}" for key, name in (
            ("ged", "GED"), ("miou", "M-IoU"), ("true_ged", "true GED"),
            ("mode_mass_error", "mode-mass error")) if isinstance(results.get(key), float))
        if isinstance(results.get("ece"), float):
            metrics += f"  ECE {100 * results['ece']:.3f}%"
        return [("config", self.cfg.config_file), ("checkpoint", results.get("checkpoint", "")),
                ("written", now()), ("images", str(len(self.cards))),
                ("model", model_facts(self.cfg, self.num_modes, self.experts)),
                ("metrics", f"{metrics}  ({results.get('representation', '')} "
                            f"N={results.get('num_samples', '')})"),
                ("cards", "compact pass: every expert's mean and π" if self.experts
                 else f"the model's {self.num_modes} samples")]

    def _write_csv(self) -> Path:
        """per_image.csv: one row per image in loader order (atomically)."""
        path = self.out_dir / "per_image.csv"
        columns = ["id", "ged", "miou", "mean_mutual_information", "mean_entropy_total"]
        if self.experts:
            columns += ["entropy_pi"] + [f"pi_{k}" for k in range(self.num_modes)]
        fd, tmp = tempfile.mkstemp(prefix=".per_image.", suffix=".csv", dir=self.out_dir)
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(columns)
            for card, pi in zip(self.cards, self.pis):
                row = [card["id"], card["ged"], card["miou"], card["mi"], card["h"]]
                if self.experts:
                    row += [card["hpi"]] + [f"{p:.6f}" for p in pi]
                writer.writerow(["" if v is None else v for v in row])
        publish(tmp, path)
        return path
