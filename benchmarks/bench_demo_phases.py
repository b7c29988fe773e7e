"""Wall-clock of each phase of the synthetic LIDC demo (`main.py experiments/synthetic_lidc.py`).

    python -m benchmarks.bench_demo_phases [--config experiments/synthetic_lidc.py]
        [--threads T] [--keep DIR] [--set KEY=VALUE ...]

Prints one JSON object, seconds per phase:
- `import_torch_s`, `import_project_s`: importing torch, then the modules a training run uses
  (this script is a fresh process, so these are what a user waits for at every start);
- `data_generation_s`: writing the synthetic set (into a temporary folder);
- `setup_s`: loaders, model, loss, optimizer and schedulers;
- `train_data_pass_s`: one pass over the training loader alone (loading + augmentation);
- `first_train_epoch_s`: the first training epoch (`train_one_epoch`, data included), which
  also pays any one-off cost (`compile_head`'s compilation, first-touch memory);
- `train_epoch_s`: the second training epoch, the cost of every later one;
- `validation_s`: one validation (`evaluate` on the val split, with the true-mode comparison);
- `test_s`: evaluating the test split; `figures_s`: the test's figures and mode calibration
  (`analyse_split`) plus the one TensorBoard sample grid of the last epoch.
`demo_estimate_s` = imports + generation + setup + first epoch + (epochs − 1) × train epoch +
epochs × validation + test + figures + one extra validation (epoch 0): the demo's wall-clock at
this machine's speed. Like `main.py`, the script keeps freed memory for reuse
(`cpu_malloc_reuse`).
"""

import time

T0 = time.perf_counter()
import torch  # noqa: E402

T_TORCH = time.perf_counter()
import argparse  # noqa: E402
import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

from benchmarks.provenance import provenance  # noqa: E402
from utils.build import build_loaders, build_loss, build_model, prepare_data  # noqa: E402
from utils.config.config import load_config  # noqa: E402
from utils.evaluation.loop import evaluate  # noqa: E402
from utils.reports.analyses import analyse_split, tensorboard_sample_grid  # noqa: E402
from utils.runtime.cpu_memory import reuse_freed_memory  # noqa: E402
from utils.runtime.logger import MetricsWriter  # noqa: E402
from utils.training.engine import train_one_epoch  # noqa: E402
from utils.training.trainer import build_training  # noqa: E402

T_PROJECT = time.perf_counter()


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="experiments/synthetic_lidc.py")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def clock(times: dict, name: str, fn):
    """Run `fn()`, store its wall-clock seconds under `name`; returns its result."""
    t = time.perf_counter()
    out = fn()
    times[name] = time.perf_counter() - t
    return out


def run_phases(cfg, work: Path) -> dict:
    """Time every phase of the demo in `work`; returns the seconds per phase."""
    times: dict = {}
    cfg["data_folder"] = str(work / "data")
    clock(times, "data_generation_s", lambda: prepare_data(cfg))
    device = torch.device("cpu")

    def setup():
        loaders = build_loaders(cfg, ("train", "val", "test"))
        model = build_model(cfg).to(device)
        loss_fn = build_loss(cfg)
        return loaders, model, loss_fn, build_training(cfg, model, loss_fn)

    loaders, model, loss_fn, parts = clock(times, "setup_s", setup)
    clock(times, "train_data_pass_s", lambda: sum(1 for _ in loaders["train"]))
    gen = torch.Generator().manual_seed(0)
    for name, epoch in (("first_train_epoch_s", 1), ("train_epoch_s", 2)):
        clock(times, name, lambda e=epoch: train_one_epoch(
            model, loaders["train"], loss_fn, parts.optimizer, parts.monitor, device, gen, e))
    clock(times, "validation_s", lambda: evaluate(model, loaders["val"], cfg, device))
    results = clock(times, "test_s", lambda: evaluate(model, loaders["test"], cfg, device))
    results.update(split="test", tag="compact")
    writer = MetricsWriter(work / "run" / "metrics.jsonl", work / "run" / "tb")

    def figures():
        analyse_split(model, loaders["test"], cfg, device, work / "run" / "test", results)
        tensorboard_sample_grid(writer.tb, model, loaders["val"], cfg, device, cfg.epochs)
        writer.close()

    clock(times, "figures_s", figures)
    return times


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.set)
    if cfg.cpu_malloc_reuse:
        reuse_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        times = run_phases(cfg, work)
    times = {"import_torch_s": T_TORCH - T0, "import_project_s": T_PROJECT - T_TORCH, **times}
    train = times["first_train_epoch_s"] + (cfg.epochs - 1) * times["train_epoch_s"]
    estimate = (times["import_torch_s"] + times["import_project_s"] + times["data_generation_s"]
                + times["setup_s"] + train + (cfg.epochs + 1) * times["validation_s"]
                + times["test_s"] + times["figures_s"])
    print(json.dumps({"config": args.config, "epochs": cfg.epochs, **times,
                      "demo_estimate_s": estimate, "threads": torch.get_num_threads(),
                      "torch": torch.__version__, "provenance": provenance()}, indent=2))


if __name__ == "__main__":
    main()
