"""Does the model learn the true distribution? Train and test the synthetic configs over seeds.

    python -m benchmarks.bench_learning [--configs synthetic_lidc synthetic_cityscapes ...]
        [--seeds 0 1 2] [--epochs E] [--threads 1] [--out benchmarks/results/learning]
        [--reuse] [--jobs J] [--set KEY=VALUE ...] [--tag NAME]

Every (config, seed) runs `python main.py experiments/<config>.py --set seed=<seed>
--set experiment_name=<config>_seed<seed> --set log_root=<log root> --set test_after_training=True`
in a subprocess (fixed epochs, no time budget), then reads the run's test results and
`mode_calibration.json`. Writes `<out>.json` (every run) and `<out>.md` (per config: mean and
min–max over seeds) with, for every config, GED, true GED, ratio, M-IoU, ECE, mode-mass error
and wall-clock; for the synthetic LIDC set the mean predicted vs true mass of each mode type
(nothing, core, extended, satellite) over the test images where the type exists; for the
synthetic Cityscapes set the predicted vs true flip frequency of the five flippable classes, the
mode total variation and the IoU of sidewalk, person and car (the class or its flipped copy:
flips only relabel a region) between every compact sample and the annotation, weighted by the
sample weights. `--reuse` skips training where the run folder already holds test results.
`--jobs J` trains J runs at once; `--set` passes settings to every run (an experiment: give it a
`--tag`, which goes into the run names, `<config><tag>_seed<seed>`).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from benchmarks.ablations import ABLATIONS, run_name, training_rows
from benchmarks.provenance import command_line, provenance

ROOT = Path(__file__).resolve().parents[1]
MODE_TYPES = ("nothing", "core", "extended", "satellite")
FLIP_NAMES = ("sidewalk", "person", "car", "vegetation", "road")
IOU_CLASSES = {"sidewalk": (2, 20), "person": (12, 21), "car": (14, 22)}  # 25-id space
HEADLINE = ("ged", "true_ged", "ged_ratio", "miou", "ece", "mode_mass_error", "wall_s")


def train_and_test(config: str, seed: int, args: argparse.Namespace, name: str = "",
                   settings: Sequence[str] = ()) -> Path:
    """Run main.py for one config and seed (unless `--reuse` finds its test results).

    Args:
        config: config name in experiments/ (without .py).
        seed: the run's `seed` setting.
        args: parsed command line (epochs, threads, log root, reuse, settings for every run).
        name: the run's name; default `<config><tag>`.
        settings: `--set` items of this run (after those of the command line).

    Returns:
        The run folder; `wall_s.txt` in it holds the wall-clock seconds of the command.
    """
    name = f"{name or config + args.tag}_seed{seed}"
    run_dir = ROOT / args.log_root / "synthetic" / name
    if args.reuse and (run_dir / "test").is_dir():
        return run_dir
    cmd = main_command(config, seed, name, args, [*args.set, *settings])
    cmd += ["--set", "test_after_training=True"]
    if args.epochs is not None:
        cmd += ["--set", f"epochs={args.epochs}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=run_env(args), check=True, stdout=subprocess.DEVNULL)
    (run_dir / "wall_s.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return run_dir


def main_command(config: str, seed: int, name: str, args: argparse.Namespace,
                 settings: Sequence[str]) -> List[str]:
    """`python main.py experiments/<config>.py` with the run's seed, name, log root, settings."""
    cmd = [sys.executable, "main.py", str(ROOT / "experiments" / f"{config}.py"),
           "--set", f"seed={seed}", "--set", f"experiment_name={name}",
           "--set", f"log_root={args.log_root}"]
    for setting in settings:
        cmd += ["--set", setting]
    return cmd


def run_env(args: argparse.Namespace) -> Dict[str, str]:
    """The environment of a run: the command line's thread count."""
    return dict(os.environ, OMP_NUM_THREADS=str(args.threads))


def evaluate_variant(row: str, seed: int, args: argparse.Namespace,
                     rows: Dict[str, Dict[str, Any]]) -> Path:
    """Evaluate a training row's checkpoint on the test split with other evaluation settings.

    Args:
        row: the ablation row (`from_row`, `checkpoint` 'best' or 'before_refit',
            `eval_settings`).
        seed: the seed of the training run.
        args: parsed command line.
        rows: the ablation's rows.

    Returns:
        The row's run folder, with `config.json` (the resolved settings of the evaluation) and
        `wall_s.txt` (the training run's wall-clock: the variant costs what its training cost).
    """
    spec = rows[row]
    base = rows[spec["from_row"]]
    base_dir = ROOT / args.log_root / "synthetic" / f"{run_name(spec['from_row'])}_seed{seed}"
    name = f"{run_name(row)}_seed{seed}"
    run_dir = ROOT / args.log_root / "synthetic" / name
    if not (args.reuse and (run_dir / "test").is_dir()):
        suffix = "_before_refit" if spec["checkpoint"] == "before_refit" else ""
        base_cfg = read_json(base_dir / "config.json")
        ckpt = base_dir / f"{base_cfg['experiment_name']}_best_ged{suffix}.pth"
        cmd = main_command(base["config"], seed, name, args,
                           [*args.set, *base.get("settings", []), *spec["eval_settings"]])
        if args.epochs is not None:
            cmd += ["--set", f"epochs={args.epochs}"]
        cmd += ["--demo", "test", "--ckpt", str(ckpt)]
        subprocess.run(cmd, cwd=ROOT, env=run_env(args), check=True, stdout=subprocess.DEVNULL)
        res = read_json(next((run_dir / "test").glob("results_*.json")))
        (run_dir / "config.json").write_text(json.dumps(res["config"], indent=1) + "\n")
        shutil.copyfile(base_dir / "wall_s.txt", run_dir / "wall_s.txt")
    return run_dir


def read_json(path: Path) -> Dict[str, Any]:
    """The JSON object stored at `path`."""
    with open(path) as f:
        return json.load(f)


def lidc_mode_types(data_folder: Path, split: str = "test") -> tuple:
    """Mode-type probabilities and which types each image draws, from the generator's seed.

    Args:
        data_folder: synthetic LIDC root (its `synthetic_info.json` gives seed, size, counts).
        split: split name.

    Returns:
        (n, 4) float64 probabilities and (n, 4) bool drawn flags (nothing, core, extended,
        satellite); the split's first random draws are its scene parameters.
    """
    from data.synthetic.common import split_rngs
    from data.synthetic.lidc import mode_probabilities, sample_params

    info = read_json(data_folder / "synthetic_info.json")
    n = info["counts"][split]
    p = sample_params(split_rngs(info["seed"])[split], n, info["size"],
                      info.get("satellite_with_halo", True))
    drawn = np.stack([np.ones(n, bool), np.ones(n, bool), p["h"] > 0, p["q"] > 0], axis=1)
    return mode_probabilities(p), drawn


def lidc_type_masses(run_dir: Path, data_folder: Path) -> Dict[str, Dict[str, float]]:
    """Mean true and predicted mass of every mode type over the test images where it exists.

    `mode_calibration.json` lists each image's distinct modes by decreasing true probability;
    the generator's probabilities tell which type each entry is.

    Args:
        run_dir: run folder with `test/mode_calibration.json`.
        data_folder: the synthetic LIDC root the run used.

    Returns:
        type -> {true, predicted, num_images}.
    """
    cal = read_json(run_dir / "test" / "mode_calibration.json")
    probs, drawn = lidc_mode_types(data_folder)
    true = {t: [] for t in MODE_TYPES}
    pred = {t: [] for t in MODE_TYPES}
    for im in cal["per_image"]:
        types = np.flatnonzero(drawn[im["index"]])
        order = types[np.argsort(-probs[im["index"]][types], kind="stable")]
        if not np.allclose(probs[im["index"]][order], im["true"], atol=1e-5):
            raise ValueError(f"image {im['index']}: modes do not match the generator's")
        for k, t in enumerate(order):
            true[MODE_TYPES[t]].append(im["true"][k])
            pred[MODE_TYPES[t]].append(im["predicted"][k])
    return {t: dict(true=float(np.mean(true[t])), predicted=float(np.mean(pred[t])),
                    num_images=len(true[t])) for t in MODE_TYPES}


def cityscapes_class_iou(run_dir: Path) -> Dict[str, float]:
    """Sample-weighted IoU of sidewalk, person and car (class or flipped copy) on the test split.

    Every compact sample of every test image is compared with annotation 0 (all annotations
    share these regions); intersections and unions are summed over images, weighted by the
    sample weights.

    Args:
        run_dir: run folder (config.json, best checkpoint).

    Returns:
        class name -> IoU.
    """
    import torch

    from utils.build import build_loaders, build_model
    from utils.config.config import Config
    from utils.config.defaults import DEFAULTS
    from utils.labels import hard_labels
    from utils.runtime.checkpoint import load_model_weights

    cfg = Config(dict(DEFAULTS, **read_json(run_dir / "config.json")))  # older runs: defaults
    model = build_model(cfg)
    load_model_weights(model, str(run_dir / f"{cfg.experiment_name}_best_ged.pth"))
    model.eval()
    inter = {c: 0.0 for c in IOU_CLASSES}
    union = {c: 0.0 for c in IOU_CLASSES}
    gen = torch.Generator().manual_seed(cfg.eval_seed)
    with torch.no_grad():
        for x, labels, _ in build_loaders(cfg, ("test",))["test"]:
            out = model(x, label=labels if cfg.masked_pred else None, generator=gen)
            samples, w = hard_labels(out["pred"]), out["weights"].double()  # (B, N, H, W)
            for c, ids in IOU_CLASSES.items():
                s = torch.isin(samples, torch.tensor(ids))  # (B, N, H, W)
                y = torch.isin(labels[:, :1], torch.tensor(ids))  # (B, 1, H, W)
                inter[c] += float(((s & y).sum((2, 3)) * w).sum())
                union[c] += float(((s | y).sum((2, 3)) * w).sum())
    return {c: inter[c] / max(union[c], 1e-9) for c in IOU_CLASSES}


def collect(run_dir: Path) -> Dict[str, Any]:
    """Headline figures of one run plus the dataset-specific ones."""
    cfg = read_json(run_dir / "config.json")
    res = read_json(next((run_dir / "test").glob("results_*.json")))
    out = {k: res.get(k) for k in HEADLINE if k != "wall_s"}
    wall = run_dir / "wall_s.txt"
    out["wall_s"] = float(wall.read_text()) if wall.is_file() else None
    out["epochs"] = cfg["epochs"]
    cal = read_json(run_dir / "test" / "mode_calibration.json")
    out["mode_tv"] = cal["tv"]["mean"]
    if cfg["dataset"] == "lidc":
        out["mode_types"] = lidc_type_masses(run_dir, ROOT / cfg["data_folder"])
    else:
        out["flips"] = {k: {"true": v["true"], "predicted": v["predicted"]}
                        for k, v in cal["flips"].items()}
        out["class_iou"] = cityscapes_class_iou(run_dir)
    return out


def flatten(run: Dict[str, Any]) -> Dict[str, float]:
    """Every numeric figure of a run under one flat name (for mean and range over seeds)."""
    flat = {k: v for k, v in run.items()
            if isinstance(v, (int, float)) and v is not None and k != "seed"}
    for t, m in run.get("mode_types", {}).items():
        flat[f"{t} true"], flat[f"{t} predicted"] = m["true"], m["predicted"]
    for c, m in run.get("flips", {}).items():
        flat[f"flip {c} true"], flat[f"flip {c} predicted"] = m["true"], m["predicted"]
    for c, v in run.get("class_iou", {}).items():
        flat[f"IoU {c}"] = v
    return {k: float(v) for k, v in flat.items() if v is not None}


def summarise(runs: List[Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    """name -> mean, min, max over the seeds' runs."""
    flats = [flatten(r) for r in runs]
    names = [k for k in flats[0] if all(k in f for f in flats)]
    return {k: dict(mean=float(np.mean([f[k] for f in flats])),
                    min=float(min(f[k] for f in flats)), max=float(max(f[k] for f in flats)))
            for k in names}


def markdown(results: Dict[str, Any]) -> str:
    """One table per config: figure, mean, min–max over seeds, and the per-seed values."""
    lines = []
    for config, entry in results["configs"].items():
        seeds = ", ".join(str(s) for s in entry["seeds"])
        lines += [f"### {config} (seeds {seeds})", "",
                  "| Figure | Mean | Min – max | Per seed |", "|---|---|---|---|"]
        for name, s in entry["summary"].items():
            per_seed = " / ".join(f"{flatten(r)[name]:.4g}" for r in entry["runs"])
            lines.append(f"| {name} | {s['mean']:.4g} | {s['min']:.4g} – {s['max']:.4g} "
                         f"| {per_seed} |")
        lines.append("")
    return "\n".join(lines)


def ablation_table(results: Dict[str, Any]) -> str:
    """One row per ablation row: the headline figures as mean (min–max) over the seeds.

    The GED column is the ratio to the true distribution's GED where the data has one (the
    synthetic LIDC set) and the GED itself otherwise (synthetic Cityscapes: no ratio is stored).
    """
    first = next(iter(results["configs"].values()))["summary"]
    ged = ("GED ratio", "ged_ratio", 1) if "ged_ratio" in first else ("GED", "ged", 1)
    figures = [ged, ("mode-mass error", "mode_mass_error", 1), ("M-IoU", "miou", 1),
               ("ECE %", "ece", 100)]
    figures += [(f"{t} mass", f"{t} predicted", 1) for t in MODE_TYPES
                if f"{t} predicted" in first]
    figures += [(f"{c} flip", f"flip {c} predicted", 1) for c in FLIP_NAMES
                if f"flip {c} predicted" in first]
    if "mode_tv" in first:
        figures.append(("mode TV", "mode_tv", 1))
    lines = ["| Row | " + " | ".join(f for f, _, _ in figures) + " |",
             "|---" * (len(figures) + 1) + "|"]
    truth = [f"{first[k.replace('predicted', 'true')]['mean']:.3f}" if "predicted" in k else ""
             for _, k, _ in figures]
    if any(truth):
        lines.append("| true distribution | " + " | ".join(truth) + " |")
    for row, entry in results["configs"].items():
        cells = [f"{s['mean'] * x:.3f} ({s['min'] * x:.3f}–{s['max'] * x:.3f})"
                 for s, x in ((entry["summary"][k], x) for _, k, x in figures)]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_ablation(name: str, args: argparse.Namespace) -> Dict[str, Path]:
    """Train every training row of an ablation over the seeds, then evaluate the other rows.

    Returns:
        (row, seed) -> run folder.
    """
    rows = ABLATIONS[name]
    chosen = args.rows or list(rows)
    unknown = [r for r in chosen if r not in rows]
    if unknown:
        raise SystemExit(f"--rows: unknown rows {unknown}; the rows of {name}: {list(rows)}")
    needed = chosen + [rows[r]["from_row"] for r in chosen if "from_row" in rows[r]]
    order = list(dict.fromkeys(needed))  # the given order first: it is the training order
    jobs = [(row, seed) for row in order if row in training_rows(rows) for seed in args.seeds]

    def train(job: tuple) -> Path:
        row, seed = job
        spec = rows[row]
        return train_and_test(spec["config"], seed, args, run_name(row), spec.get("settings", []))

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        run_dirs = dict(zip(jobs, pool.map(train, jobs)))
    for row in chosen:
        if "from_row" in rows[row]:
            for seed in args.seeds:
                run_dirs[row, seed] = evaluate_variant(row, seed, args, rows)
    return run_dirs


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["synthetic_lidc", "synthetic_cityscapes"])
    parser.add_argument("--ablation", choices=sorted(ABLATIONS),
                        help="run an ablation's rows (benchmarks/ablations.py) instead of configs")
    parser.add_argument("--rows", nargs="+", metavar="ROW",
                        help="with --ablation: these rows only, trained in this order")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the configs' epochs")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--log-root", default="log/bench_learning")
    parser.add_argument("--out", default="benchmarks/results/learning")
    parser.add_argument("--reuse", action="store_true", help="skip runs that have test results")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting passed to every run (repeatable)")
    parser.add_argument("--tag", default="", help="appended to the config name in run names")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    command = command_line()
    if args.ablation:
        run_dirs = run_ablation(args.ablation, args)
        names = [r for r in ABLATIONS[args.ablation] if not args.rows or r in args.rows]
    else:
        jobs = [(config, seed) for config in args.configs for seed in args.seeds]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            run_dirs = dict(zip(jobs, pool.map(lambda job: train_and_test(*job, args), jobs)))
        names = args.configs
    results = {"provenance": provenance(command), "command": command, "configs": {}}
    results["provenance"]["threads"] = args.threads
    for config in names:
        runs = []
        for seed in args.seeds:
            run = collect(run_dirs[config, seed])
            runs.append(dict(seed=seed, **run))
            print(json.dumps({"config": config, "seed": seed, "ged_ratio": run["ged_ratio"],
                              "mode_mass_error": run["mode_mass_error"]}), flush=True)
        key = config if args.ablation else config + args.tag
        results["configs"][key] = dict(seeds=args.seeds, runs=runs, summary=summarise(runs))
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    if args.ablation:
        text = f"`{command}`\n\n{ablation_table(results)}\n\n{text}"
    out.with_suffix(".md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
