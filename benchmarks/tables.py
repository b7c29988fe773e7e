"""The documentation's result tables, each written from its result files (`make_tables.py` puts
them on their pages). Every function returns markdown: the table, then a line naming its
source files, seeds and machine."""

import json
import statistics
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from benchmarks import bench_comparison, bench_learning

RESULTS = Path(__file__).resolve().parent / "results"
LINK = "../benchmarks/results/{}"  # from a page in docs/
# The paper's method and the extended recipe at the demo's 16 epochs, one file per machine:
# (file, key of the paper's method, key of the extended recipe).
MACHINE_RUNS = [("ablation_lidc.json", "paper", "full"),
                ("learning_lidc_second_machine.json", "synthetic_lidc_paper", "synthetic_lidc"),
                ("ablation_lidc_xeon.json", "paper", "full")]
HEADLINE = [("GED ratio ↓", "ged_ratio", 3, 1), ("Mode-mass error ↓", "mode_mass_error", 3, 1),
            ("M-IoU ↑", "miou", 3, 1), ("ECE % ↓", "ece", 2, 100)]


def load(name: str) -> Dict[str, Any]:
    """A JSON result file of benchmarks/results/."""
    path = RESULTS / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run the command its table names")
    return json.loads(path.read_text())


def rng(s: Dict[str, float], digits: int = 3, scale: float = 1) -> str:
    """'mean (min–max)' of a summary entry."""
    m, lo, hi = (scale * s[k] for k in ("mean", "min", "max"))
    return f"{m:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"


def spread(values: Sequence[float], digits: int = 3, sign: bool = False) -> str:
    """'mean (min–max)' of values; signed values as 'mean (min to max)'."""
    f = f"{{:+.{digits}f}}" if sign else f"{{:.{digits}f}}"
    sep = " to " if sign else "–"
    mean, lo, hi = (f.format(v) for v in (statistics.fmean(values), min(values), max(values)))
    return f"{mean} ({lo}{sep}{hi})"


def source(name: str, data: Dict[str, Any], link: str = LINK) -> str:
    """'[file](link) (`command`; CPU, commit)'."""
    p = data["provenance"]
    threads = "one thread" if p.get("threads") == 1 else f"{p.get('threads')} threads"
    return (f"[{name}]({link.format(name)}) (`{p['command']}`; {p['cpu']}, {threads} per run, "
            f"commit {p['commit'][:7]})")


def seeds_of(entry: Dict[str, Any]) -> str:
    return ", ".join(str(s) for s in entry["seeds"])


def row(label: str, summary: Dict[str, Any], cols=HEADLINE) -> List[str]:
    return [label] + [rng(summary[k], d, x) if k in summary else "—" for _, k, d, x in cols]


def md(header: Sequence[str], rows: List[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


# --- results.md ---------------------------------------------------------------------------

def authors_lidc() -> str:
    """The authors' code and our three rows on the synthetic LIDC demo's data, same seeds; for
    each of our rows, in how many (our run, their run) pairs ours is lower."""
    name = "authors_code_synthetic_lidc.json"
    d = load(name)
    entries = list(d["configs"].items())
    theirs = entries[0][1]["runs"]
    rows = []
    for label, entry in entries:
        per_seed = " / ".join(f"{r['ged_ratio']:.3f}" for r in entry["runs"])
        pairs = "—" if entry["runs"] is theirs else " / ".join(
            _lower_pairs(entry["runs"], theirs, k) for k in ("ged_ratio", "mode_mass_error"))
        rows.append(row(label, entry["summary"])
                    + [rng(entry["summary"]["mode_tv"]), per_seed, pairs])
    header = ["Row"] + [h for h, *_ in HEADLINE] + [
        "Mode TV ↓", "GED ratio per seed", "Run pairs where ours is lower: GED ratio / mode-mass "
        "error"]
    code = d["provenance"]["authors_code"]
    return (md(header, rows) + f"\n\nSeeds {seeds_of(entries[0][1])}, test split; the authors' "
            f"code at commit {code['commit']}. Source: {source(name, d)}.")


def _lower_pairs(ours: List[Dict[str, Any]], theirs: List[Dict[str, Any]], key: str) -> str:
    """'k of n': in how many (our run, their run) pairs our figure is the lower one."""
    lower = sum(a[key] < b[key] for a in ours for b in theirs)
    return f"{lower} of {len(ours) * len(theirs)}"


def cityscapes() -> str:
    """The 10-epoch synthetic Cityscapes config (the 60-epoch one is the Cityscapes ablation's
    `exact coupling` row)."""
    name = "learning_cityscapes.json"
    d = load(name)
    entry = d["configs"]["synthetic_cityscapes"]
    s = entry["summary"]
    flips = [f"{s[f'flip {c} predicted']['mean']:.2f} ({s[f'flip {c} true']['mean']:.2f})"
             for c in bench_learning.FLIP_NAMES]
    rows = [["`synthetic_cityscapes.py`", str(entry["runs"][0]["epochs"]), rng(s["ged"]),
             rng(s["miou"]), rng(s["ece"], 2, 100), rng(s["mode_tv"]), *flips]]
    header = ["Config", "Epochs", "GED", "M-IoU", "ECE %", "Mode total variation",
              *[f"{c} flip, predicted (true)" for c in bench_learning.FLIP_NAMES]]
    return md(header, rows) + f"\n\nSeeds {seeds_of(entry)}. Source: {source(name, d)}."


# --- extensions.md ------------------------------------------------------------------------

def ablation_lidc() -> str:
    name = "ablation_lidc.json"
    d = load(name)
    return (bench_learning.ablation_table(d) + f"\n\nSeeds {seeds_of(d['configs']['full'])}. "
            f"Source: {source(name, d)}.")


def ablation_cityscapes() -> str:
    name = "ablation_cityscapes.json"
    d = load(name)
    return (bench_learning.ablation_table(d) + f"\n\nSeeds "
            f"{seeds_of(d['configs']['exact coupling'])}. Source: {source(name, d)}.")


def machine_runs() -> List[Tuple[str, str, Dict[str, Any], Dict[str, Any]]]:
    """(file, CPU, paper entry, extended entry) of every machine's file that exists."""
    found = []
    for name, paper, full in MACHINE_RUNS:
        if (RESULTS / name).is_file():
            d = load(name)
            found.append((name, d["provenance"]["cpu"], d["configs"][paper], d["configs"][full]))
    return found


def paired(paper: Dict[str, Any], full: Dict[str, Any], key: str) -> List[float]:
    """Per seed: the extended recipe's figure minus the paper method's."""
    by_seed = {r["seed"]: r[key] for r in paper["runs"]}
    return [r[key] - by_seed[r["seed"]] for r in full["runs"] if r["seed"] in by_seed]


def extensions_by_machine() -> str:
    """Per machine, the extended recipe minus the paper's method on the same seed; then both
    over every run of every machine."""
    rows, pooled = [], {"paper": [], "full": [], "diff": {k: [] for _, k, _, _ in HEADLINE}}
    for name, cpu, paper, full in machine_runs():
        seeds = ", ".join(str(r["seed"]) for r in full["runs"])
        diffs = [[scale * v for v in paired(paper, full, k)] for _, k, _, scale in HEADLINE]
        for (_, k, _, _), values in zip(HEADLINE, diffs):
            pooled["diff"][k] += values
        rows.append([f"{cpu} ([file]({LINK.format(name)}))", seeds]
                    + [_diff(v, d, up=k == "miou") for v, (_, k, d, _) in zip(diffs, HEADLINE)])
        pooled["paper"] += paper["runs"]
        pooled["full"] += full["runs"]
    rows.append(["all machines", f"{len(pooled['full'])} pairs"]
                + [_diff(pooled["diff"][k], d, up=k == "miou") for _, k, d, _ in HEADLINE])
    header = ["Machine", "Seeds"] + [h.rstrip(" ↓↑") for h, *_ in HEADLINE]
    means = [[label, str(len(pooled[key]))]
             + [spread([scale * r[k] for r in pooled[key]], d) for _, k, d, scale in HEADLINE]
             for label, key in (("the paper's method", "paper"), ("with the extensions", "full"))]
    return (md(header, rows) + "\n\nEvery run of every machine together, mean (min–max):\n\n"
            + md(["Method", "Runs"] + [h for h, *_ in HEADLINE], means) + "\n\n"
            + holds(pooled["diff"], len(rows) - 1))


def holds(diff: Dict[str, List[float]], machines: int) -> str:
    """The sentence of what holds over every same-seed pair of every machine."""
    n = len(diff["ged_ratio"])
    better = {k: sum(v > 0 if k == "miou" else v < 0 for v in values)
              for k, values in diff.items()}
    names = {"ged_ratio": "GED ratio", "mode_mass_error": "mode-mass error", "miou": "M-IoU",
             "ece": "ECE"}
    always = [names[k] for k in names if better[k] == n]
    sometimes = [f"the {names[k]} on {better[k]}" for k in names if better[k] < n]
    text = f"Over the {n} same-seed pairs of the {machines} machines, the extensions do better "
    text += f"on every pair in {' and '.join(always) or 'no figure'}"
    return text + (f"; {', '.join(sometimes)} of the {n}." if sometimes else ".")


def _diff(values: List[float], digits: int = 3, up: bool = False) -> str:
    """Mean (min to max) of same-seed differences and on how many the extensions are better
    (lower, or higher for a figure where higher is better)."""
    better = sum(v > 0 if up else v < 0 for v in values)
    return f"{spread(values, digits, sign=True)}; better on {better} of {len(values)}"


# --- comparison.md ------------------------------------------------------------------------

def _comparison() -> Tuple[Dict[str, Any], str]:
    name = "comparison_synthetic_lidc.json"
    return load(name), name


def comparison_long() -> str:
    d, name = _comparison()
    long_ = str(d["protocol"]["long"])
    return (bench_comparison.table(d["budgets"][long_]["summary"], d["chosen"], d["parameters"])
            + f"\n\nSeeds {', '.join(map(str, d['protocol']['seeds']))}. Source: "
            f"{source(name, d)}.")


def comparison_short() -> str:
    """The short budget: the baselines' runs (MoSE's are the ablation's, on its own page)."""
    d, name = _comparison()
    summary = d["budgets"][str(d["protocol"]["short"])]["summary"]
    text = bench_comparison.table(summary, d["chosen"], d["parameters"])
    return text + f"\n\nSource: {source(name, d)}."


def comparison_tuning() -> str:
    d, _ = _comparison()
    return bench_comparison.grid_table(d["tuning"])


def convergence() -> str:
    name = "comparison_synthetic_lidc_convergence.json"
    d = load(name)
    long_ = d["convergence"][max(d["convergence"], key=int)]
    rows = [[bench_comparison.NAMES[m], str(c["flat_from"]), f"{100 * c['late_gain']:.1f} %"]
            for m, c in long_.items()]
    epochs = max(d["convergence"], key=int)
    return (md(["Method", f"Flat from epoch (of {epochs})", "Late gain"], rows)
            + f"\n\nSource: {source(name, d)}.")


# --- performance.md -----------------------------------------------------------------------

def speed_authors() -> str:
    """Our two paths over the authors' code, per paper config."""
    name = "authors_code_speed.json"
    d = load(name)
    rows = []
    for config, c in d["configs"].items():
        for path in ("default", "fastest"):
            if f"{path}_train_ratio" not in c:
                continue
            share = "{} / {} ({} / {})".format(*(
                f"{100 * c[f'{p}_{k}_fraction_of_fp32_limit']:.0f} %"
                for p in (path, "authors") for k in ("train", "eval")))
            rows.append([f"`{config}.py`", "default, fp32" if path == "default" else "`--fastest`",
                         _ratio(c[f"{path}_train_ratio"]), _ratio(c[f"{path}_eval_ratio"]),
                         f"{c[f'{path}_train_img_per_s']['median']:.2f} / "
                         f"{c[f'{path}_eval_img_per_s']['median']:.2f} "
                         f"({c['authors_train_img_per_s']['median']:.2f} / "
                         f"{c['authors_eval_img_per_s']['median']:.2f})", share])
    header = ["Config", "Ours", "Train × the authors'", "Eval × the authors'",
              "Train / eval img/s (the authors' in the same run)",
              "Share of the fp32 matmul limit, train / eval (the authors')"]
    p = d["provenance"]
    fastest = next(iter(d["configs"].values())).get("fastest_choice")
    return (md(header, rows) + f"\n\nBatch {d['batch']}, {d['threads']} threads, median "
            f"(min–max) over {d['rounds']} rounds; `--fastest` chose: {fastest}. The authors' "
            f"code at commit {p['authors_code']['commit']}. Source: {source(name, d)}.")


def _ratio(s: Dict[str, float]) -> str:
    return f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})"


def speed_reference() -> str:
    """The default path over the in-repository reference formulation, every stored run."""
    rows = []
    files = [(path, json.loads(path.read_text())) for path in RESULTS.glob("compare_*.json")]
    files.sort(key=lambda f: (f[1]["provenance"]["cpu"], f[1].get("compile_head", False),
                              f[1].get("amp", False)))
    for path, d in files:
        label = ("bf16 autocast" if d.get("amp") else "fp32") + \
            ", `compile_head`" * d.get("compile_head", False)
        lo, hi = d["train_ratio_range"]
        elo, ehi = d["eval_ratio_range"]
        rows.append([d["provenance"]["cpu"], label, f"{d['train_ratio']:.2f}× ({lo:.2f}–{hi:.2f})",
                     f"{d['eval_ratio']:.2f}× ({elo:.2f}–{ehi:.2f})",
                     f"{100 * d['default_train_fraction_of_limit']:.0f} % / "
                     f"{100 * d['default_eval_fraction_of_limit']:.0f} % "
                     f"({100 * d['reference_train_fraction_of_limit']:.0f} % / "
                     f"{100 * d['reference_eval_fraction_of_limit']:.0f} %)",
                     f"[{path.name}]({LINK.format(path.name)})"])
    header = ["CPU", "Path", "Train ratio", "Eval ratio",
              "Share of the fp32 matmul limit, train / eval (reference)", "File"]
    return md(header, rows) + ("\n\n`lidc_proposed.py` at batch 4, 2 threads, median (min–max) "
                               "over 3 rounds; each file records its command and commit.")


# --- README.md ----------------------------------------------------------------------------

def summary() -> str:
    """One row per headline, each linking to the table it comes from (links from the README)."""
    rows = [_summary_authors(), _summary_machines(), _summary_comparison(),
            _summary_cityscapes(), _summary_speed()]
    return md(["What", "Result", "Evidence", "Table"], rows)


def _pair(summary: Dict[str, Any]) -> str:
    return (f"GED ratio {rng(summary['ged_ratio'])}, mode-mass error "
            f"{rng(summary['mode_mass_error'])}")


def _summary_authors() -> List[str]:
    d = load("authors_code_synthetic_lidc.json")
    (_, theirs), (_, ours) = list(d["configs"].items())[:2]
    return ["Synthetic LIDC, the paper's method and recipe, 16 epochs",
            f"the authors' code: {_pair(theirs['summary'])}; ours: {_pair(ours['summary'])}",
            f"seeds {seeds_of(theirs)}, {d['provenance']['cpu']}",
            "[results](docs/results.md#the-authors-code-beside-ours)"]


def _summary_machines() -> List[str]:
    machines = machine_runs()
    runs = {"paper": [r for m in machines for r in m[2]["runs"]],
            "full": [r for m in machines for r in m[3]["runs"]]}
    cells = [f"{label}: GED ratio {spread([r['ged_ratio'] for r in runs[k]])}, mode-mass error "
             f"{spread([r['mode_mass_error'] for r in runs[k]])}"
             for label, k in (("the paper's method", "paper"), ("with the extensions", "full"))]
    return ["Synthetic LIDC, the demo's schedule, 16 epochs", "; ".join(cells),
            f"{len(runs['full'])} runs each, same seeds, {len(machines)} CPUs",
            "[extensions](docs/extensions.md#on-several-machines)"]


def _summary_comparison() -> List[str]:
    d, _ = _comparison()
    s = d["budgets"][str(d["protocol"]["long"])]["summary"]
    cells = [f"{bench_comparison.NAMES[m]}: {s[m]['ged_ratio']['mean']:.3f}" for m in s]
    return [f"Synthetic LIDC, {d['protocol']['long']} epochs, every method tuned on validation",
            "mean GED ratio; " + "; ".join(cells),
            f"seeds {', '.join(map(str, d['protocol']['seeds']))}, {d['provenance']['cpu']}",
            "[comparison](docs/comparison.md#results)"]


def _summary_cityscapes() -> List[str]:
    d = load("ablation_cityscapes.json")
    s = d["configs"]["exact coupling"]["summary"]
    return ["Synthetic Cityscapes, 60 epochs (32 modes)",
            f"mode total variation {rng(s['mode_tv'])}, GED {rng(s['ged'])}",
            f"seeds {seeds_of(d['configs']['exact coupling'])}, {d['provenance']['cpu']}",
            "[extensions](docs/extensions.md#cityscapes-the-exact-coupling)"]


def _summary_speed() -> List[str]:
    d = load("authors_code_speed.json")
    cells = [f"`{c}.py`: training {v['default_train_ratio']['median']:.2f}×, evaluation "
             f"{v['default_eval_ratio']['median']:.2f}× (`--fastest`: "
             f"{v['fastest_train_ratio']['median']:.2f}×, {v['fastest_eval_ratio']['median']:.2f}×)"
             for c, v in d["configs"].items()]
    lidc = d["configs"].get("lidc_proposed", {})
    if "default_train_fraction_of_fp32_limit" in lidc:
        share = {p: " / ".join(f"{100 * lidc[f'{p}_{k}_fraction_of_fp32_limit']:.0f} %"
                               for k in ("train", "eval")) for p in ("default", "authors")}
        cells.append(f"share of the CPU's fp32 matmul limit, LIDC, train / eval: ours "
                     f"{share['default']}, the authors' {share['authors']}")
    return ["Speed on a CPU: ours over the authors' code", "; ".join(cells),
            f"median of {d['rounds']} rounds, {d['provenance']['cpu']}, {d['threads']} threads",
            "[speed](docs/performance.md#against-the-authors-code)"]
