"""The validation curves of the comparison protocol in one figure.

    python -m benchmarks.plot_comparison [benchmarks/results/comparison_synthetic_lidc.json]
        [--out imgs/comparison_curves.png]

Left: validation GED per epoch at the long budget, each method with its chosen settings; the
line is the mean over seeds, the band the min–max, the marker the epoch from which the mean
curve stays within 1 % of its best (`bench_comparison.PLATEAU`). Right: the same at the demo's
budget.

It also writes `<results>_convergence.json` (and prints it): per budget and method, from the
mean curve over seeds, the epoch from which it stays within 1 % of its best and the *late gain*,
how much lower the best validation GED of the whole run is than the best of its first three
quarters (0.02 = 2 %): a small late gain means that training longer would change little.
"""

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.bench_comparison import NAMES, plateau_epoch  # noqa: E402
from benchmarks.provenance import command_line, provenance  # noqa: E402

COLOURS = {"mose_paper": "tab:blue", "mose": "tab:green", "prob_unet": "tab:orange",
           "ssn": "tab:red"}


def curves(runs: List[Dict]) -> Dict[str, np.ndarray]:
    """Per method: validation GED, seeds x epochs (epoch 0 = before training)."""
    out = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        rows = [r["val_curve"] for r in runs if r["method"] == method]
        out[method] = np.array([[np.nan if v is None else v for v in row] for row in rows])
    return out


def late_gain(mean: np.ndarray) -> float:
    """(best of the first three quarters of the epochs - best overall) / best overall."""
    quarter = (len(mean) - 1) * 3 // 4
    return float((np.nanmin(mean[:quarter + 1]) - np.nanmin(mean)) / np.nanmin(mean))


def convergence(budgets: Dict[str, Dict]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per budget and method: the mean curve's flat-from epoch and late gain."""
    return {epochs: {method: dict(flat_from=plateau_epoch(list(values.mean(0))),
                                  late_gain=round(late_gain(values.mean(0)), 4))
                     for method, values in curves(budget["runs"]).items()}
            for epochs, budget in budgets.items()}


def draw(ax, runs: List[Dict], title: str) -> None:
    """One panel: mean and min–max band per method, the plateau marked."""
    for method, values in curves(runs).items():
        epochs = np.arange(values.shape[1])
        mean = values.mean(0)
        colour = COLOURS.get(method)
        ax.plot(epochs, mean, color=colour, label=NAMES.get(method, method))
        ax.fill_between(epochs, values.min(0), values.max(0), color=colour, alpha=0.2, lw=0)
        flat = plateau_epoch(list(mean))
        ax.plot([flat], [mean[flat]], "o", color=colour, ms=5)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation GED")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("results", nargs="?",
                   default="benchmarks/results/comparison_synthetic_lidc.json")
    p.add_argument("--out", default="imgs/comparison_curves.png")
    return p.parse_args(argv)


def main(argv=None) -> Path:
    args = parse_args(argv)
    result = json.loads(Path(args.results).read_text())
    budgets = result["budgets"]
    fig, axes = plt.subplots(1, len(budgets), figsize=(6 * len(budgets), 4.2), squeeze=False)
    for ax, (epochs, budget) in zip(axes[0], budgets.items()):
        draw(ax, budget["runs"], f"{epochs} epochs, {len(result['protocol']['seeds'])} seeds "
                                 "(mean, min–max band; dot: flat from)")
    axes[0][0].legend(loc="upper right")
    fig.tight_layout()
    out = Path(args.out)
    command = command_line(argv)
    record = provenance(command)  # before the figure rewrites a tracked file
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    stats = dict(convergence=convergence(budgets), figure=str(out), provenance=record)
    Path(args.results).with_name(Path(args.results).stem + "_convergence.json").write_text(
        json.dumps(stats, indent=1))
    print(json.dumps(stats["convergence"], indent=1))
    return out


if __name__ == "__main__":
    main()
