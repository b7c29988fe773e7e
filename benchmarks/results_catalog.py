"""What each result file in `benchmarks/results/` measures, and how its headline figure and
its command are read from it: the table `benchmarks/make_index.py` builds the index from.

`CATALOG` rows: (file name pattern, what the file measures, the command where the file records
none — the script, or a function rebuilding the command from the options the file records —,
a function giving the headline figure from the file's content: parsed JSON, a list of JSON
lines, or text).
"""

from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple, Union

# --- headline figures -----------------------------------------------------------------------

def _range(s: Dict[str, float], digits: int = 3) -> str:
    """A summary {mean, min, max} as 'mean (min–max)'."""
    return f"{s['mean']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def _learning(d: Dict[str, Any]) -> str:
    keys = ("ged_ratio", "mode_mass_error", "mode_tv", "ged")
    parts = []
    for name, entry in d["configs"].items():
        figures = [f"{k} {_range(entry['summary'][k])}" for k in keys if k in entry["summary"]]
        parts.append(f"{name}: " + ", ".join(figures[:2]))
    return "; ".join(parts) + f" over seeds {', '.join(map(str, entry['seeds']))}"


def _ablation(d: Dict[str, Any]) -> str:
    """LIDC: the `paper` and `full` rows' GED ratio; elsewhere (no true GED), every row's GED."""
    rows = d["configs"]
    ratio = any("ged_ratio" in e["summary"] for e in rows.values())
    key, label = ("ged_ratio", "ratio") if ratio else ("ged", "GED")
    parts = [f"{row}: {label} {_range(e['summary'][key])}, mode-mass error "
             f"{_range(e['summary']['mode_mass_error'])}" for row, e in rows.items()
             if not ratio or row in ("paper", "full")]
    return "; ".join(parts) + f" ({len(rows)} rows)"


def _quickstart(d: Dict[str, Any]) -> str:
    return "; ".join(f"{r['config']}: {r['wall_s'] / 60:.1f} min wall, {r['cpu_s'] / 60:.1f} "
                     f"CPU-min" for r in d["runs"])


def _test_line(text: str) -> str:
    lines = [line.split(" INFO ", 1)[-1] for line in text.splitlines()
             if " INFO test: GED " in line]
    return lines[-1] if lines else "no test line"


def _comparison(d: Dict[str, Any]) -> str:
    parts = []
    for epochs, budget in d["budgets"].items():
        parts.append(f"{epochs} epochs, GED ratio " + ", ".join(
            f"{m} {_range(s['ged_ratio'])}" for m, s in budget["summary"].items()))
    return "; ".join(parts)


def _convergence(d: Dict[str, Any]) -> str:
    return "; ".join(f"{epochs} epochs, late gain " + ", ".join(
        f"{m} {c['late_gain']:.3f}" for m, c in per.items())
        for epochs, per in d["convergence"].items())


def _step_time(d: Dict[str, Any]) -> str:
    return "s per step: " + ", ".join(f"{m} {s['median']:.3f}"
                                      for m, s in d["seconds_per_step"].items())


def _num(x: float) -> str:
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def _train(d: Dict[str, Any]) -> str:
    name = Path(d["config"]).stem
    return (f"{name}, batch {d['batch']}, {d['head']}{', bf16' * d['amp']}: train "
            f"{_num(d['train_img_per_s'])}, eval {_num(d['eval_img_per_s'])} img/s")


def _train_memory(d: Dict[str, Any]) -> str:
    return f"{_train(d)}, peak {d['peak_mem_kind']} {d['peak_mem_mb']:.0f} MB"


def _compare(d: Dict[str, Any]) -> str:
    lo, hi = d["train_ratio_range"]
    elo, ehi = d["eval_ratio_range"]
    return (f"train ×{d['train_ratio']:.2f} ({lo:.2f}–{hi:.2f}), "
            f"eval ×{d['eval_ratio']:.2f} ({elo:.2f}–{ehi:.2f})")


def _metrics(d: Dict[str, Any]) -> str:
    return ", ".join(f"{k.removesuffix('_s')} {v:.2g} s" for k, v in d.items()
                     if k.endswith("_s") and isinstance(v, float))


def _line(d: Dict[str, Any]) -> str:
    """One line of a JSON-lines file of bench_train / bench_metrics / bench_amp outputs."""
    if "train_img_per_s" in d:
        return _train(d)
    if "amp_bf16" in d:
        return (f"bf16 vs fp32 after {d['train_steps']} steps: GED {d['amp_bf16']['ged']:.4f} "
                f"vs {d['fp32']['ged']:.4f}")
    return _metrics(d)


def _lines(rows: List[Dict[str, Any]]) -> str:
    return "; ".join(_line(d) for d in rows if "provenance" not in d or len(d) > 1)


def _mode_costs(rows: List[Dict[str, Any]]) -> str:
    solutions = ("true_modes", "core_two_sizes", "extended_two_sizes")
    parts = []
    for d in rows:
        if "jitter" not in d:
            continue
        label = f"jitter {d['jitter']}" + (f", wobble {d['wobble']}" if "wobble" in d else "")
        label += ", exclusive" * bool(d.get("exclusive"))
        parts.append(f"{label}: {min(solutions, key=d.__getitem__)}")
    return "lowest cost: " + "; ".join(parts)


def _gate_limit(rows: List[Dict[str, Any]]) -> str:
    model = [d["mode_mass_error"] for d in rows]
    best = [d["optimal_gate"] for d in rows]
    return (f"mode-mass error {min(model):.3f}–{max(model):.3f}, with the best gate "
            f"{min(best):.4f}–{max(best):.4f} ({len(rows)} runs)")


def _head_layout(d: Dict[str, Any]) -> str:
    return ", ".join(f"{Path(k).stem} ×{v['speedup']}" for k, v in d.items()
                     if isinstance(v, dict) and "speedup" in v) + " (maps over rows)"


def _demo_phases(d: Dict[str, Any]) -> str:
    return (f"train epoch {d['train_epoch_s']:.1f} s, validation {d['validation_s']:.2f} s, "
            f"estimate {d['demo_estimate_s']:.0f} s for {d['epochs']} epochs")


def _profile(text: str) -> str:
    header = next(line for line in text.splitlines() if line.startswith("# ")
                  and "provenance:" not in line)
    top = next(line for line in text.splitlines() if line.strip().startswith("aten::"))
    return f"{header[2:].split('; ')[-1]}; top op {top.split()[0]} {top.split()[1]}"


def _gpu_log(text: str) -> str:
    lines = [line for line in text.splitlines() if " test: GED" in line or "training done" in line]
    return "; ".join(line.split(" INFO ", 1)[-1].split("  (")[0] for line in lines)


def _authors_speed(d: Dict[str, Any]) -> str:
    """Per config: our two paths over the authors' code, training and evaluation."""
    return "; ".join(
        f"{c}: " + ", ".join(f"{p} train ×{v[f'{p}_train_ratio']['median']:.2f} eval "
                             f"×{v[f'{p}_eval_ratio']['median']:.2f}"
                             for p in ("default", "fastest") if f"{p}_train_ratio" in v)
        for c, v in d["configs"].items())


def _extensions(d: Dict[str, Any]) -> str:
    schedule, refit = d["demo_schedule_ratio"], d["gate_refit"]
    steps = ", ".join(f"{n} ×{schedule[n]['median']:.2f}"
                      for n in ("exact", "expert", "image_gate", "full"))
    return (f"training step (CPU) over the paper's on the demo's γ schedule: {steps}; eval batch "
            f"with gate_tta ×{d['eval_tta_ratio']['batch']['median']:.2f}; gate refit of "
            f"{refit['image']['target_steps']} steps (CPU): image "
            f"{refit['image']['cpu']['seconds_at_target']:.0f} s, bottleneck "
            f"{refit['bottleneck']['cpu']['seconds_at_target']:.0f} s")


def _review_page(d: Dict[str, Any]) -> str:
    return "; ".join(f"{n} images: first paint {p['first_paint_ms']:.0f} ms, cards "
                     f"{p['cards_rendered_ms']:.0f} ms, re-sort {p['resort_by_ged_ms']:.0f} ms, "
                     f"{p['html_bytes'] / 1e6:.2f} MB" for n, p in d["synthetic"].items())


def _table(_: Any) -> str:
    return "the table of the JSON beside it"


# --- commands rebuilt from the options a result file records --------------------------------

def _flags(d: Dict[str, Any], options: Tuple[str, ...], switches: Tuple[str, ...]) -> str:
    """`--name value` for each option the file records, `--name` for each true switch."""
    words = [f"--{o.replace('_', '-')} {d[o]}" for o in options if d.get(o) is not None]
    words += [f"--{o.replace('_', '-')}" for o in switches if d.get(o)]
    return " ".join(words)


def _train_command(d: Dict[str, Any]) -> str:
    extra = {"plain": d.get("head") == "plain", "no_malloc_reuse": not d.get("malloc_reuse", 1)}
    flags = _flags({**d, **extra}, ("config", "batch", "steps", "device", "threads"),
                   ("amp", "compile", "compile_head", "plain", "no_malloc_reuse"))
    return f"python -m benchmarks.bench_train {flags}"


def _compare_command(d: Dict[str, Any]) -> str:
    flags = _flags(d, ("config", "batch", "steps", "rounds", "threads"), ("compile_head", "amp"))
    return f"python -m benchmarks.bench_compare {flags}"


def _lines_command(rows: List[Dict[str, Any]]) -> str:
    """The bench_train / bench_metrics command of every line that records its options."""
    return "; ".join(_train_command(d) if "train_img_per_s" in d
                     else f"python -m benchmarks.bench_metrics {_flags(d, ('threads',), ())}"
                     for d in rows if "train_img_per_s" in d or "threads" in d)


def _demo_phases_command(d: Dict[str, Any]) -> str:
    return f"python -m benchmarks.bench_demo_phases {_flags(d, ('config', 'threads'), ())}"


def _profile_command(text: str) -> str:
    """From the table's header: `# <path> path, <config>, batch B, <dtype>, T threads, ...`."""
    header = next(line for line in text.splitlines() if line.startswith("# ")
                  and "provenance:" not in line)
    parts = header[2:].split("; ")[0].split(", ")
    path, config, batch, dtype = ", ".join(parts[:-5]), parts[-5], parts[-4], parts[-3]
    flags = (f"--config {config} --batch {batch.split()[-1]} --threads {parts[-2].split()[0]}"
             + " --plain" * path.startswith("reference")
             + " --compile-head" * ("compiled head" in path) + " --amp" * ("bf16" in dtype))
    return f"python -m benchmarks.profile_train {flags}"


def _head_layout_command(d: Dict[str, Any]) -> str:
    return f"python -m research.head_layout {_flags(d, ('threads',), ())}"


# --- what each file measures ----------------------------------------------------------------

# (file name pattern, what it measures, the command where the file records none (the script,
# or a function rebuilding it from the options the file records), headline)
Summary = Callable[[Any], str]
CATALOG: List[Tuple[str, str, Union[str, Summary, None], Summary]] = [
    ("comparison_*_convergence.json", "from the comparison's validation curves (mean over "
     "seeds): the epoch each method's curve flattens and its late gain; drawn in the figure it "
     "names", None, _convergence),
    ("comparison_*_step_time.json", "seconds per training step of each method's config, the "
     "methods interleaved in one process", None, _step_time),
    ("comparison_*.json", "the comparison protocol (bench_comparison.py): the tuning runs, the "
     "choices, every final run with its validation curve at both budgets, mean / min / max",
     None, _comparison),
    ("comparison_*.md", "the tables of the JSON beside it", None, _table),
    ("learning_*.json", "synthetic configs trained and tested over seeds: figures per seed and "
     "their summary", None, _learning),
    ("learning_*.md", "the tables of the JSON beside it", None, _table),
    ("ablation_*.json", "an ablation (benchmarks/ablations.py): every row trained or re-evaluated "
     "over seeds, figures per seed and their summary", None, _ablation),
    ("ablation_*.md", "the ablation table and the per-row tables of the JSON beside it", None,
     _table),
    ("quickstart_logs/*.log.txt", "the text log of one quick-start run of quickstart.json (its "
     "printed test line)", "python -m benchmarks.bench_quickstart", _test_line),
    ("quickstart*.json", "the README's quick start on a fresh clone: the printed test line, "
     "wall-clock and CPU seconds per config", None, _quickstart),
    ("compare_*.json", "training and evaluation speed of the default path over the reference "
     "formulation (same config, interleaved subprocesses): median ratios over rounds",
     _compare_command, _compare),
    ("cityscapes_b2_*_mem.json", "one training step of the Cityscapes paper config at batch 2 "
     "on random inputs: throughput and peak memory", _train_command, _train_memory),
    ("cpu_*.jsonl", "CPU timings, one JSON per line: metrics and OT loss (bench_metrics.py), "
     "training and evaluation throughput (bench_train.py)",
     _lines_command, _lines),
    ("gpu_*_demo_*.log", "the synthetic LIDC demo end to end on one GPU (log)",
     "bash benchmarks/gpu_demo_check.sh", _gpu_log),
    ("gpu_*.jsonl", "GPU throughput of the paper configs (fp32, bf16, plain formulation) and "
     "bf16's metrics against fp32, one JSON per line", "bash benchmarks/gpu_check.sh", _lines),
    ("metrics_*.json", "the metrics and the OT loss on fixed sizes: median seconds per call",
     "python -m benchmarks.bench_metrics", _metrics),
    ("demo_phases_*.json", "wall-clock of each phase of the synthetic LIDC demo",
     _demo_phases_command, _demo_phases),
    ("profile_train_*.txt", "per-op profile of one training step (torch.profiler)",
     _profile_command, _profile),
    ("mode_costs_*.jsonl", "MoSE's objective at γ = 1 for hand-built expert solutions on the "
     "synthetic LIDC set: which masks training prefers", "python -m research.mode_costs",
     _mode_costs),
    ("gate_limit_*.jsonl", "where a trained model's mode-mass error comes from: the model, the "
     "best possible gate, refit gates of several inputs (one line per run)",
     "python -m research.gate_limit", _gate_limit),
    ("authors_code_speed*.json", "our default and --fastest paths over the authors' published "
     "code on the paper configs: their training and evaluation steps, alternating processes "
     "(benchmarks/authors/speed.py)", None, _authors_speed),
    ("authors_code_*.json", "the authors' published code trained with the paper's recipe on the "
     "synthetic LIDC demo's data, scored by our evaluation, beside our rows on the same seeds "
     "(benchmarks/authors/learning.py)", None, _learning),
    ("authors_code_*.md", "the tables of the JSON beside it", None, _table),
    ("review_page*.json", "the evaluation review page in headless Chromium: time to first paint "
     "and to the first cards, re-sorting, page size (synthetic pages of N images)", None,
     _review_page),
    ("head_layout_*.json", "training step of the fast head's two layouts, maps and rows",
     _head_layout_command, _head_layout),
    ("extensions_cost*.json", "what each extension costs on the synthetic LIDC demo against the "
     "paper's method: training step, evaluation batch, re-seeding, gate refit, memory",
     "python -m benchmarks.bench_extensions", _extensions),
]
