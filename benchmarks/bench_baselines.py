"""MoSE against the Probabilistic U-Net and SSN on the synthetic LIDC set, several seeds.

    OMP_NUM_THREADS=1 python benchmarks/bench_baselines.py                 # 3 methods x seeds 0 1 2
    python benchmarks/bench_baselines.py --jobs 2 --epochs 8 --seeds 0     # a quicker look
    OMP_NUM_THREADS=1 python benchmarks/bench_baselines.py --step-time     # seconds per step

Every run is `python main.py experiments/synthetic_lidc[_<method>].py --set seed=S ...` in its
own process: training (no wall-clock budget, so every method gets the same epochs), then
`--demo test` on the best-validation-GED checkpoint. All runs read one synthetic data folder,
generated before the first run, so data generation is not timed. Training time is the wall-clock
of the training command (process start, loading, training and the per-epoch validation, the same
protocol for every method); with `--jobs 2` two runs share the CPU, so compare times only
between runs made with the same `--jobs` on an otherwise idle machine.

Writes `<out>/results.json` (every run, and per method the mean, min and max over seeds) and
`<out>/table.md`, and prints the table; `--step-time` writes `<out>/step_time.json` instead.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List

try:
    import benchmarks._path  # noqa: F401  (python -m benchmarks.bench_baselines)
except ModuleNotFoundError:
    import _path  # noqa: F401  (python benchmarks/bench_baselines.py)
from benchmarks.provenance import provenance

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"mose": "experiments/synthetic_lidc.py",
           "prob_unet": "experiments/synthetic_lidc_prob_unet.py",
           "ssn": "experiments/synthetic_lidc_ssn.py"}
NAMES = {"mose": "MoSE", "prob_unet": "Prob. U-Net", "ssn": "SSN"}
METRICS = ("ged", "true_ged", "ged_ratio", "miou", "ece", "mode_mass_error", "train_seconds",
           "parameters")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, help="override every config's epochs")
    p.add_argument("--jobs", type=int, default=1, help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every run")
    p.add_argument("--out", default="benchmarks/results/baselines_synthetic_lidc",
                   help="where results.json and table.md go")
    p.add_argument("--runs", default="log/bench_baselines",
                   help="the run folders (checkpoints, logs; not for version control)")
    p.add_argument("--data", default=None,
                   help="shared synthetic data folder (default: the MoSE config's data_folder)")
    p.add_argument("--step-time", action="store_true",
                   help="only time training steps, the methods interleaved (fair under load)")
    return p.parse_args(argv)


def overrides(method: str, seed: int, args: argparse.Namespace) -> List[str]:
    """--set items of one run: its seed and name, the shared data, no wall-clock budget."""
    sets = [f"seed={seed}", f"experiment_name={method}_seed{seed}", f"log_root={args.runs}",
            f"run_root={args.runs}/tensorboard", f"data_folder={args.data}",
            "max_train_minutes=None", "num_figures=0"]
    if args.epochs is not None:
        sets.append(f"epochs={args.epochs}")
    return [a for s in sets for a in ("--set", s)]


def run_one(method: str, seed: int, args: argparse.Namespace) -> Dict[str, Any]:
    """Train, then test; returns the test results with the training time and parameters."""
    cmd = [sys.executable, "main.py", CONFIGS[method], "--device", "cpu",
           *overrides(method, seed, args)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    log = ROOT / args.runs / f"{method}_seed{seed}.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as f:
        start = time.time()
        subprocess.run(cmd + ["--set", "test_after_training=False"], cwd=ROOT, env=env,
                       stdout=f, stderr=subprocess.STDOUT, check=True)
        train_seconds = time.time() - start
        subprocess.run(cmd + ["--demo", "test"], cwd=ROOT, env=env, stdout=f,
                       stderr=subprocess.STDOUT, check=True)
    run_dir = ROOT / args.runs / "synthetic" / f"{method}_seed{seed}" / "test"
    results = json.loads(next(run_dir.glob("results_*.json")).read_text())
    return dict(method=method, seed=seed, train_seconds=train_seconds,
                parameters=count_parameters(method), epochs=results["config"]["epochs"],
                **{k: results.get(k) for k in METRICS if k in results})


def count_parameters(method: str) -> int:
    from utils.build import build_model
    from utils.config.config import load_config

    cfg = load_config(str(ROOT / CONFIGS[method]), [])
    return sum(p.numel() for p in build_model(cfg).parameters())


def summarise(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Per method and metric: mean, min and max over seeds."""
    summary = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        summary[method] = {k: dict(mean=sum(v) / len(v), min=min(v), max=max(v))
                           for k in METRICS
                           if (v := [r[k] for r in mine if r.get(k) is not None
                                     and math.isfinite(r[k])])}
        summary[method]["seeds"] = [r["seed"] for r in mine]
    return summary


def table(summary: Dict[str, Dict[str, Any]]) -> str:
    """Markdown table: mean (min-max) over seeds."""
    cols = [("GED", "ged", 4, 1), ("True GED", "true_ged", 4, 1), ("Ratio", "ged_ratio", 3, 1),
            ("M-IoU", "miou", 3, 1), ("ECE %", "ece", 2, 100),
            ("Mode-mass error", "mode_mass_error", 3, 1), ("Train min", "train_seconds", 1, 1 / 60)]
    lines = ["| Method | Seeds | " + " | ".join(c[0] for c in cols) + " | Parameters |",
             "|---" * (len(cols) + 3) + "|"]
    for method, s in summary.items():
        cells = []
        for _, key, digits, scale in cols:
            if key not in s:
                cells.append("—")
                continue
            m, lo, hi = (scale * s[key][k] for k in ("mean", "min", "max"))
            cells.append(f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})")
        params = f"{int(s['parameters']['mean']):,}" if "parameters" in s else "—"
        lines.append(f"| {NAMES[method]} | {len(s['seeds'])} | " + " | ".join(cells)
                     + f" | {params} |")
    return "\n".join(lines)


def step_times(args: argparse.Namespace, rounds: int = 3, steps: int = 10) -> Dict[str, Any]:
    """Seconds per training step (forward, loss, backward, Adam) of each method's synthetic
    config, in this process with `--threads` threads: `rounds` rounds, the methods interleaved
    within each round so that a varying machine load hits them alike; median over rounds."""
    import torch

    from utils.build import build_loaders, build_loss, build_model
    from utils.config.config import load_config
    from utils.loss import objective

    torch.set_num_threads(args.threads)
    setups = {}
    for method in args.methods:
        cfg = load_config(str(ROOT / CONFIGS[method]), [f"data_folder={ROOT / args.data}"])
        model = build_model(cfg).train()
        batches = [b for _, b in zip(range(steps), build_loaders(cfg, ("train",))["train"])]
        setups[method] = (model, objective(build_loss(cfg)),
                          torch.optim.Adam(model.parameters(), lr=cfg.lr), batches)

    def one_round(method: str) -> float:
        model, loss_fn, optimizer, batches = setups[method]
        start = time.perf_counter()
        for x, labels, probs in batches:
            loss = loss_fn(model(x, label=labels, label_probs=probs), labels, probs)[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / len(batches)

    for method in args.methods:  # warm-up
        one_round(method)
    times = {m: [] for m in args.methods}
    for _ in range(rounds):
        for method in args.methods:
            times[method].append(one_round(method))
    return {m: dict(median=sorted(t)[len(t) // 2], all=t, batch=len(setups[m][3][0][0]))
            for m, t in times.items()}


def prepare_data(args: argparse.Namespace) -> None:
    """Generate the synthetic set once (the configs' `synthetic_options`), untimed; `--data`
    defaults to the MoSE config's `data_folder`."""
    from data.synthetic import make_lidc
    from utils.config.config import load_config

    cfg = load_config(str(ROOT / CONFIGS["mose"]), [])
    if args.data is None:
        args.data = cfg.data_folder
    if (ROOT / args.data).exists():
        return
    make_lidc(str(ROOT / args.data), **cfg.synthetic_options)


def main(argv=None) -> Dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    prepare_data(args)
    if args.step_time:
        result = dict(threads=args.threads, seconds_per_step=step_times(args),
                      provenance=dict(provenance(), threads=args.threads))
        (ROOT / out).mkdir(parents=True, exist_ok=True)
        (ROOT / out / "step_time.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return result
    jobs = [(m, s) for s in args.seeds for m in args.methods]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        runs = list(pool.map(lambda job: run_one(*job, args), jobs))
    summary = summarise(runs)
    text = table(summary)
    command = "python benchmarks/bench_baselines.py " + " ".join(sys.argv[1:] if argv is None
                                                                 else argv)
    (ROOT / out).mkdir(parents=True, exist_ok=True)
    (ROOT / out / "results.json").write_text(json.dumps(
        dict(command=command, jobs=args.jobs, runs=runs, summary=summary,
             provenance=dict(provenance(command), threads=args.threads)), indent=2))
    (ROOT / out / "table.md").write_text(f"`{command}`\n\n{text}\n")
    print(text)
    return summary


if __name__ == "__main__":
    main()
