"""Training and evaluation throughput of a config on random inputs; prints one JSON object.

    python -m benchmarks.bench_train --config experiments/lidc_proposed.py --batch 4 --steps 5
        [--device cpu|cuda] [--threads T] [--amp] [--compile [--compile-mode MODE]] [--plain]
        [--tf32] [--cudnn-benchmark] [--no-malloc-reuse] [--fastest] [--set KEY=VALUE ...]
    (ratios to the reference formulation and fractions of the matmul limit:
    python -m benchmarks.bench_compare)

train_img_per_s: forward + OT loss + backward + Adam step. eval_img_per_s: compact eval-mode
forward + argmax + GED/M-IoU + ECE update. One warm-up step each is not timed (with --compile
the warm-up compiles; its time is `first_train_step_s`).
"""

import argparse
import json
import resource
import time
from typing import Optional, Sequence

import torch

from benchmarks.provenance import provenance
from data.specs import dataset_spec
from models import MoSE
from utils.config.config import load_config
from utils.evaluation.metrics import StreamingECE, ged_miou
from utils.labels import hard_labels
from utils.loss.ot_loss import OTLoss
from utils.runtime.cpu_memory import reuse_freed_memory
from utils.runtime.fastest import choose, detect


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="experiments/lidc_proposed.py")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--amp", action="store_true", help="bf16 autocast of the model forward")
    p.add_argument("--compile", action="store_true", help="torch.compile the model in place")
    p.add_argument("--compile-mode", default=None,
                   choices=["default", "reduce-overhead", "max-autotune",
                            "max-autotune-no-cudagraphs"],
                   help="torch.compile's mode with --compile (reduce-overhead: CUDA graphs)")
    p.add_argument("--tf32", action="store_true",
                   help="TF32 matrix products on CUDA (convolutions use TF32 by default)")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="let cuDNN time its convolution algorithms for these shapes")
    p.add_argument("--compile-head", action="store_true",
                   help="torch.compile the fast head's batch-norm kernels (MoSE compile_head)")
    p.add_argument("--fastest", action="store_true",
                   help="bf16 autocast and the compiled head as the `fastest` setting chooses "
                        "them for this machine (utils/runtime/fastest.py)")
    p.add_argument("--plain", action="store_true",
                   help="plain head, NCHW backbone (the reference formulation)")
    p.add_argument("--no-malloc-reuse", action="store_true",
                   help="leave glibc malloc at its defaults (see utils/runtime/cpu_memory.py)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def random_batch(cfg, batch: int, device: str):
    """Random (image, annotations, annotation weights) of the config's shapes."""
    H, W = cfg.image_size or (128, 128)  # the config's training inputs
    M = dataset_spec(cfg.dataset).annotations or 4
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, cfg.input_channels, H, W, generator=g)  # (B, C_in, H, W)
    y = torch.randint(0, cfg.n_classes, (batch, M, H, W), generator=g)  # (B, M, H, W)
    v = torch.full((batch, M), 1.0 / M)  # (B, M)
    return x.to(device), y.to(device), v.to(device)


def build_model_and_step(cfg, batch: int, reference: bool = False, device: str = "cpu",
                         amp: bool = False, compile: bool = False, compile_head: bool = False,
                         compile_mode: Optional[str] = None):
    """Model, loss and optimizer of the config, and closures for one training / eval step.

    Args:
        cfg: loaded config.
        batch: B.
        reference: the reference formulation (plain head, NCHW backbone) instead of the
            config's path.
        device, amp, compile, compile_head: as the settings of the same names.
        compile_mode: `torch.compile`'s mode with `compile` (None: its default).

    Returns:
        (train_step, eval_step), each a function of no arguments.
    """
    fast = cfg.fast_head and not reference
    model = MoSE(cfg.input_channels, cfg.n_classes, cfg.num_filters, cfg.latent_dim,
                 cfg.num_expert, cfg.sample_per_mode, cfg.softmax, cfg.masked_pred,
                 fast_head=fast, channels_last=cfg.channels_last and not reference,
                 amp=amp, compile_head=compile_head and fast).to(device)
    loss_fn = OTLoss(cfg.cost_fn, cfg.beta, cfg.gamma0, cfg.G0, cfg.num_chunks)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if compile:
        model.compile(mode=compile_mode)
    x, y, v = random_batch(cfg, batch, device)
    K, S = cfg.num_expert, cfg.sample_per_mode

    def train_step():
        model.train()
        out = model(x, y)  # float32 outputs, also under --amp
        loss, _, _ = loss_fn(y, out["pred"], out["weights"], v, (K, S))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    ece = StreamingECE(cfg.n_classes, cfg.eval_class_ids)

    @torch.no_grad()
    def eval_step():
        model.eval()
        out = model(x, y)
        pred, w = out["pred"], out["weights"]
        ged_miou(hard_labels(pred), y, w, v, cfg.n_classes, cfg.eval_class_ids)
        ece.update(pred, w, y, v)

    return train_step, eval_step


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, steps: int, device: str):
    """(seconds of the warm-up call, seconds per call over `steps` further calls)."""
    t0 = time.perf_counter()
    fn()
    sync(device)
    t1 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return t1 - t0, (time.perf_counter() - t1) / steps


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    malloc_reuse = False if args.no_malloc_reuse else reuse_freed_memory()
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    cfg = load_config(args.config, args.set)
    choice = choose(*detect(args.device)) if args.fastest else None
    if choice is not None:
        args.amp, args.compile_head = choice.amp, choice.compile_head
    train_step, eval_step = build_model_and_step(cfg, args.batch, args.plain, args.device,
                                                 args.amp, args.compile, args.compile_head,
                                                 args.compile_mode)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    first_train_s, train_s = timed(train_step, args.steps, args.device)
    first_eval_s, eval_s = timed(eval_step, args.steps, args.device)
    if args.device.startswith("cuda"):
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "config": args.config, "batch": args.batch, "steps": args.steps, "device": args.device,
        "amp": args.amp, "compile": args.compile,
        "fastest": choice.reason if choice is not None else None,
        "compile_mode": args.compile_mode if args.compile else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_conv": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "head": "plain" if args.plain else "fused",
        "compile_head": args.compile_head and not args.plain,
        "malloc_reuse": malloc_reuse,
        "train_img_per_s": args.batch / train_s, "eval_img_per_s": args.batch / eval_s,
        "train_step_s": train_s, "eval_step_s": eval_s,
        "first_train_step_s": first_train_s, "first_eval_step_s": first_eval_s,
        "peak_mem_mb": peak_mb,
        "peak_mem_kind": "cuda max allocated" if args.device.startswith("cuda") else "process RSS",
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "provenance": provenance(),
    }, indent=2))


if __name__ == "__main__":
    main()
