"""The default path against the reference formulation, interleaved in one run; prints one JSON.

    python benchmarks/bench_compare.py [--rounds 3] [--steps 3] [--threads 2]
        [--compile-head] [--amp]
        [--config experiments/lidc_proposed.py] [--batch 4] [--set KEY=VALUE ...]
    (the same as `python benchmarks/bench_train.py --compare ...`)

Reference formulation: plain head, NCHW backbone, glibc malloc at its defaults
(`bench_train.py --plain --no-malloc-reuse`: the authors' maths and op order). Default path:
the config's settings (fast head, channels-last) with malloc reuse.

Each measurement is its own `bench_train.py` subprocess, because the malloc setting is
process-wide (utils/runtime/cpu_memory.py) and cannot be undone; within a round the two run one
after the other, the order alternating between rounds so that a slow phase of a shared machine
hits both. `train_ratio` and `eval_ratio` are the medians over rounds of the per-round ratios
(default / reference), with their min–max beside them. Absolute figures move with the load of
the machine; ratios from one run are the figures to compare.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

try:
    import benchmarks._path  # noqa: F401  (python -m benchmarks.bench_compare)
except ModuleNotFoundError:
    import _path  # noqa: F401  (python benchmarks/bench_compare.py)
from benchmarks.provenance import provenance

BENCH = str(Path(__file__).resolve().with_name("bench_train.py"))
ROOT = str(Path(__file__).resolve().parents[1])


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="experiments/lidc_proposed.py")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=3, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--compile-head", action="store_true",
                   help="default path with the compiled head kernels (MoSE compile_head)")
    p.add_argument("--amp", action="store_true",
                   help="default path under bf16 autocast (the reference stays fp32)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                   help="settings for the default path")
    return p.parse_args()


def measure(args, reference: bool) -> dict:
    """One `bench_train.py` subprocess; its JSON."""
    cmd = [sys.executable, BENCH, "--config", args.config, "--batch", str(args.batch),
           "--steps", str(args.steps), "--threads", str(args.threads)]
    if reference:
        cmd += ["--plain", "--no-malloc-reuse"]
    else:
        cmd += ["--compile-head"] * args.compile_head + ["--amp"] * args.amp
        cmd += ["--set", *args.set] if args.set else []
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def summary(values) -> dict:
    """Median and min–max of a list of numbers."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    args = parse_args()
    rounds = []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        got = {ref: measure(args, ref) for ref in order}
        rounds.append({"reference": got[True], "default": got[False]})
        print(f"round {r + 1}/{args.rounds}: train {got[True]['train_img_per_s']:.3f} -> "
              f"{got[False]['train_img_per_s']:.3f} img/s, eval {got[True]['eval_img_per_s']:.3f}"
              f" -> {got[False]['eval_img_per_s']:.3f} img/s", file=sys.stderr)
    result = {"config": args.config, "batch": args.batch, "steps": args.steps,
              "rounds": args.rounds, "threads": args.threads,
              "dtype": "default path bf16 autocast" if args.amp else "float32",
              "default_settings": args.set, "compile_head": args.compile_head, "amp": args.amp}
    for kind in ("train", "eval"):
        key = f"{kind}_img_per_s"
        result[f"{kind}_ratio"] = statistics.median(
            rd["default"][key] / rd["reference"][key] for rd in rounds)
        result[f"{kind}_ratio_range"] = [
            min(rd["default"][key] / rd["reference"][key] for rd in rounds),
            max(rd["default"][key] / rd["reference"][key] for rd in rounds)]
        for path in ("reference", "default"):
            result[f"{path}_{key}"] = summary([rd[path][key] for rd in rounds])
    for path in ("reference", "default"):
        result[f"{path}_peak_rss_mb"] = max(rd[path]["peak_mem_mb"] for rd in rounds)
        result[f"{path}_first_train_step_s"] = summary(
            [rd[path]["first_train_step_s"] for rd in rounds])
    result["torch"] = rounds[0]["default"]["torch"]
    result["provenance"] = provenance()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
