"""Per-op profile (torch.profiler) of one training step of the default path; writes a table.

    python -m benchmarks.profile_train [--config experiments/lidc_proposed.py] [--batch 4]
        [--device cpu|cuda] [--threads 2] [--plain] [--compile-head] [--amp]
        [--out benchmarks/results/profile_train_cpu.txt]

The step is the one `bench_train.py` times (forward + OT loss + backward + Adam) on random
inputs of the config's shapes, after two warm-up steps. On a CPU the table lists the top ops by
self CPU time ("Self CPU %": each op's share of the profiled step); on CUDA, by the GPU time of
their own kernels ("Self CUDA %"). The file's first line is the
provenance (commit, versions, machine, command).
"""

import argparse
import time
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.bench_train import build_model_and_step, sync
from benchmarks.provenance import header_line, provenance
from utils.config.config import load_config
from utils.runtime.cpu_memory import reuse_freed_memory


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="experiments/lidc_proposed.py")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--device", default="cpu", help="cpu or cuda (CUDA kernels listed by GPU time)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=30, help="ops listed")
    p.add_argument("--plain", action="store_true", help="profile the reference formulation")
    p.add_argument("--compile-head", action="store_true", help="compiled head kernels")
    p.add_argument("--amp", action="store_true", help="bf16 autocast of the model forward")
    p.add_argument("--out", default=None,
                   help="default: benchmarks/results/profile_train_<cpu|cuda>.txt")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    if not args.plain:
        reuse_freed_memory()
    cfg = load_config(args.config, args.set)
    train_step, _ = build_model_and_step(cfg, args.batch, reference=args.plain,
                                         device=args.device, amp=args.amp,
                                         compile_head=args.compile_head)
    cuda = args.device.startswith("cuda")
    for _ in range(2):
        train_step()
    sync(args.device)
    t0 = time.perf_counter()
    train_step()
    sync(args.device)
    step_s = time.perf_counter() - t0
    activities = [ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda
    with profile(activities=activities, record_shapes=False) as prof:
        train_step()
        sync(args.device)
    table = prof.key_averages().table(
        sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total",
        row_limit=args.rows, max_name_column_width=48)
    path = "reference" if args.plain else "default" + ", compiled head" * args.compile_head
    dtype = "bf16 autocast" if args.amp else "fp32"
    where = torch.cuda.get_device_name() if cuda else f"{torch.get_num_threads()} threads"
    header = (header_line(provenance()) + "\n"
              + f"# {path} path, {args.config}, batch {args.batch}, {dtype}, "
              f"{where}, torch {torch.__version__}; "
              f"unprofiled step {step_s:.3f} s\n")
    out = Path(args.out or f"benchmarks/results/profile_train_{'cuda' if cuda else 'cpu'}.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + table)
    print(header + table)


if __name__ == "__main__":
    main()
