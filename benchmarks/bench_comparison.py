"""The comparison protocol: MoSE (the paper's method and the extended recipe), the Probabilistic
U-Net and SSN on the synthetic LIDC set, each tuned with the same budget and trained to
convergence.

    OMP_NUM_THREADS=1 python -m benchmarks.bench_comparison --jobs 2     # the whole protocol
    python -m benchmarks.bench_comparison --jobs 2 --long 4 --short 2 --lrs 3e-3 --seeds 0 1
    python -m benchmarks.bench_comparison --jobs 2 --add mine=experiments/my_method.py

The protocol, identical for every method:
1. Data, backbone (num_filters), batch, evaluation (16 samples per image) and the cosine
   learning-rate schedule are those of `experiments/synthetic_lidc_paper.py`.
2. Tuning, on the validation split only, seed 0, at the tuning budget (`--tune-epochs`, by
   default the long budget; the same for every method): the learning rate from
   `--lrs`; then, for a method with a setting of its own (the Prob. U-Net's β, SSN's rank), that
   setting's other grid value at the chosen learning rate. The choice is the lowest best
   validation GED of the run (the checkpoint the run keeps).
3. The chosen settings are trained with every seed at the long budget (`--long` epochs, where the
   validation curves have flattened for every method) and at the demo's budget (`--short`).
   Each run's best-validation checkpoint is then tested once; the test split never informs a
   choice.

Writes `<out>.json` (every run with its validation curve, the choices, per method and budget
the mean, min and max over seeds, provenance) and `<out>.md` (the tables), and prints the
tables; `--step-time` times one training step of each method instead. Runs are cached in
`--runs` (`<run>.json` per run): a rerun reuses finished runs, so an interrupted protocol resumes
where it stopped. `benchmarks/plot_comparison.py` draws the validation curves from `<out>.json`.
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
from typing import Any, Dict, List, Optional

from benchmarks.provenance import command_line, provenance

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"mose_paper": "experiments/synthetic_lidc_paper.py",
           "mose": "experiments/synthetic_lidc.py",
           "prob_unet": "experiments/synthetic_lidc_prob_unet.py",
           "ssn": "experiments/synthetic_lidc_ssn.py"}
NAMES = {"mose_paper": "MoSE, paper's method", "mose": "MoSE, extended recipe",
         "prob_unet": "Prob. U-Net", "ssn": "SSN"}
# A method's own setting: its name, the published value first, the other grid value second.
KNOBS = {"prob_unet": ("beta", (1.0, 10.0)), "ssn": ("ssn_rank", (10, 20))}
METRICS = ("ged", "true_ged", "ged_ratio", "miou", "ece", "mode_mass_error", "train_seconds",
           "best_val_ged", "plateau_epoch")
PLATEAU = 0.01  # a curve has flattened at the first epoch within 1 % of its best validation GED


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=list(CONFIGS),
                   help=f"methods to compare (default: {' '.join(CONFIGS)}, plus every --add)")
    p.add_argument("--add", action="append", default=[], metavar="NAME=CONFIG",
                   help="another method under the same protocol: a name and its config file, "
                        "which must read the same synthetic data (base it on "
                        "experiments/synthetic_lidc_paper.py)")
    p.add_argument("--lrs", nargs="+", type=float, default=[1e-3, 3e-3, 1e-2],
                   help="the learning-rate grid, the same for every method")
    p.add_argument("--long", type=int, default=48, help="epochs of the converged budget")
    p.add_argument("--tune-epochs", type=int, default=None,
                   help="epochs of the tuning runs, the same for every method (default: --long)")
    p.add_argument("--short", type=int, default=16, help="epochs of the demo's budget")
    p.add_argument("--short-methods", nargs="*", default=None, metavar="METHOD",
                   help="methods trained at the short budget (default: every method); a "
                        "method left out has that column from another result file")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="seeds of the final runs; the first one also tunes")
    p.add_argument("--jobs", type=int, default=1, help="runs at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every run")
    p.add_argument("--out", default="benchmarks/results/comparison_synthetic_lidc",
                   help="results path without extension (.json and .md are written)")
    p.add_argument("--runs", default="log/bench_comparison",
                   help="the run folders and the per-run cache (not for version control)")
    p.add_argument("--data", default=None,
                   help="shared synthetic data folder (default: the paper config's data_folder)")
    p.add_argument("--step-time", action="store_true",
                   help="only time a training step of each method's config, the methods "
                        "interleaved (fair under load); writes <out>_step_time.json")
    args = p.parse_args(argv)
    args.tune_epochs = args.tune_epochs or args.long
    for item in args.add:
        name, sep, config = item.partition("=")
        if not sep or not name.isidentifier() or not (ROOT / config).is_file():
            p.error(f"--add {item!r}: give NAME=CONFIG with an existing config file")
        CONFIGS[name], NAMES[name] = config, name
        if name not in args.methods:
            args.methods.append(name)
    unknown = [m for m in args.methods + (args.short_methods or []) if m not in CONFIGS]
    if unknown:
        p.error(f"unknown methods {unknown}: choose from {list(CONFIGS)} or --add NAME=CONFIG")
    return args


def run_name(method: str, settings: Dict[str, Any], epochs: int, seed: int) -> str:
    """A run's folder name, from everything that distinguishes it."""
    knobs = "".join(f"_{k}{v:g}" for k, v in sorted(settings.items()))
    return f"{method}{knobs}_e{epochs}_s{seed}"


def overrides(name: str, settings: Dict[str, Any], epochs: int, seed: int,
              args: argparse.Namespace) -> List[str]:
    """--set items of one run."""
    sets = [f"seed={seed}", f"experiment_name={name}", f"log_root={args.runs}",
            f"run_root={args.runs}/tensorboard", f"data_folder={args.data}", f"epochs={epochs}",
            "max_train_minutes=None", "num_figures=0", "test_after_training=False",
            *(f"{k}={v!r}" for k, v in settings.items())]
    return [a for s in sets for a in ("--set", s)]


def curve(run_dir: Path) -> List[Optional[float]]:
    """Validation GED per epoch (index = epoch, 0 = before training) from metrics.jsonl."""
    ged = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "val_ged" in record:
            ged[record["epoch"]] = record["val_ged"]
    return [ged.get(e) for e in range(max(ged) + 1)]


def plateau_epoch(values: List[Optional[float]], tol: float = PLATEAU) -> int:
    """The first epoch whose validation GED is within `tol` (relative) of the curve's best."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    best = min(finite)
    return next(e for e, v in enumerate(values)
                if v is not None and math.isfinite(v) and v <= best * (1 + tol))


def run_one(method: str, settings: Dict[str, Any], epochs: int, seed: int, test: bool,
            args: argparse.Namespace) -> Dict[str, Any]:
    """Train one run (cached); with `test`, also test its best checkpoint (cached)."""
    name = run_name(method, settings, epochs, seed)
    cache = ROOT / args.runs / f"{name}.json"
    record = json.loads(cache.read_text()) if cache.is_file() else None
    run_dir = ROOT / args.runs / "synthetic" / name
    cmd = [sys.executable, "main.py", CONFIGS[method], "--device", "cpu",
           *overrides(name, settings, epochs, seed, args)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    log = ROOT / args.runs / f"{name}.out"
    if record is None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            start = time.time()
            subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                           check=True)
        values = curve(run_dir)
        record = dict(method=method, settings=settings, epochs=epochs, seed=seed,
                      train_seconds=round(time.time() - start, 1), val_curve=values,
                      trained_at=provenance()["commit"],
                      best_val_ged=min(v for v in values if v is not None),
                      plateau_epoch=plateau_epoch(values))
        cache.write_text(json.dumps(record, indent=1))
    if test and "ged" not in record:
        with open(log, "a") as f:
            subprocess.run(cmd + ["--demo", "test"], cwd=ROOT, env=env, stdout=f,
                           stderr=subprocess.STDOUT, check=True)
        results = json.loads(next((run_dir / "test").glob("results_*.json")).read_text())
        record.update({k: results[k] for k in METRICS if k in results})
        cache.write_text(json.dumps(record, indent=1))
    return record


def run_all(jobs: List[tuple], args: argparse.Namespace) -> List[Dict[str, Any]]:
    """Run (method, settings, epochs, seed, test) jobs, `args.jobs` at once, in order."""
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        return list(pool.map(lambda job: run_one(*job, args), jobs))


def tune(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    """The learning rate for every method, then each method's own setting: seed 0, the tuning
    budget, the lowest best validation GED. Returns the chosen settings per method."""
    seed, long = args.seeds[0], args.tune_epochs
    published = {m: {KNOBS[m][0]: KNOBS[m][1][0]} if m in KNOBS else {} for m in args.methods}
    grid = run_all([(m, dict(lr=lr, **published[m]), long, seed, False)
                    for m in args.methods for lr in args.lrs], args)
    chosen = {}
    for method in args.methods:
        mine = [r for r in grid if r["method"] == method]
        chosen[method] = dict(min(mine, key=lambda r: r["best_val_ged"])["settings"])
    second = [(m, dict(chosen[m], **{KNOBS[m][0]: KNOBS[m][1][1]}), long, seed, False)
              for m in args.methods if m in KNOBS]
    for record in run_all(second, args):
        method = record["method"]
        if record["best_val_ged"] < run_one(method, chosen[method], long, seed, False,
                                            args)["best_val_ged"]:
            chosen[method] = record["settings"]
    return chosen


def summarise(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Per method: mean, min and max over seeds of every metric."""
    summary = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        summary[method] = {k: dict(mean=sum(v) / len(v), min=min(v), max=max(v))
                           for k in METRICS
                           if (v := [r[k] for r in mine if r.get(k) is not None
                                     and math.isfinite(r[k])])}
        summary[method]["seeds"] = [r["seed"] for r in mine]
    return summary


def parameters(method: str, settings: Dict[str, Any]) -> int:
    """Parameters of a method's config with `settings` (the backbone is shared)."""
    from utils.build import build_model
    from utils.config.config import load_config

    cfg = load_config(str(ROOT / CONFIGS[method]), [f"{k}={v!r}" for k, v in settings.items()])
    return sum(p.numel() for p in build_model(cfg).parameters())


def table(summary: Dict[str, Dict[str, Any]], chosen: Dict[str, Dict[str, Any]],
          params: Dict[str, int]) -> str:
    """Markdown table of one budget: mean (min-max) over seeds."""
    cols = [("GED ratio", "ged_ratio", 3, 1), ("Mode-mass error", "mode_mass_error", 3, 1),
            ("M-IoU", "miou", 3, 1), ("ECE %", "ece", 2, 100), ("GED", "ged", 4, 1),
            ("Flat from epoch", "plateau_epoch", 0, 1), ("Train min", "train_seconds", 1, 1 / 60)]
    lines = ["| Method | Settings | " + " | ".join(c[0] for c in cols) + " | Parameters |",
             "|---" * (len(cols) + 3) + "|"]
    for method, s in summary.items():
        cells = []
        for _, key, digits, scale in cols:
            if key not in s:
                cells.append("—")
                continue
            m, lo, hi = (scale * s[key][k] for k in ("mean", "min", "max"))
            cells.append(f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})")
        knobs = ", ".join(f"{k} {v:g}" for k, v in chosen[method].items())
        lines.append(f"| {NAMES[method]} | {knobs} | " + " | ".join(cells)
                     + f" | {params[method]:,} |")
    return "\n".join(lines)


def grid_table(runs: List[Dict[str, Any]]) -> str:
    """Markdown table of the tuning runs: best validation GED per method and setting."""
    lines = ["| Method | Settings | Best val GED | Flat from epoch |", "|---|---|---|---|"]
    for r in runs:
        knobs = ", ".join(f"{k} {v:g}" for k, v in r["settings"].items())
        lines.append(f"| {NAMES[r['method']]} | {knobs} | {r['best_val_ged']:.4f} | "
                     f"{r['plateau_epoch']} |")
    return "\n".join(lines)


def step_times(args: argparse.Namespace, rounds: int = 3, steps: int = 10) -> Dict[str, Any]:
    """Seconds per training step (forward, loss, backward, Adam) of each method's config, in
    this process with `--threads` threads: `rounds` rounds, the methods interleaved within each
    round so that a varying machine load hits them alike; median over rounds."""
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
    """Generate the synthetic set once (the paper config's `synthetic_options`), untimed."""
    from data.synthetic import make_lidc
    from utils.config.config import load_config

    cfg = load_config(str(ROOT / CONFIGS["mose_paper"]), [])
    if args.data is None:
        args.data = cfg.data_folder
    if not (ROOT / args.data).exists():
        make_lidc(str(ROOT / args.data), **cfg.synthetic_options)


def main(argv=None) -> Dict[str, Any]:
    args = parse_args(argv)
    command = command_line(argv)
    prepare_data(args)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.step_time:
        result = dict(seconds_per_step=step_times(args), provenance=dict(
            provenance(command), threads=args.threads))
        out.with_name(out.name + "_step_time.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result["seconds_per_step"], indent=1))
        return result
    (ROOT / args.runs).mkdir(parents=True, exist_ok=True)
    chosen = tune(args)
    short = args.methods if args.short_methods is None else args.short_methods
    finals = run_all([(m, chosen[m], epochs, seed, True)
                      for epochs, methods in ((args.long, args.methods), (args.short, short))
                      for seed in args.seeds for m in args.methods if m in methods], args)
    grid = [json.loads(p.read_text()) for p in sorted((ROOT / args.runs).glob("*.json"))]
    grid = [r for r in grid if r["epochs"] == args.tune_epochs and r["seed"] == args.seeds[0]
            and r["method"] in args.methods]
    grid.sort(key=lambda r: (args.methods.index(r["method"]), sorted(r["settings"].items())))
    params = {m: parameters(m, chosen[m]) for m in args.methods}
    budgets = {}
    for epochs in (args.long, args.short):
        mine = [r for r in finals if r["epochs"] == epochs]
        budgets[str(epochs)] = dict(summary=summarise(mine), runs=mine)
    text = "\n\n".join(
        [f"`{command}`"]
        + [f"**{e} epochs** (seeds {' '.join(map(str, args.seeds))}; mean (min–max))\n\n"
           + table(b["summary"], chosen, params) for e, b in budgets.items()]
        + [f"**Tuning** (seed {args.seeds[0]}, {args.tune_epochs} epochs, validation split)\n\n"
           + grid_table(grid)])
    out.with_suffix(".json").write_text(json.dumps(dict(
        command=command, protocol=dict(lrs=args.lrs, knobs=KNOBS, long=args.long,
                                       tune_epochs=args.tune_epochs, short=args.short,
                                       short_methods=short, seeds=args.seeds, jobs=args.jobs,
                                       plateau_tolerance=PLATEAU),
        chosen=chosen, parameters=params, budgets=budgets, tuning=grid,
        provenance=dict(provenance(command), threads=args.threads)), indent=1))
    out.with_suffix(".md").write_text(text + "\n")
    print(text)
    return budgets


if __name__ == "__main__":
    main()
