"""Time the metrics and the OT loss on fixed sizes of LIDC and Cityscapes; prints one JSON object.

    python -m benchmarks.bench_metrics [--repeats 20] [--threads T]

Each figure is the median wall-clock seconds of one call after two warm-up calls.
"""

import argparse
import json
import statistics
import time
from typing import Optional, Sequence

import torch

from benchmarks.provenance import provenance
from utils.evaluation.metrics import ged_miou
from utils.loss.ot_loss import OTLoss


def median_seconds(fn, repeats: int) -> float:
    """Median wall-clock seconds of `fn()` over `repeats` calls after two warm-up calls."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)

    s_bin = torch.randint(0, 2, (2, 100, 32, 32), generator=g)
    y_bin = torch.randint(0, 2, (2, 4, 32, 32), generator=g)

    s_mc = torch.randint(0, 25, (2, 35, 32, 64), generator=g)
    y_mc = torch.randint(0, 25, (2, 32, 32, 64), generator=g)
    u_mc = torch.rand(2, 35, generator=g)
    u_mc = u_mc / u_mc.sum(1, keepdim=True)
    v_mc = torch.rand(2, 32, generator=g)
    v_mc = v_mc / v_mc.sum(1, keepdim=True)
    ids = [2, 12, 14, 9, 1, 20, 21, 22, 23, 24]

    logits = torch.randn(2, 35, 25, 16, 32, generator=g)
    y_ce = torch.randint(0, 25, (2, 32, 16, 32), generator=g)
    loss_fn = OTLoss("ce", beta=1.0, gamma0=1 / 32, num_chunks=4)

    result = {
        "ged_miou_binary_B2_N100_M4_32x32_s": median_seconds(
            lambda: ged_miou(s_bin, y_bin), args.repeats),
        "ged_miou_multiclass_B2_N35_M32_32x64_C25_s": median_seconds(
            lambda: ged_miou(s_mc, y_mc, u_mc, v_mc, num_classes=25, eval_class_ids=ids),
            args.repeats),
        "otloss_ce_B2_K35_S1_M32_C25_16x32_s": median_seconds(
            lambda: loss_fn(y_ce, logits, u_mc, v_mc, (35, 1)), args.repeats),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "provenance": provenance(),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
