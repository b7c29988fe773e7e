"""Speed against the authors' code: their training and evaluation steps beside ours on a CPU.

    MOSE_AUTHORS_CODE=PATH python -m benchmarks.authors.speed [--rounds 3] [--steps 2]
        [--threads 2] [--configs lidc_proposed cityscapes_proposed] [--batch 4]
        [--out benchmarks/results/authors_code_speed.json]

For each paper config, every round runs three processes one after the other, the order
rotating between rounds so that a slow phase of a shared machine hits each path: the authors'
code (`worker.py speed`: their forward, OT loss, backward and Adam step; their compact
evaluation forward with their GED / M-IoU and ECE accumulation), our default float32 path and
our `--fastest` path (`python -m benchmarks.bench_train`: the same steps with our metrics). All
three use the same thread count and the same random inputs (`bench_train.random_batch`).
Per path and config: median img/s over rounds; per round the ratio ours / theirs; the headline
is the median ratio with its min–max. The same JSON holds the machine's float32 matmul limit
and the share of it each path reaches (`matmul_limit.py`).
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from benchmarks.authors.settings import model_and_loss
from benchmarks.authors.tree import extra_packages, find_tree, identify, run_worker
from benchmarks.provenance import ROOT, command_line, provenance

PATHS = ("authors", "default", "fastest")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--authors-code", default=None,
                   help="the authors' tree (default: $MOSE_AUTHORS_CODE)")
    p.add_argument("--configs", nargs="+", default=["lidc_proposed", "cityscapes_proposed"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=2, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    p.add_argument("--matmul-size", type=int, default=2048,
                   help="n of the n×n torch.mm that measures the matmul limit (0: skip)")
    p.add_argument("--out", default="benchmarks/results/authors_code_speed.json")
    return p.parse_args(argv)


def worker_args(config: str, batch: int, steps: int) -> Dict[str, Any]:
    """The authors' model and loss for one of our paper configs, and the benchmark's inputs."""
    from benchmarks.bench_train import random_batch
    from utils.config.config import load_config

    cfg = load_config(str(ROOT / "experiments" / f"{config}.py"))
    x, y, _ = random_batch(cfg, 1, "cpu")  # the shapes bench_train times ours on
    return dict(**model_and_loss(cfg), lr=cfg.lr, batch=batch, steps=steps,
                annotations=y.shape[1], image_size=list(x.shape[-2:]))


def measure(path: str, config: str, args: argparse.Namespace, root: Path) -> Dict[str, Any]:
    """One process of one path: its img/s and step times."""
    if path == "authors":
        return run_worker(root, "speed", worker_args(config, args.batch, args.steps),
                          args.threads)
    cmd = [sys.executable, "-m", "benchmarks.bench_train", "--config",
           f"experiments/{config}.py", "--batch", str(args.batch), "--steps", str(args.steps),
           "--threads", str(args.threads)] + ["--fastest"] * (path == "fastest")
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def summary(values: List[float]) -> Dict[str, float]:
    """Median and min–max."""
    return dict(median=statistics.median(values), min=min(values), max=max(values))


def compare_config(config: str, args: argparse.Namespace, root: Path) -> Dict[str, Any]:
    """Every round of one config, and per path its img/s and ratio over the authors'."""
    rounds = []
    for r in range(args.rounds):
        order = args.paths[r % len(args.paths):] + args.paths[:r % len(args.paths)]
        got = {path: measure(path, config, args, root) for path in order}
        rounds.append(got)
        print(f"{config} round {r + 1}/{args.rounds}: " + ", ".join(
            f"{p} train {got[p]['train_img_per_s']:.3f} eval {got[p]['eval_img_per_s']:.3f} img/s"
            for p in args.paths), file=sys.stderr, flush=True)
    out: Dict[str, Any] = dict(rounds=rounds)
    for path in args.paths:
        for kind in ("train", "eval"):
            key = f"{kind}_img_per_s"
            out[f"{path}_{key}"] = summary([rd[path][key] for rd in rounds])
            if path != "authors" and "authors" in args.paths:
                out[f"{path}_{kind}_ratio"] = summary(
                    [rd[path][key] / rd["authors"][key] for rd in rounds])
        out[f"{path}_peak_rss_mb"] = max(rd[path]["peak_mem_mb"] for rd in rounds)
    out["fastest_choice"] = rounds[0].get("fastest", {}).get("fastest")
    out.update(limit_fractions(config, args, out))
    return out


def limit_fractions(config: str, args: argparse.Namespace, out: Dict[str, Any]) -> Dict:
    """The float32 matmul limit of this config's steps and each path's share of it."""
    if not args.matmul_size:
        return {}
    import torch

    from benchmarks.matmul_limit import limits
    from utils.config.config import load_config

    torch.set_num_threads(args.threads)
    cfg = load_config(str(ROOT / "experiments" / f"{config}.py"))
    lim = limits(cfg, args.batch, args.threads, args.matmul_size)
    for path in args.paths:
        for kind in ("train", "eval"):
            img_per_s = out[f"{path}_{kind}_img_per_s"]["median"]
            lim[f"{path}_{kind}_fraction_of_fp32_limit"] = (
                img_per_s / lim[f"{kind}_img_per_s_limit_fp32"])
            if path == "fastest":  # under bf16 autocast where the machine has bf16 units
                lim[f"{path}_{kind}_fraction_of_bf16_limit"] = (
                    img_per_s * lim[f"{kind}_gflop_per_image"] / lim["matmul_gflops_bf16"])
    return lim


def main() -> None:
    args = parse_args()
    root = find_tree(args.authors_code)
    record = provenance(command_line())
    result: Dict[str, Any] = dict(
        provenance=dict(record, threads=args.threads, authors_code=identify(root),
                        authors_extra_packages=extra_packages()),
        batch=args.batch, steps=args.steps, rounds=args.rounds, threads=args.threads,
        configs={})
    for config in args.configs:
        result["configs"][config] = compare_config(config, args, root)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({c: {k: v for k, v in r.items() if k.endswith("_ratio")}
                      for c, r in result["configs"].items()}, indent=1))


if __name__ == "__main__":
    main()
