"""The default path against the reference formulation, interleaved in one run; prints one JSON.

    python -m benchmarks.bench_compare [--rounds 3] [--steps 3] [--threads 2]
        [--compile-head] [--amp] [--matmul-size 2048]
        [--config experiments/lidc_proposed.py] [--batch 4] [--set KEY=VALUE ...]

Reference formulation: plain head, NCHW backbone, glibc malloc at its defaults
(`bench_train.py --plain --no-malloc-reuse`: the authors' maths and op order). Default path:
the config's settings (fast head, channels-last) with malloc reuse.

Each measurement is its own `bench_train.py` subprocess, because the malloc setting is
process-wide (utils/runtime/cpu_memory.py) and cannot be undone; within a round the two run one
after the other, the order alternating between rounds so that a slow phase of a shared machine
hits both. `train_ratio` and `eval_ratio` are the medians over rounds of the per-round ratios
(default / reference), with their min–max beside them. Absolute figures move with the load of
the machine; ratios from one run are the figures to compare.

The same run also measures the machine's matmul limit (`matmul_limit.py`): `torch.mm` GFLOP/s
in float32 and bf16 at `--threads` (bf16 at n = 512 where the machine emulates it), and the
flops per image of the training and evaluation steps counted on the config's path in float32
(matmuls and convolutions only); their quotient `train_img_per_s_limit_fp32` is the img/s of a
step whose counted work all ran at the float32 matmul rate. For each path
`<path>_train_fraction_of_limit` and `<path>_eval_fraction_of_limit` are its median img/s over
that limit (with `--amp`, the default path also gets `default_<kind>_fraction_of_bf16_limit`,
against the bf16 rate). The counted work is the default path's: the reference formulation's
fraction is the share of the limit it reaches on the same job.
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

from benchmarks.matmul_limit import fractions, limits
from benchmarks.provenance import provenance

ROOT = str(Path(__file__).resolve().parents[1])


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
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
    p.add_argument("--matmul-size", type=int, default=2048,
                   help="n of the n×n torch.mm that measures the matmul limit")
    return p.parse_args(argv)


def measure(args, reference: bool) -> dict:
    """One `bench_train` subprocess; its JSON."""
    cmd = [sys.executable, "-m", "benchmarks.bench_train", "--config", args.config,
           "--batch", str(args.batch), "--steps", str(args.steps), "--threads", str(args.threads)]
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


def machine_limit(args) -> dict:
    """`matmul_limit.limits` of the default path's config at the run's batch and threads."""
    import torch

    from utils.config.config import load_config

    torch.set_num_threads(args.threads)
    return limits(load_config(args.config, args.set), args.batch, args.threads,
                  args.matmul_size)


def print_limit(result: dict) -> None:
    """The matmul limit and each path's fraction of it, one line each on stderr."""
    r = result
    print(f"matmul limit: {r['matmul_gflops_fp32']:.1f} GFLOP/s fp32, "
          f"{r['matmul_gflops_bf16']:.1f} bf16; step work {r['train_gflop_per_image']:.2f} (train)"
          f" / {r['eval_gflop_per_image']:.2f} (eval) GFLOP per image; fp32 limit "
          f"{r['train_img_per_s_limit_fp32']:.2f} / {r['eval_img_per_s_limit_fp32']:.2f} img/s",
          file=sys.stderr)
    for path in ("reference", "default"):
        line = ", ".join(f"{key[len(path) + 1:]} {value:.1%}" for key, value in result.items()
                         if key.startswith(path) and "fraction_of" in key)
        print(f"{path}: {line}", file=sys.stderr)


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
    result.update(machine_limit(args))
    for path in ("reference", "default"):
        result.update(fractions(result, path, bf16=args.amp and path == "default"))
    print_limit(result)
    result["torch"] = rounds[0]["default"]["torch"]
    result["provenance"] = provenance()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
