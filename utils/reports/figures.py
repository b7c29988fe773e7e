"""Figures: per-image sample grids, reliability diagrams, sample-count sweeps, mode calibration.

matplotlib is imported inside the functions and only through its object-oriented API with the
Agg canvas (no pyplot), so importing this module needs no matplotlib and no display, and the
caller's pyplot backend is left alone. Every `*_figure` function returns a
`matplotlib.figure.Figure`; `save_figure` writes it as a PNG.
"""

import math
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from data.specs import DatasetSpec

_FONT = 7


def label_palette(num_classes: int, spec: Optional[DatasetSpec] = None) -> np.ndarray:
    """RGB colour of every class: the dataset's own colours for its C classes (`data.specs`),
    black/white for binary, else a qualitative colour map.

    Args:
        num_classes: C.
        spec: the dataset's spec, or None.

    Returns:
        (C, 3) uint8 colours.
    """
    if spec is not None and spec.palette is not None and len(spec.palette) == num_classes:
        return np.asarray(spec.palette, dtype=np.uint8)
    if num_classes == 2:
        return np.array([(0, 0, 0), (255, 255, 255)], dtype=np.uint8)
    from matplotlib import colormaps

    colours = colormaps["tab20"](np.arange(num_classes) % 20)[:, :3]  # (C, 3) in [0, 1]
    return (255 * colours).astype(np.uint8)


def colorize(labels: Any, num_classes: int, spec: Optional[DatasetSpec] = None) -> np.ndarray:
    """Label map (H, W) int -> (H, W, 3) uint8 image in the class palette."""
    return label_palette(num_classes, spec)[np.asarray(labels, dtype=np.int64)]


def class_names(num_classes: int, spec: Optional[DatasetSpec] = None) -> Sequence[str]:
    """Names of the classes: the dataset's own for its C classes, else 'background' and
    'foreground' for binary, 'class c' otherwise."""
    if spec is not None and spec.class_names is not None and len(spec.class_names) == num_classes:
        return spec.class_names
    return ["background", "foreground"] if num_classes == 2 else [f"class {c}"
                                                                  for c in range(num_classes)]


def display_image(x: Any, spec: Optional[DatasetSpec] = None) -> np.ndarray:
    """A model input as a picture in [0, 1]: (H, W) grey or (H, W, 3) RGB.

    One or two channels: the first, min-max scaled. Three or more: the first three (a 4th, e.g.
    the black-box prediction, is drawn separately), with the dataset's normalisation undone
    and clipped where it has one (`DatasetSpec.image_mean`), else min-max scaled (images
    standardised per image: lidc, folder).

    Args:
        x: (C_in, H, W) model input, tensor or array.
        spec: the dataset's spec, or None (min-max scaled).

    Returns:
        (H, W) or (H, W, 3) float array in [0, 1].
    """
    x = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if x.shape[0] >= 3 and spec is not None and spec.image_mean is not None:
        mean = np.asarray(spec.image_mean)[:, None, None]  # (3, 1, 1)
        std = np.asarray(spec.image_std)[:, None, None]  # (3, 1, 1)
        return np.clip((x[:3] * std + mean).transpose(1, 2, 0), 0, 1)  # (H, W, 3)
    image = x[0] if x.shape[0] < 3 else x[:3].transpose(1, 2, 0)  # (H, W) or (H, W, 3)
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def predictive_maps(probs: torch.Tensor, weights: torch.Tensor) -> tuple:
    """Pixel-wise predicted marginal Σ_n u_n p_n and its entropy (nats).

    Args:
        probs: (N, C, H, W) class probabilities of one image.
        weights: (N,) sample weights.

    Returns:
        marginal (C, H, W) and entropy (H, W) float numpy arrays.
    """
    marginal = torch.einsum("n,nchw->chw", weights.to(probs), probs).clamp_min(0)  # (C, H, W)
    entropy = -(marginal * torch.log(marginal.clamp_min(1e-12))).sum(0)  # (H, W)
    return marginal.cpu().numpy(), entropy.cpu().numpy()


def new_figure(width: float, height: float):
    """A matplotlib Figure on an Agg canvas (no pyplot state, no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Write a figure as a PNG (creating the folder) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def _show(ax, image: np.ndarray, title: str, **kwargs) -> Any:
    handle = ax.imshow(image, interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=_FONT, pad=2)
    ax.set_xticks([])
    ax.set_yticks([])
    return handle


def _overview_panels(item: Dict[str, Any], num_classes: int,
                     spec: Optional[DatasetSpec]) -> list:
    """(image, title, imshow options, colourbar?) of the first row of a sample grid."""
    x, marginal, entropy = item["image"], item["marginal"], item["entropy"]
    panels = [(display_image(x, spec), "input", dict(cmap="gray"), False)]
    k = None if spec is None else spec.label_channel
    if k is not None and x.shape[0] > k:  # e.g. Cityscapes' black-box prediction
        panels.append((colorize(x[k].round().long().cpu(), num_classes, spec),
                       "black-box pred.", {}, False))
    labels, v = item["labels"].cpu(), item["label_probs"].double().cpu()
    ent_opts = dict(cmap="magma", vmin=0, vmax=math.log(num_classes))
    if num_classes == 2:
        annot = torch.einsum("m,mhw->hw", v, (labels == 1).double()).numpy()  # (H, W)
        panels += [(annot, "annotation P(fg)", dict(cmap="viridis", vmin=0, vmax=1), True),
                   (marginal[1], "predicted P(fg)", dict(cmap="viridis", vmin=0, vmax=1), True)]
    else:
        panels += [(colorize(marginal.argmax(0), num_classes, spec),
                    "predicted marginal: argmax", {}, False),
                   (marginal.max(0), "its probability", dict(cmap="viridis", vmin=0, vmax=1),
                    True)]
    return panels + [(entropy, "entropy (nats)", ent_opts, True)]


def _sample_order(item: Dict[str, Any], max_samples: int) -> list:
    """Sample indices to draw: experts by decreasing weight, each expert's samples in order."""
    weights = item["weights"].double().cpu()
    if not item["compact"]:
        return list(range(len(weights)))[:max_samples]
    S = len(weights) // item["expert_probs"].shape[0]
    experts = torch.argsort(item["expert_probs"].double().cpu(), descending=True, stable=True)
    return [k * S + s for k in experts.tolist() for s in range(S)][:max_samples]


def sample_grid_figure(item: Dict[str, Any], num_classes: int, title: str = "",
                       spec: Optional[DatasetSpec] = None, max_annotations: int = 8,
                       max_samples: int = 16) -> Any:
    """One image: input, annotations with probabilities, samples with weights, marginal, entropy.

    Args:
        item: dict with `image` (C_in, H, W), `labels` (M, H, W), `label_probs` (M,),
            `samples` (N, H, W) hard labels, `weights` (N,), `expert_probs` (K,) or None (a
            baseline), `compact` (bool: samples are expert-major, S per expert; False for
            uniform samples), `marginal` (C, H, W) and
            `entropy` (H, W) from `predictive_maps`.
        num_classes: C.
        title: figure title.
        spec: the dataset's spec (display, colours, class names, a label-map input channel),
            or None.
        max_annotations: annotations shown (the most probable first).
        max_samples: samples shown (the heaviest experts first; one expert per row when S
            samples fit in a row).

    Returns:
        The Figure.
    """
    overview = _overview_panels(item, num_classes, spec)
    annots = torch.argsort(item["label_probs"].double().cpu(), descending=True, stable=True)
    annots = [m for m in annots.tolist() if item["label_probs"][m] > 0][:max_annotations]
    samples = _sample_order(item, max_samples)
    S = len(item["weights"]) // item["expert_probs"].shape[0] if item["compact"] else 8
    ncols = max(len(overview), min(8, max(len(annots), S)))
    rows = [1, math.ceil(len(annots) / ncols), math.ceil(len(samples) / ncols)]
    legend = num_classes > 2
    fig = new_figure(1.5 * ncols, 1.55 * sum(rows) + 0.5 + 0.5 * legend)
    axes = fig.subplots(sum(rows), ncols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    _draw_overview(fig, axes[0], overview)
    _label_panels(axes[1:1 + rows[1]].flat, item["labels"], annots, num_classes, spec,
                  [f"annotation {m}  p={float(item['label_probs'][m]):.3f}" for m in annots])
    who = [f"expert {n // S}" if item["compact"] else f"sample {n}" for n in samples]
    _label_panels(axes[1 + rows[1]:].flat, item["samples"], samples, num_classes, spec,
                  [f"{w}  w={float(item['weights'][n]):.3f}" for w, n in zip(who, samples)])
    if legend:
        _class_legend(fig, item, annots, samples, num_classes, spec)
    if item["expert_probs"] is not None and item["expert_probs"].shape[0] <= 8:
        title += "   π = " + " ".join(f"{float(p):.2f}" for p in item["expert_probs"])
    fig.suptitle(title, fontsize=_FONT + 2)
    fig.tight_layout(rect=(0, 0.06 if legend else 0, 1, 1), h_pad=0.4, w_pad=0.3)
    return fig


def _draw_overview(fig, axes, panels: list) -> None:
    for ax, (image, name, opts, bar) in zip(axes, panels):
        ax.axis("on")
        handle = _show(ax, image, name, **opts)
        if bar:
            cbar = fig.colorbar(handle, ax=ax, fraction=0.046, pad=0.03)
            cbar.ax.tick_params(labelsize=_FONT - 1)


def _label_panels(axes, maps: torch.Tensor, index: list, num_classes: int,
                  spec: Optional[DatasetSpec], titles: list) -> None:
    for ax, i, name in zip(axes, index, titles):
        ax.axis("on")
        _show(ax, colorize(maps[i].cpu(), num_classes, spec), name)


def _class_legend(fig, item: Dict[str, Any], annots: list, samples: list, num_classes: int,
                  spec: Optional[DatasetSpec]) -> None:
    """Colour patches of the classes visible in the shown label maps."""
    from matplotlib.patches import Patch

    shown = torch.cat([item["labels"][annots].flatten(), item["samples"][samples].flatten()])
    present = torch.unique(shown.cpu()).tolist()
    palette, names = label_palette(num_classes, spec) / 255.0, class_names(num_classes, spec)
    handles = [Patch(facecolor=palette[c], edgecolor="grey", label=names[c]) for c in present]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 9), fontsize=_FONT,
               frameon=False)


def reliability_figure(bins: Dict[str, Any], title: str = "") -> Any:
    """Reliability diagram of a `StreamingECE`: accuracy vs confidence per bin, and bin counts.

    Args:
        bins: `StreamingECE.bins()` (edges, count, conf_sum, acc_sum, total).
        title: figure title.

    Returns:
        The Figure.
    """
    edges, count = np.asarray(bins["edges"]), np.asarray(bins["count"])
    filled = count > 0
    conf = np.divide(bins["conf_sum"], count, out=np.zeros_like(count), where=filled)
    acc = np.divide(bins["acc_sum"], count, out=np.zeros_like(count), where=filled)
    total = max(bins["total"], 1)
    ece = float(np.abs(np.asarray(bins["conf_sum"]) - bins["acc_sum"])[filled].sum() / total)
    left, width = edges[:-1], np.diff(edges)
    fig = new_figure(4.6, 5.6)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw=dict(height_ratios=[3, 1.4]))
    top.bar(left[filled], acc[filled], width[filled], align="edge", color="tab:blue",
            edgecolor="black", label="annotation frequency (accuracy)")
    top.bar(left[filled], conf[filled] - acc[filled], width[filled], bottom=acc[filled],
            align="edge", color="tab:red", alpha=0.35, edgecolor="tab:red", label="gap")
    top.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="accuracy")
    top.set_title(f"{title}ECE {100 * ece:.2f}%".strip(), fontsize=9)
    top.legend(fontsize=_FONT, loc="upper left")
    bottom.bar(left, np.maximum(count, 0.5), width, align="edge", color="grey",
               edgecolor="black", log=True)
    for x, c in zip(left + width / 2, count):
        bottom.text(x, max(c, 0.5), f"{int(c):,}", ha="center", va="bottom", fontsize=_FONT - 1,
                    rotation=45)
    binned = count.sum() / total
    bottom.set(xlabel="confidence (predicted probability)", ylabel="pixels",
               ylim=(0.5, max(count.max(), 1) * 30))
    bottom.set_title(f"{int(total):,} pixels, {100 * binned:.1f}% in a bin", fontsize=_FONT + 1)
    fig.tight_layout()
    return fig


def sweep_figure(sweep: Dict[str, Any], title: str = "") -> Any:
    """GED and M-IoU against the number of samples, with the 95% bootstrap intervals.

    Args:
        sweep: `utils.evaluation.sweep.sample_count_sweep` output.
        title: figure title.

    Returns:
        The Figure.
    """
    fig = new_figure(8.5, 3.4)
    axes = fig.subplots(1, 2)
    styles = dict(standard=dict(color="tab:blue", marker="o"),
                  compact=dict(color="tab:orange", marker="s", linestyle="--"))
    for ax, metric, name in zip(axes, ("ged", "miou"), ("GED", "M-IoU")):
        for rep, style in styles.items():
            entries = sweep[rep]
            if not entries:  # a baseline: no compact representation
                continue
            n = np.array([e["num_samples"] for e in entries])
            mean = np.array([_num(e[metric]["mean"]) for e in entries])
            low = np.array([_num(e[metric]["ci_low"]) for e in entries])
            high = np.array([_num(e[metric]["ci_high"]) for e in entries])
            label = rep if rep == "standard" else f"compact (K={sweep['num_expert']}, N=K·S)"
            ax.plot(n, mean, label=label, **style)
            ax.fill_between(n, low, high, color=style["color"], alpha=0.2, lw=0)
        ax.set_xscale("log")
        ticks = sorted({e["num_samples"] for rep in styles for e in sweep[rep]})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks], fontsize=_FONT + 1)
        ax.minorticks_off()
        ax.set(xlabel="samples per image N", ylabel=name)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=_FONT + 1)
    fig.suptitle(f"{title} (bands: 95% bootstrap CI over images)".strip(), fontsize=9)
    fig.tight_layout()
    return fig


def _num(value: Optional[float]) -> float:
    return float("nan") if value is None else float(value)


def calibration_figure(summary: Dict[str, Any], title: str = "", max_ranks: int = 8) -> Any:
    """Mode calibration: predicted vs true mode probability by rank, per-image total variation,
    and (with flip classes, e.g. Cityscapes) predicted vs true flip frequency per class.

    Args:
        summary: `utils.evaluation.calibration.ModeCalibration.summary()`.
        title: figure title.
        max_ranks: most likely modes shown in the first panel.

    Returns:
        The Figure.
    """
    flips = summary.get("flips")
    fig = new_figure(4.2 * (3 if flips else 2), 3.4)
    axes = fig.subplots(1, 3 if flips else 2)
    rank = summary["by_rank"]
    k = min(max_ranks, len(rank["true"]))
    _paired_bars(axes[0], [f"{r + 1}\n({n})" for r, n in enumerate(rank["num_images"][:k])],
                 rank["true"][:k], rank["predicted"][:k])
    axes[0].set(xlabel="mode rank by true probability (images)", ylabel="mean probability")
    axes[0].set_title("mode probabilities", fontsize=9)
    tv = [im["tv"] for im in summary["per_image"]]
    axes[1].hist(tv, bins=20, range=(0, 1), color="grey", edgecolor="black")
    axes[1].axvline(summary["tv"]["mean"], color="tab:red",
                    label=f"mean {summary['tv']['mean']:.3f}")
    axes[1].set(xlabel="total variation per image", ylabel="images")
    axes[1].set_title(f"MAE {summary['mae']['mean']:.4f}, TV {summary['tv']['mean']:.4f}",
                      fontsize=9)
    axes[1].legend(fontsize=_FONT + 1)
    if flips:
        names = list(flips)
        _paired_bars(axes[2], names, [_num(flips[c]["true"]) for c in names],
                     [_num(flips[c]["predicted"]) for c in names])
        axes[2].set(ylabel="flip frequency", ylim=(0, 1))
        axes[2].set_title("flip frequency per class", fontsize=9)
    fig.suptitle(f"{title} mode calibration ({summary['num_images']} images)".strip(), fontsize=9)
    fig.tight_layout()
    return fig


def _paired_bars(ax, names: Sequence[str], true: Sequence[float],
                 predicted: Sequence[float]) -> None:
    x = np.arange(len(names))
    ax.bar(x - 0.2, true, 0.4, label="true", color="tab:green", edgecolor="black")
    ax.bar(x + 0.2, predicted, 0.4, label="predicted", color="tab:blue", edgecolor="black")
    ax.set_xticks(x)
    ax.set_xticklabels(names, fontsize=_FONT + 1)
    ax.legend(fontsize=_FONT + 1)
