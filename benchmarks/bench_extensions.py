"""What each extension of MoSE costs on the synthetic LIDC demo, against the paper's method:
training step, evaluation batch, re-seeding, gate refit and memory; prints one JSON object.

    python -m benchmarks.bench_extensions [--threads 1] [--rounds 36] [--steps 1]
        [--eval-rounds 24] [--eval-steps 1] [--refit-image-steps 200]
        [--refit-bottleneck-steps 1200] [--out benchmarks/results/extensions_cost.json]

All in this one process with a fixed number of torch threads (default 1: on a shared, loaded
machine one thread gives the steadiest timings). Times are taken on two clocks: the process's
CPU time (the figures and ratios: with one thread, the wall time of an idle machine, which other
processes on a loaded one barely change) and the wall clock (`*wall*`: what a user waits here;
the load is in the provenance). Models: experiments/synthetic_lidc_paper.py with one setting
changed, and synthetic_lidc.py (every extension) for `full`; inputs: the first batches of the
demo's data (synthetic_data/lidc_wobble) if it exists, else random tensors of its shapes.

- `train_step_ms`: forward + OT loss + backward + Adam step on a batch of 32 images of `paper`
  (greedy coupling, bottleneck gate), `exact`, `expert`, `image_gate` and `full` (expert
  coupling, image gate, re-seeding's per-step usage sum), each at γ = 1/8 (the demo's γ < 1
  phases; 'expert' is then the exact transport of 'exact') and at γ = 1. After a warm-up step
  each, every round runs `--steps` steps of every variant (the order turned by one each round):
  the median of a variant's ms per step over the rounds and their range; the median and range
  of its ratio to `paper` at the same γ in the same round, and the ratio of the fastest rounds;
  `demo_schedule_ratio` weights γ < 1 and γ = 1 by the demo's epochs in each phase.
- `eval_batch_ms`: one evaluation batch of 50 images (compact forward, GED / M-IoU, ECE
  update) with the paper's gate, the image gate, and the image gate with `gate_tta` (π averaged
  over the 8 flips and quarter turns), interleaved the same way; `eval_forward_ms`: its forward.
- `revive`: re-seeding adds one sum of two (K,) tensors per step (`ExpertUsage.update`) and one
  `revive_dead_experts` call per epoch, timed here with one expert below the threshold.
- `gate_refit`: `refit_gate` on the training split for each gate at 0 steps (the collecting
  pass, the re-initialisation and the loss passes) and at n steps: s per step = (T_n − T_0) / n,
  the estimate for the demo's `gate_refit_steps` = T_0 + steps × that (T_n if n is that).
- `memory`: parameters per variant (Adam keeps two more copies) and the peak increase of the
  resident memory during one training step / evaluation batch over the state before it (glibc
  `malloc_trim`, then the peak reset through /proc/self/clear_refs; Linux only, else null).
"""

import argparse
import ctypes.util
import gc
import json
import re
import resource
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from benchmarks.provenance import command_line, provenance
from utils.build import build_loaders, build_loss, build_model
from utils.config.config import load_config
from utils.evaluation.metrics import StreamingECE, ged_miou
from utils.labels import hard_labels
from utils.loss import objective
from utils.runtime.cpu_memory import reuse_freed_memory
from utils.training.gate_refit import refit_gate
from utils.training.revive import ExpertUsage, revive_dead_experts

PAPER = "experiments/synthetic_lidc_paper.py"
DEMO = "experiments/synthetic_lidc.py"
OUT = "benchmarks/results/extensions_cost.json"
# name -> (config, --set items)
TRAIN_VARIANTS = {
    "paper": (PAPER, []),
    "exact": (PAPER, ["coupling='exact'"]),
    "expert": (PAPER, ["coupling='expert'"]),
    "image_gate": (PAPER, ["gate_input='image'"]),
    "full": (DEMO, []),
}
GAMMAS = {"gamma_1/8": 1 / 8, "gamma_1": 1.0}
EVAL_VARIANTS = {
    "paper": (PAPER, []),
    "image_gate": (DEMO, ["gate_tta=False"]),
    "image_gate_tta": (DEMO, []),
}
CPU = torch.device("cpu")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--rounds", type=int, default=36, help="training-step rounds")
    p.add_argument("--steps", type=int, default=1, help="steps per variant per round")
    p.add_argument("--eval-rounds", type=int, default=24)
    p.add_argument("--eval-steps", type=int, default=1, help="batches per variant per round")
    p.add_argument("--refit-image-steps", type=int, default=200,
                   help="refit steps timed for the image gate (extrapolated to the demo's)")
    p.add_argument("--refit-bottleneck-steps", type=int, default=1200)
    p.add_argument("--out", default=OUT, help="result file ('' writes none)")
    return p.parse_args(argv)


def demo_batches(cfg: Any) -> Dict[str, Any]:
    """One training batch (B = train_batch_size) and one evaluation batch (B = val_batch_size)
    of the demo's data if present, else random ones of its shapes; and the refit's loader."""
    if Path(cfg.data_folder, "synthetic_info.json").is_file():
        loaders = build_loaders(cfg, ("train", "val"), shard_train=False)
        return dict(train=next(iter(loaders["train"])), eval=next(iter(loaders["val"])),
                    refit_loader=loaders["train"], data=f"{cfg.data_folder} (first batches)")
    g, (H, W) = torch.Generator().manual_seed(0), (cfg.synthetic_options["size"],) * 2

    def batch(B: int) -> tuple:
        x = torch.randn(B, 1, H, W, generator=g)  # (B, 1, H, W)
        y = torch.randint(0, cfg.n_classes, (B, 4, H, W), generator=g)  # (B, M, H, W)
        return x, y, torch.full((B, 4), 0.25)  # (B, M) annotation weights v

    images = torch.utils.data.TensorDataset(*batch(cfg.synthetic_options["n_train"]))
    loader = torch.utils.data.DataLoader(images, cfg.train_batch_size, shuffle=True,
                                         drop_last=True)
    return dict(train=batch(cfg.train_batch_size), eval=batch(cfg.val_batch_size),
                refit_loader=loader, data="random tensors of the demo's shapes")


# --- the steps timed ------------------------------------------------------------------------

def train_variant(config: str, sets: List[str], gamma: float, batch: tuple) -> SimpleNamespace:
    """The training step of a config at capacity γ: forward + OT loss + backward + Adam, with
    the per-step usage sum where the config re-seeds experts (as the engine runs it).

    Returns:
        cfg, model, loss_fn, optimizer, and `step` (no arguments).
    """
    cfg = load_config(config, sets)
    model, loss_fn = build_model(cfg), build_loss(cfg)
    loss_fn.gamma = gamma
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    usage = ExpertUsage() if cfg.revive_experts else None
    compute_loss, gen = objective(loss_fn), torch.Generator().manual_seed(cfg.seed)
    x, y, v = batch  # (B, 1, H, W), (B, M, H, W), (B, M)

    def step() -> None:
        model.train()
        out = model(x, label=y, generator=gen, label_probs=v)
        loss, _, _ = compute_loss(out, y, v)
        if usage is not None:
            usage.update(loss_fn)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return SimpleNamespace(cfg=cfg, model=model, loss_fn=loss_fn, optimizer=optimizer, step=step)


def eval_variant(config: str, sets: List[str], batch: tuple) -> SimpleNamespace:
    """One evaluation batch: compact forward, GED / M-IoU and the ECE update (the evaluation
    loop's work per batch); `step` returns the CPU seconds of its forward."""
    cfg = load_config(config, sets)
    model, (x, y, v) = build_model(cfg).eval(), batch
    ece = StreamingECE(cfg.n_classes, cfg.eval_class_ids)

    @torch.no_grad()
    def step() -> float:
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        t0 = time.process_time()
        out = model(x, label=y if cfg.masked_pred else None, generator=gen)
        forward = time.process_time() - t0
        pred, w = out["pred"], out["weights"]  # (B, N, C, H, W), (B, N)
        ged_miou(hard_labels(pred), y, w, v, num_classes=cfg.n_classes,
                 eval_class_ids=cfg.eval_class_ids, empty_distance=cfg.empty_distance,
                 matching=cfg.matching)
        ece.update(pred, w, y, v)
        return forward

    return SimpleNamespace(cfg=cfg, model=model, step=step)


def interleave(steps: Dict[str, Callable], rounds: int, per_round: int) -> Dict[str, Dict]:
    """Seconds per call of every step, per round: one warm-up call each, then every round
    runs `per_round` calls of each step, the order turned by one every round.

    Returns:
        name -> {"cpu": [process CPU s per call, one per round], "wall": [wall s per call],
        "forward": [what the step returns (its forward's CPU s), or 0]}.
    """
    names = list(steps)
    for name in names:
        steps[name]()
    times = {name: dict(cpu=[], wall=[], forward=[]) for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            forward, cpu, wall = 0.0, time.process_time(), time.perf_counter()
            for _ in range(per_round):
                forward += steps[name]() or 0.0
            times[name]["cpu"].append((time.process_time() - cpu) / per_round)
            times[name]["wall"].append((time.perf_counter() - wall) / per_round)
            times[name]["forward"].append(forward / per_round)
    return times


# --- summaries ------------------------------------------------------------------------------

def spread(values: List[float], scale: float = 1.0, digits: int = 4) -> Dict[str, Any]:
    """Median, min and max of a list (each times `scale`), and the values themselves."""
    v = [x * scale for x in values]
    return dict(median=round(statistics.median(v), digits), min=round(min(v), digits),
                max=round(max(v), digits), rounds=[round(x, digits) for x in v])


def ratios(values: List[float], reference: List[float]) -> Dict[str, float]:
    """Median and range of the per-round ratios values[r] / reference[r], and the ratio of the
    fastest rounds (min / min: the two least disturbed by other work on the machine)."""
    r = [a / b for a, b in zip(values, reference)]
    return dict(median=round(statistics.median(r), 3), min=round(min(r), 3), max=round(max(r), 3),
                of_fastest=round(min(values) / min(reference), 3))


def schedule_weights(cfg: Any) -> Dict[str, float]:
    """The demo's share of epochs at γ < 1 and at γ = 1 (milestone γ schedule)."""
    options = cfg.gamma_scheduler_options
    at_one = next(m for value, m in zip(options["values"], options["milestones"]) if value >= 1)
    return {"gamma_1/8": at_one / cfg.epochs, "gamma_1": 1 - at_one / cfg.epochs}


def train_summary(times: Dict[str, Dict], weights: Dict[str, float]) -> Dict[str, Any]:
    """CPU and wall ms per step, CPU ratios to `paper` at the same γ and over the schedule."""
    step_ms, wall_ms, ratio, schedule = {}, {}, {}, {}
    rounds = range(len(times["paper@gamma_1"]["cpu"]))

    def mix(name: str) -> List[float]:  # per round: s per step averaged over the schedule
        return [sum(weights[g] * times[f"{name}@{g}"]["cpu"][r] for g in GAMMAS) for r in rounds]

    for name in TRAIN_VARIANTS:
        per_gamma = {g: times[f"{name}@{g}"] for g in GAMMAS}
        step_ms[name] = {g: spread(t["cpu"], 1e3, 1) for g, t in per_gamma.items()}
        wall_ms[name] = {g: spread(t["wall"], 1e3, 1) for g, t in per_gamma.items()}
        ratio[name] = {g: ratios(t["cpu"], times[f"paper@{g}"]["cpu"])
                       for g, t in per_gamma.items()}
        schedule[name] = ratios(mix(name), mix("paper"))
    return dict(train_step_ms=step_ms, train_ratio_to_paper=ratio,
                demo_schedule_ratio=dict(schedule, gamma_epoch_share=weights),
                train_step_wall_ms=wall_ms)


def eval_summary(times: Dict[str, Dict]) -> Dict[str, Any]:
    """CPU ms per evaluation batch and of its forward, their ratios to `paper` and of tta over
    no tta; wall ms per batch."""
    total = {n: t["cpu"] for n, t in times.items()}
    forward = {n: t["forward"] for n, t in times.items()}
    return dict(
        eval_batch_ms={n: spread(t, 1e3, 1) for n, t in total.items()},
        eval_forward_ms={n: spread(t, 1e3, 1) for n, t in forward.items()},
        eval_batch_wall_ms={n: spread(t["wall"], 1e3, 1) for n, t in times.items()},
        eval_ratio_to_paper={n: ratios(t, total["paper"]) for n, t in total.items()},
        eval_tta_ratio=dict(batch=ratios(total["image_gate_tta"], total["image_gate"]),
                            forward=ratios(forward["image_gate_tta"], forward["image_gate"])))


# --- re-seeding, gate refit, memory; main ------------------------------------------------

def time_revive(v: SimpleNamespace, steps_per_epoch: int, paper_step_s: float) -> Dict:
    """CPU time of the per-step usage sum and of the per-epoch `revive_dead_experts` (one dead
    expert) of a variant whose loss has run; their share of an epoch of the paper's steps."""
    usage, n = ExpertUsage(), 2000
    t0 = time.process_time()
    for _ in range(n):
        usage.update(v.loss_fn)
    update_s = (time.process_time() - t0) / n
    K, calls = v.model.num_expert, []
    for _ in range(20):
        usage.mass = torch.tensor([1.0] * (K - 1) + [0.001])  # (K,) the last expert dead
        usage.cost = torch.linspace(0.1, 0.2, K)  # (K,)
        t0 = time.process_time()
        lines = revive_dead_experts(v.model, v.optimizer, usage, 0.03, torch.Generator())
        calls.append(time.process_time() - t0)
    assert len(lines) == 2, lines  # the usage line and one re-seeded expert
    per_epoch = steps_per_epoch * update_s + statistics.median(calls)
    return dict(update_us_per_step=round(update_s * 1e6, 2),
                revive_call_ms_per_epoch=round(statistics.median(calls) * 1e3, 3),
                steps_per_epoch=steps_per_epoch,
                share_of_paper_epoch=float(f"{per_epoch / (steps_per_epoch * paper_step_s):.2g}"))


def time_refit(config: str, sets: List[str], loader: Any, steps: int, target: int
               ) -> Dict[str, Any]:
    """Seconds (CPU and wall) of `refit_gate` at 0 and at `steps` steps, and at `target`."""
    seconds, images = dict(cpu=[], wall=[]), 0
    for n in (0, steps):
        cfg = load_config(config, sets)
        model, loss_fn = build_model(cfg), build_loss(cfg)
        cpu, wall = time.process_time(), time.perf_counter()
        images = refit_gate(model, loader, loss_fn, CPU, n, cfg.seed)["images"]
        seconds["cpu"].append(time.process_time() - cpu)
        seconds["wall"].append(time.perf_counter() - wall)
    measured = steps == target
    result = dict(images=images, steps_timed=steps, target_steps=target,
                  target_method="measured" if measured else
                  f"T_0 + {target} x (T_{steps} - T_0) / {steps} (linear in steps)")
    for clock, (t_0, t_n) in seconds.items():
        per_step = (t_n - t_0) / steps
        result[clock] = dict(seconds_at_0_steps=round(t_0, 2), seconds_at_steps_timed=round(t_n, 2),
                             seconds_per_step=round(per_step, 5), seconds_at_target=round(
                                 t_n if measured else t_0 + target * per_step, 1))
    return result


def _libc_trim() -> Optional[Callable[[], None]]:
    """glibc's malloc_trim(0), or None where the C library or /proc/self/clear_refs lacks."""
    try:
        trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, AttributeError):
        return None
    return lambda: trim(0)


def _status_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS: resident now, VmHWM: its peak)."""
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def step_peak_mb(step: Callable, repeats: int = 2) -> Optional[float]:
    """Largest increase of the resident memory during one call of `step` over `repeats` calls
    (freed heap returned first, peak counter reset); None where this cannot be measured."""
    trim = _libc_trim()
    if trim is None:
        return None
    peaks = []
    for _ in range(repeats):
        gc.collect()
        trim()
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = _status_kb("VmRSS")
        step()
        peaks.append((_status_kb("VmHWM") - before) / 1024)
    return round(max(peaks), 1)


def parameters(v: SimpleNamespace) -> Dict[str, int]:
    """Parameter counts of a variant's model and of its gating network."""
    count = sum(p.numel() for p in v.model.parameters())
    return dict(model=count, gate=sum(p.numel() for p in v.model.gating.parameters()))


def measure_training(args: argparse.Namespace, data: Dict[str, Any]) -> Dict[str, Any]:
    """Training-step timings, their memory and parameters, and re-seeding's cost."""
    variants = {f"{name}@{g}": train_variant(config, sets, gamma, data["train"])
                for name, (config, sets) in TRAIN_VARIANTS.items() for g, gamma in GAMMAS.items()}
    times = interleave({k: v.step for k, v in variants.items()}, args.rounds, args.steps)
    result = train_summary(times, schedule_weights(variants["full@gamma_1"].cfg))
    result["memory"] = dict(train_step_peak_mb={k: step_peak_mb(v.step)
                                                for k, v in variants.items()},
                            parameters={name: parameters(variants[f"{name}@gamma_1"])
                                        for name in TRAIN_VARIANTS})
    full = variants["full@gamma_1"]
    per_epoch = full.cfg.synthetic_options["n_train"] // full.cfg.train_batch_size
    paper_s = result["train_step_ms"]["paper"]["gamma_1"]["median"] / 1e3
    result["revive"] = time_revive(full, per_epoch, paper_s)
    return result


def measure_evaluation(args: argparse.Namespace, data: Dict[str, Any]) -> Dict[str, Any]:
    """Evaluation-batch timings with and without the image gate and its averaging; memory."""
    variants = {n: eval_variant(c, s, data["eval"]) for n, (c, s) in EVAL_VARIANTS.items()}
    result = eval_summary(interleave({n: v.step for n, v in variants.items()},
                                     args.eval_rounds, args.eval_steps))
    result["eval_batch_peak_mb"] = {n: step_peak_mb(v.step) for n, v in variants.items()}
    return result


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    command = command_line()
    demo = load_config(DEMO)
    malloc_reuse = reuse_freed_memory() if demo.cpu_malloc_reuse else False
    data = demo_batches(demo)
    t0 = time.perf_counter()
    result = dict(paper_config=PAPER, demo_config=DEMO, data=data["data"],
                  train_batch=demo.train_batch_size, eval_batch=demo.val_batch_size,
                  threads=args.threads, rounds=args.rounds, steps=args.steps,
                  eval_rounds=args.eval_rounds, eval_steps=args.eval_steps,
                  malloc_reuse=malloc_reuse)
    result.update(measure_training(args, data))
    result.update(measure_evaluation(args, data))
    loader, target = data["refit_loader"], demo.gate_refit_steps
    result["gate_refit"] = dict(  # the demo's config, and with the paper's gate
        image=time_refit(DEMO, [], loader, args.refit_image_steps, target),
        bottleneck=time_refit(DEMO, ["gate_input='bottleneck'", "gate_tta=False"], loader,
                              args.refit_bottleneck_steps, target))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["provenance"] = provenance(command)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
