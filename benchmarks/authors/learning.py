"""Learning against the authors' code: their code and ours trained on the same data and seeds.

    MOSE_AUTHORS_CODE=PATH python -m benchmarks.authors.learning [--seeds 0 1 2 3 4]
        [--jobs 2] [--threads 1] [--epochs E] [--reuse] [--set KEY=VALUE ...]
        [--out benchmarks/results/authors_code_synthetic_lidc]

Four rows on the synthetic LIDC demo's data and model, each trained once per seed and tested
on the test split with the best-validation-GED checkpoint:
- the authors' code: their model, OT loss, dataset, transforms and engine on the CPU
  (`worker.py train`), with the paper's recipe as our `paper, paper schedule` row has it
  (Adam 1e-3 under their running-mean plateau rule, γ 1/16 until epoch 6 and 1 after, batch
  32, 16 epochs); their test predictions are scored by our evaluation (`replay.py`);
- ours with the same recipe (the ablation row `paper, paper schedule`);
- ours with the demo's schedule, `synthetic_lidc_paper.py` (row `paper`);
- ours with the extensions, `synthetic_lidc.py` (row `full`).
Our rows are the LIDC ablation's runs (`benchmarks/bench_learning.py`: the same run folders,
so `--reuse` shares them with `--ablation lidc`). Writes `<out>.json` (every run's figures,
their mean and min–max, the authors' own test metrics by their conventions, the authors'
commit) and `<out>.md` (the tables).
"""

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import benchmarks.bench_learning as bench_learning
from benchmarks.ablations import LIDC, PAPER_SCHEDULE
from benchmarks.authors.replay import score
from benchmarks.authors.settings import model_and_loss, training_recipe
from benchmarks.authors.tree import extra_packages, find_tree, identify, run_worker
from benchmarks.provenance import ROOT, command_line, provenance

AUTHORS = "the authors' code, paper recipe"
OURS = {"paper, paper schedule": "ours, paper recipe",
        "paper": "ours, paper method, demo schedule",
        "full": "ours with the extensions, demo schedule"}
RUN = "authors_code_seed{seed}"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--authors-code", default=None,
                   help="the authors' tree (default: $MOSE_AUTHORS_CODE)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--rows", nargs="+", default=[AUTHORS, *OURS], choices=[AUTHORS, *OURS],
                   help="the rows to train (default: all four)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's 16 epochs")
    p.add_argument("--threads", type=int, default=1, help="threads of each run")
    p.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    p.add_argument("--reuse", action="store_true", help="skip runs that have test results")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of every row (repeatable), e.g. another data_folder")
    p.add_argument("--log-root", default="log/bench_learning")
    p.add_argument("--out", default="benchmarks/results/authors_code_synthetic_lidc")
    return p.parse_args(argv)


def paper_recipe(args: argparse.Namespace, seed: int = 0, name: str = ""):
    """Our config of the paper's recipe on the demo's data (the ablation row's settings)."""
    from utils.config.config import load_config

    settings = [*PAPER_SCHEDULE, f"seed={seed}", f"log_root='{args.log_root}'",
                "log_dir_name='synthetic'", "num_figures=0"]
    settings += [f"experiment_name='{name}'"] * bool(name) + args.set
    settings += [f"epochs={args.epochs}"] * (args.epochs is not None)
    return load_config(str(ROOT / "experiments" / f"{LIDC['paper']['config']}.py"), settings)


def train_authors(seed: int, args: argparse.Namespace, root: Path) -> Path:
    """One seed of the authors' code: train, predict the test split, score it with ours."""
    name = RUN.format(seed=seed)
    cfg = paper_recipe(args, seed, name)
    run_dir = ROOT / args.log_root / "synthetic" / name
    if args.reuse and (run_dir / "test").is_dir():
        return run_dir
    worker = dict(**model_and_loss(cfg), **training_recipe(cfg), seed=seed,
                  gamma0=cfg.gamma0, run_dir=str(run_dir),
                  data_folder=str((ROOT / cfg.data_folder).resolve()))
    run_dir.mkdir(parents=True, exist_ok=True)
    out = run_worker(root, "train", worker, args.threads, log=run_dir / "worker.log",
                     cwd=run_dir)
    (run_dir / "authors_result.json").write_text(json.dumps(out, indent=1) + "\n")
    (run_dir / "wall_s.txt").write_text(f"{out['wall_s']:.1f}\n")
    (run_dir / "config.json").write_text(json.dumps(dict(cfg), indent=1) + "\n")
    score(cfg, run_dir / "predictions.npz", run_dir)
    return run_dir


def train_ours(args: argparse.Namespace) -> Dict[tuple, Path]:
    """Our rows: the LIDC ablation's runs (trained unless `--reuse` finds them)."""
    rows = [r for r in OURS if r in args.rows]
    if not rows:
        return {}
    argv = ["--ablation", "lidc", "--rows", *rows, "--seeds", *map(str, args.seeds),
            "--threads", str(args.threads), "--jobs", str(args.jobs),
            "--log-root", args.log_root] + ["--reuse"] * args.reuse
    argv += ["--epochs", str(args.epochs)] if args.epochs is not None else []
    argv += [item for setting in args.set for item in ("--set", setting)]
    return bench_learning.run_ablation("lidc", bench_learning.parse_args(argv))


def table(results: Dict[str, Any]) -> str:
    """The rows' headline figures and, per seed, the authors' own test metrics."""
    lines = [bench_learning.ablation_table(results), ""]
    own = results.get("authors_own_metrics")
    if own:
        lines += ["The authors' test metrics by their own conventions (per-batch means; their "
                  "ECE over the split), per seed:", "",
                  "| Seed | GED | M-IoU | ECE % |", "|---|---|---|---|"]
        lines += [f"| {s} | {m['ged']:.4f} | {m['miou']:.4f} | {100 * m['ece']:.3f} |"
                  for s, m in own.items()]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    root = find_tree(args.authors_code)
    command = command_line()
    record = dict(provenance(command), threads=args.threads, authors_code=identify(root),
                  authors_extra_packages=extra_packages())
    from utils.build import prepare_data

    prepare_data(paper_recipe(args))  # the demo's data, generated on first use
    run_dirs = train_ours(args)
    if AUTHORS in args.rows:
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            dirs = list(pool.map(lambda s: train_authors(s, args, root), args.seeds))
        run_dirs.update({(AUTHORS, s): d for s, d in zip(args.seeds, dirs)})
    results: Dict[str, Any] = dict(provenance=record, command=command, configs={},
                                   recipe=training_recipe(paper_recipe(args)))
    for row in args.rows:
        runs: List[Dict[str, Any]] = [dict(seed=s, **bench_learning.collect(run_dirs[row, s]))
                                      for s in args.seeds]
        results["configs"][OURS.get(row, row)] = dict(
            seeds=args.seeds, runs=runs, summary=bench_learning.summarise(runs),
            ablation_row=row if row in OURS else None)
    if AUTHORS in args.rows:
        results["authors_own_metrics"] = {
            s: json.loads((run_dirs[AUTHORS, s] / "authors_result.json").read_text())
            ["their_test_metrics"] for s in args.seeds}
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    text = f"`{command}`\n\n{table(results)}\n\n{bench_learning.markdown(results)}"
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
