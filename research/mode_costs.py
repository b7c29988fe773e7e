"""Which four masks does MoSE's training objective prefer on the synthetic LIDC set? Prints JSON.

    python -m research.mode_costs [--jitters 0.75 0.5 0.25 0.1 0] [--wobble 0]
        [--exclusive] [--n 2000] [--seed 0]

With capacity γ = 1 the OT loss sends every annotation to its closest sample, so four sharp
experts that draw the masks m_1..m_4 of an image cost, per annotation, the smallest soft-IoU cost
(the 'iou' cost of utils/loss/ot_cost.py on binary masks) to them. This script evaluates that
objective, averaged over the annotations of n generated images, for hand-built solutions:
- `true_modes`: nothing, core, extended, satellite (what the mode-mass error rewards);
- `core_two_sizes`: nothing, a smaller and a larger core, and core + whatever extra structure
  the image shows (halo, else satellite): the roles the trained experts take;
- `extended_two_sizes`: nothing, core, a smaller and a larger extended mask (satellite on
  images without a halo).
The size changes are ±f·jitter of the radius, the better of f = 0.3 and 0.5 (with jitter 0:
of the wobble). `--wobble W` draws the annotations with the generator's outline wobble as well
(`data.synthetic.lidc.draw_annotations`); `--exclusive` draws halo and satellite never in the
same image (the generator's `satellite_with_halo=False`; the demo's set is `--jitters 0
--wobble 0.6 --exclusive`). A lower value is what training moves towards,
whatever the mode masses.
"""

import argparse
import json
from typing import Optional, Sequence

import numpy as np

from benchmarks.provenance import provenance
from data.synthetic.lidc import (
    _distances,
    draw_annotations,
    mode_masks,
    mode_probabilities,
    sample_params,
)


def iou_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Soft-IoU cost with +1 smoothing of binary masks (..., S, S) -> (...)."""
    inter = (a * b).sum((-1, -2))
    union = a.sum((-1, -2)) + b.sum((-1, -2)) - inter
    return 1.0 - (inter + 1.0) / (union + 1.0)


def objective(annotations: np.ndarray, candidates: list) -> float:
    """Mean over annotations (n, A, S, S) of the smallest cost to the candidates [(n, S, S)]."""
    costs = np.stack([iou_cost(annotations, c[:, None]) for c in candidates], -1)  # (n, A, 4)
    return float(costs.min(-1).mean())


def mode_costs(jitters: list, n: int = 2000, seed: int = 0, wobble: float = 0.0,
               satellite_with_halo: bool = True) -> list:
    """The objective of each hand-built solution (module docstring) for every jitter.

    Returns:
        One dict per jitter: `jitter`, (`wobble` where > 0), `true_modes`, `core_two_sizes`,
        `extended_two_sizes`.
    """
    size = 32
    p = sample_params(np.random.default_rng(seed), n, size, satellite_with_halo)
    d_main, d_sat = _distances(p, slice(0, n), size)  # (n, S, S)
    modes = mode_masks(p, slice(0, n), d_main, d_sat).astype(float)  # (n, 4, S, S)
    halo = (p["h"] > 0)[:, None, None]  # (n, 1, 1)
    rc, re = p["rc"][:, None, None], p["re"][:, None, None]
    disc = lambda r: (d_main < r).astype(float)  # noqa: E731
    extras = np.where(halo, modes[:, 2], modes[:, 3])  # (n, S, S)
    rows = []
    for jitter in jitters:
        ann = draw_annotations(p, slice(0, n), mode_probabilities(p), d_main, d_sat,
                               np.random.default_rng(seed + 1), size, jitter, wobble)
        ann = ann.transpose(0, 3, 1, 2).astype(float)  # (n, A, S, S)
        row = {"jitter": jitter, **({"wobble": wobble} if wobble > 0 else {}),
               **({} if satellite_with_halo else {"exclusive": True}),
               "true_modes": objective(ann, list(modes.transpose(1, 0, 2, 3)))}
        step = jitter if jitter > 0 else wobble
        row["core_two_sizes"] = min(
            objective(ann, [modes[:, 0], disc(rc - f * step), disc(rc + f * step), extras])
            for f in (0.3, 0.5))
        row["extended_two_sizes"] = min(
            objective(ann, [modes[:, 0], modes[:, 1],
                            np.where(halo, disc(re - f * step), modes[:, 1]),
                            np.where(halo, disc(re + f * step), modes[:, 3])])
            for f in (0.3, 0.5))
        rows.append(row)
    return rows


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jitters", nargs="+", type=float, default=[0.75, 0.5, 0.25, 0.1, 0.0])
    parser.add_argument("--wobble", type=float, default=0.0, help="outline wobble (px)")
    parser.add_argument("--exclusive", action="store_true",
                        help="halo and satellite never in the same image")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    print(json.dumps({"provenance": provenance()}), flush=True)
    for row in mode_costs(args.jitters, args.n, args.seed, args.wobble, not args.exclusive):
        print(json.dumps({k: v if isinstance(v, bool) else round(v, 4) for k, v in row.items()}),
              flush=True)


if __name__ == "__main__":
    main()
