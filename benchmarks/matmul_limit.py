"""The machine's matmul limit and the work of a step, so that throughput reads as a fraction.

`matmul_gflops` measures what `torch.mm` reaches on this machine (GFLOP/s, a dtype and a thread
count); `train_flops_per_image` and `eval_flops_per_image` count the floating-point operations of
the steps `bench_train.py` times. Their quotient is the img/s a step would reach if all its work
ran at the matmul rate: the limit that `bench_compare.py` reports each path's throughput against.

    python -m benchmarks.matmul_limit [--config experiments/lidc_proposed.py] [--batch 4]
        [--threads 2] [--size 2048]

The counts come from `torch.utils.flop_counter.FlopCounterMode`, which counts matrix products
and convolutions only (mm, addmm, bmm, convolution and their backward, attention): element-wise
work (batch norm, activations, softmax, the optimizer's update) adds time but no counted flops,
so a fraction of 1 is out of reach for a model with much of it.
"""

import argparse
import json
import statistics
import time
from typing import Callable, Optional, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

EMULATED_BF16_SIZE = 512  # n of the bf16 product on a device without native bf16


def matmul_gflops(dtype: torch.dtype = torch.float32, threads: int = 0, size: int = 2048,
                  repeats: int = 5, device: str = "cpu") -> float:
    """GFLOP/s of `torch.mm` on two (size, size) matrices: 2·size³ flops per product, the median
    over `repeats` timed products after one untimed warm-up.

    Args:
        dtype: the matrices' dtype (torch.float32, torch.bfloat16).
        threads: torch threads during the measurement (0: leave torch's setting); restored after.
        size: n of the n×n matrices.
        repeats: timed products.
        device: 'cpu' or a CUDA device.
    Returns:
        The median rate in GFLOP/s.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=g).to(device, dtype)  # (n, n)
        b = torch.randn(size, size, generator=g).to(device, dtype)  # (n, n)
        times = [_timed_mm(a, b, device) for _ in range(1 + repeats)][1:]
    finally:
        torch.set_num_threads(before)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def _timed_mm(a: torch.Tensor, b: torch.Tensor, device: str) -> float:
    """Seconds of one `torch.mm(a, b)`, synchronised on a GPU."""
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    sync()
    t0 = time.perf_counter()
    torch.mm(a, b)  # (n, n)
    sync()
    return time.perf_counter() - t0


def count_flops(fn: Callable[[], object]) -> int:
    """Flops of one call of `fn` as `FlopCounterMode` counts them (matmuls and convolutions
    only, forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _steps(cfg, batch: int, device: str):
    """`bench_train.py`'s (train_step, eval_step) of the config's path in float32."""
    from benchmarks.bench_train import build_model_and_step

    return build_model_and_step(cfg, batch, reference=False, device=device)


def train_flops_per_image(cfg, batch: int, device: str = "cpu") -> float:
    """Counted flops per image of `bench_train.py`'s training step (forward + OT loss + backward
    + Adam update) of the config's path (fast head, float32) on random inputs of its shapes.

    `FlopCounterMode` counts matrix products and convolutions only; the Adam update, batch
    norms and activations count nothing.
    """
    train_step, _ = _steps(cfg, batch, device)
    return count_flops(train_step) / batch


def eval_flops_per_image(cfg, batch: int, device: str = "cpu") -> float:
    """Counted flops per image of `bench_train.py`'s evaluation step (compact eval-mode forward,
    GED / M-IoU and the ECE update) of the config's path (float32) on random inputs.

    `FlopCounterMode` counts matrix products and convolutions only.
    """
    _, eval_step = _steps(cfg, batch, device)
    return count_flops(eval_step) / batch


def bf16_size(size: int, device: str = "cpu") -> int:
    """n of the bf16 product: `size` where the device computes bf16 natively, else at most
    `EMULATED_BF16_SIZE` (emulated bf16 runs near 1 GFLOP/s, a 2048² product for seconds)."""
    from utils.runtime.fastest import detect

    return size if detect(device).bf16_units else min(size, EMULATED_BF16_SIZE)


def limits(cfg, batch: int, threads: int, size: int = 2048, device: str = "cpu") -> dict:
    """The machine's matmul rates, the counted work per image and the fp32 img/s limits.

    Returns:
        Dict with `matmul_gflops_fp32`, `matmul_gflops_bf16`, the sizes they were measured at
        (`matmul_size`, `matmul_size_bf16`), `train_gflop_per_image`, `eval_gflop_per_image`,
        `train_img_per_s_limit_fp32` and `eval_img_per_s_limit_fp32`.
    """
    n16 = bf16_size(size, device)
    fp32 = matmul_gflops(torch.float32, threads, size, device=device)
    bf16 = matmul_gflops(torch.bfloat16, threads, n16, device=device)
    train = train_flops_per_image(cfg, batch, device) / 1e9
    evaluation = eval_flops_per_image(cfg, batch, device) / 1e9
    return {"matmul_gflops_fp32": fp32, "matmul_gflops_bf16": bf16,
            "matmul_size": size, "matmul_size_bf16": n16,
            "train_gflop_per_image": train, "eval_gflop_per_image": evaluation,
            "train_img_per_s_limit_fp32": fp32 / train,
            "eval_img_per_s_limit_fp32": fp32 / evaluation}


def fractions(result: dict, path: str, bf16: bool) -> dict:
    """`<path>_train_fraction_of_limit` and `<path>_eval_fraction_of_limit`: the path's median
    img/s in `result` over the fp32 limit; with `bf16` also `..._fraction_of_bf16_limit`."""
    out = {}
    for kind in ("train", "eval"):
        img_per_s = result[f"{path}_{kind}_img_per_s"]["median"]
        gflop = result[f"{kind}_gflop_per_image"]
        out[f"{path}_{kind}_fraction_of_limit"] = img_per_s * gflop / result["matmul_gflops_fp32"]
        if bf16:
            out[f"{path}_{kind}_fraction_of_bf16_limit"] = (
                img_per_s * gflop / result["matmul_gflops_bf16"])
    return out


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="experiments/lidc_proposed.py")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--size", type=int, default=2048, help="n of the n×n matmul")
    return p.parse_args(argv)


def main() -> None:
    from benchmarks.provenance import provenance
    from utils.config.config import load_config

    args = parse_args()
    result = limits(load_config(args.config), args.batch, args.threads, args.size)
    print(json.dumps({**vars(args), **result, "provenance": provenance()}, indent=2))


if __name__ == "__main__":
    main()
