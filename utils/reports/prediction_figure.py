"""The per-image figure of `--predict`: the prediction and its uncertainty over the image.

Row 1: the input; the mean prediction over it (binary: P(foreground) as a heat map with its 0.5
contour; more classes: the argmax in class colours, background left clear); the total
uncertainty (entropy of the mean) and its two parts, between samples (mutual information: the
plausible segmentations disagree) and within samples (expected entropy: each segmentation is
unsure), on one colour scale. Row 2 (MoSE): the experts' mean segmentations, heaviest π_k
first. Row 3: samples, heaviest first, with their weights. A legend names the class colours.
"""

from typing import Any, Dict, Optional, Sequence

import numpy as np

from data.specs import DatasetSpec
from utils.reports.figures import class_names, display_image, label_palette, new_figure

COLS = 5
_FONT = 8


def _shown(x: np.ndarray, spec: Optional[DatasetSpec]) -> tuple:
    """The input as `imshow` draws it: (picture in [0, 1], imshow options)."""
    image = display_image(x, spec)  # (H, W) or (H, W, 3)
    return image, dict(cmap="gray", vmin=0, vmax=1) if image.ndim == 2 else {}


def _axis(ax, title: str) -> None:
    ax.set_title(title, fontsize=_FONT, pad=3)
    ax.set_xticks([])
    ax.set_yticks([])


def _colourbar(fig, ax, handle, label: str = "") -> None:
    bar = fig.colorbar(handle, ax=ax, fraction=0.046, pad=0.03)
    bar.ax.tick_params(labelsize=_FONT - 1)
    if label:
        bar.set_label(label, fontsize=_FONT - 1)


def draw_prob(fig, ax, image: tuple, prob: np.ndarray, palette: np.ndarray, title: str,
              bar: bool) -> None:
    """A class-probability map (C, H, W) over the image (module docstring); palette (C, 3)."""
    ax.imshow(image[0], interpolation="nearest", **image[1])
    if len(palette) == 2:
        handle = ax.imshow(prob[1], cmap=_red_ramp(), vmin=0, vmax=1, interpolation="nearest")
        if prob[1].max() > 0.5 > prob[1].min():
            ax.contour(prob[1], levels=[0.5], colors="yellow", linewidths=0.8)
        if bar:
            _colourbar(fig, ax, handle, "P(foreground)")
    else:
        draw_labels(ax, None, prob.argmax(0), palette)
    _axis(ax, title)


def _red_ramp() -> Any:
    """Colour map from clear to opaque red: the image stays visible where P is low."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("p_red", [(1, 0.15, 0.1, 0), (1, 0.15, 0.1, 0.85)])


def draw_labels(ax, image: Any, labels: np.ndarray, palette: np.ndarray, title: str = "") -> None:
    """A label map in the class colours (C, 3) over the image (background transparent)."""
    if image is not None:
        ax.imshow(image[0], interpolation="nearest", **image[1])
    rgba = np.zeros(labels.shape + (4,))  # (H, W, 4)
    rgba[..., :3] = palette[labels] / 255.0
    if len(palette) == 2:
        rgba[..., :3] = (1.0, 0.15, 0.1)  # foreground red over a grey image
    rgba[..., 3] = np.where(labels > 0, 0.55, 0.0)
    ax.imshow(rgba, interpolation="nearest")
    if image is not None:
        _axis(ax, title)


def _uncertainty_row(fig, axes, arrays: Dict[str, np.ndarray]) -> None:
    total = arrays["entropy_total"]
    vmax = max(float(total.max()), 1e-6)
    maps = [("entropy_total", "total: H[mean]"),
            ("mutual_information", "between samples: MI\n(segmentations disagree)"),
            ("entropy_expected", "within samples: E[H]\n(each segmentation unsure)")]
    for ax, (key, name) in zip(axes, maps):
        handle = ax.imshow(arrays[key], cmap="magma", vmin=0, vmax=vmax, interpolation="nearest")
        _axis(ax, f"{name}\nmean {arrays[key].mean():.3f} nats")
        _colourbar(fig, ax, handle)


def _expert_row(axes, image: tuple, arrays: Dict[str, np.ndarray], palette: np.ndarray,
                fig) -> None:
    pi = arrays["expert_probs"]  # (K,)
    order = np.argsort(-pi, kind="stable")[:COLS]
    for ax, k in zip(axes, order):
        draw_prob(fig, ax, image, arrays["expert_mean_prob"][k], palette,
                  f"expert {k}: π = {pi[k]:.2f}{_empty(arrays['expert_mean_prob'][k].argmax(0))}",
                  bar=False)


def _sample_row(axes, image: tuple, arrays: Dict[str, np.ndarray], palette: np.ndarray,
                compact: bool) -> None:
    weights = arrays["sample_weights"]  # (N,)
    order = np.argsort(-weights, kind="stable")  # heaviest first
    S = 0
    if compact:  # expert-major: one sample of each expert (heaviest π first), then the next
        K = len(arrays["expert_probs"])
        S = len(weights) // K
        experts = np.argsort(-arrays["expert_probs"], kind="stable")
        order = np.array([k * S + s for s in range(S) for k in experts])
    for ax, n in zip(axes, order[:COLS]):
        who = f"expert {n // S}" if S else f"sample {n}"
        draw_labels(ax, image, arrays["samples"][n], palette,
                    f"{who}  w = {weights[n]:.3f}{_empty(arrays['samples'][n])}")


def _empty(labels: np.ndarray) -> str:
    """' (empty)' for a label map without any foreground class: says the blank panel is meant."""
    return "" if labels.any() else " (empty)"


def _legend(fig, arrays: Dict[str, np.ndarray], palette: np.ndarray,
            names: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    present = np.unique(np.concatenate([arrays["samples"].ravel(),
                                        arrays["mean_prob"].argmax(0).ravel()]))
    palette = palette / 255.0
    if len(palette) == 2:
        palette = np.array([(0, 0, 0), (1.0, 0.15, 0.1)])
    handles = [Patch(facecolor=palette[c], edgecolor="grey", label=names[c])
               for c in present if c > 0]
    if handles:
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8),
                   fontsize=_FONT, frameon=False)


def prediction_figure(x: np.ndarray, arrays: Dict[str, np.ndarray], num_classes: int,
                      name: str, representation: str,
                      spec: Optional[DatasetSpec] = None) -> Any:
    """The figure of one prediction.

    Args:
        x: (C_in, H, W) the model's input.
        arrays: one image's `predict_batch` arrays (no batch axis).
        num_classes: C.
        name: the file name, for the title.
        representation: 'compact' or 'standard'.
        spec: the dataset's spec (display, colours and class names), or None.

    Returns:
        A matplotlib Figure.
    """
    experts = "expert_probs" in arrays
    rows = 3 if experts else 2
    height = 2.25 * rows + 1.2
    fig = new_figure(2.3 * COLS, height)
    # a fixed layout: tight_layout would cost a third of the figure's time (measured)
    fig.subplots_adjust(left=0.01, right=0.96, bottom=0.45 / height, top=1 - 0.85 / height,
                        wspace=0.45, hspace=0.3)
    axes = fig.subplots(rows, COLS, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax in list(axes[0]) + list(axes[1:].flat):
        ax.axis("on")
    image, palette = _shown(x, spec), label_palette(num_classes, spec)
    axes[0, 0].imshow(image[0], interpolation="nearest", **image[1])
    _axis(axes[0, 0], "input")
    draw_prob(fig, axes[0, 1], image, arrays["mean_prob"], palette, "mean prediction", bar=True)
    _uncertainty_row(fig, axes[0, 2:], arrays)
    if experts:
        _expert_row(axes[1], image, arrays, palette, fig)
    _sample_row(axes[-1], image, arrays, palette, experts and representation == "compact")
    _hide_unused(axes, arrays, experts)
    _legend(fig, arrays, palette, class_names(num_classes, spec))
    N = len(arrays["sample_weights"])
    fig.suptitle(f"{name}   ({representation} representation, {N} samples)", fontsize=_FONT + 2,
                 y=1 - 0.12 / height, va="top")
    return fig


def _hide_unused(axes, arrays: Dict[str, np.ndarray], experts: bool) -> None:
    """Switch off the panels of rows 2-3 beyond the experts and samples shown."""
    counts = [len(arrays["expert_probs"])] if experts else []
    counts.append(len(arrays["sample_weights"]))
    for row, count in zip(axes[1:], counts):
        for ax in row[count:]:
            ax.axis("off")
