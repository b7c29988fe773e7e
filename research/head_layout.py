"""Training step of the fast head's two layouts, maps against rows, in one run; prints JSON.

    python -m research.head_layout [--threads 2] [--rounds 3]

On a CPU in float32, training uses channel-major maps (`models.fast_head.maps_layout`); rows
are what bf16, GPUs and the compiled kernels use. This times the same training step (forward +
OT loss + backward + Adam, `benchmarks/bench_train.py`) with either layout, alternating, for
the synthetic demo (batch 32) and the LIDC paper config (batch 4), and reports the best of
`--rounds` and the speed-up rows / maps measured in this one process.
"""

import argparse
import json
import time
from typing import Optional, Sequence

import torch

import models.fast_head as fast_head_module
from benchmarks.bench_train import build_model_and_step
from benchmarks.provenance import provenance
from utils.config.config import load_config
from utils.runtime.cpu_memory import reuse_freed_memory

CASES = [("experiments/synthetic_lidc.py", 32, 20), ("experiments/lidc_proposed.py", 4, 4)]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    reuse_freed_memory()
    maps = fast_head_module.maps_layout
    layouts = {"rows": lambda u_d, compiled: False, "maps": maps}
    out = {"threads": args.threads, "torch": torch.__version__}
    try:
        for config, batch, steps in CASES:
            torch.manual_seed(0)
            step, _ = build_model_and_step(load_config(config, []), batch)
            times = {name: [] for name in layouts}
            for _ in range(args.rounds):
                for name, choose in layouts.items():
                    fast_head_module.maps_layout = choose
                    step()  # warm-up of this layout
                    t0 = time.perf_counter()
                    for _ in range(steps):
                        step()
                    times[name].append((time.perf_counter() - t0) / steps)
            best = {name: min(t) for name, t in times.items()}
            out[config] = {"batch": batch, "rows_step_s": round(best["rows"], 4),
                           "maps_step_s": round(best["maps"], 4),
                           "speedup": round(best["rows"] / best["maps"], 3)}
    finally:
        fast_head_module.maps_layout = maps
    out["provenance"] = provenance()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
