"""Runs the authors' MoSE code in a process of its own, for the side-by-side benchmarks.

Started by `benchmarks.authors.tree.run_worker` as `python benchmarks/authors/worker.py MODE
JSON` with the authors' tree on PYTHONPATH and this project off the path (their top-level
packages are also called `models`, `data` and `utils`); nothing in the project imports it.
It prints one JSON object on its last stdout line.

The published tree runs here unedited; three things are supplied from outside:
- `models/backbone/__init__.py` is empty while `models/MoSE.py` imports `Unet`,
  `Conv2DSequence`, `weights_init` and `mu_init` from it: they are set on that package from the
  modules that define them;
- their engine sends the model and every batch to CUDA: `.cuda()` of a tensor or module
  returns it unchanged, so everything stays on the CPU (their `DataParallel` wrapper calls the
  module directly when no GPU is present);
- their engine passes `verbose=True` to `ReduceLROnPlateau`, which newer PyTorch releases
  reject: the argument, which only printed, is dropped.

Modes:
- `speed`: their training step (forward, OT loss, `nanmean`, backward, Adam with their weight
  decay) and evaluation step (compact forward with their GED / M-IoU, their ECE accumulation)
  on random inputs made exactly as `benchmarks.bench_train.random_batch` makes ours.
- `train`: their engine (`Engine.train`: validation before training and every epoch, the
  best-GED checkpoint, their running-mean plateau rule for the learning rate) with their model,
  OT loss, LIDC dataset and transforms on a folder in the LIDC layout; γ moves at fixed epochs
  (`gamma_milestones`) instead of their plateau rule, as in the paper-schedule row it is compared
  with; then the best checkpoint's compact predictions on the test split, their own test
  metrics, and the wall-clock.
"""

import json
import resource
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch


def authors_modules(root: Path) -> types.SimpleNamespace:
    """Import their model and loss (after completing `models.backbone`), checking that the
    imported packages are theirs."""
    import models.backbone as backbone
    from models.backbone.model_utils import Conv2DSequence, mu_init, weights_init
    from models.backbone.unet import Unet

    import models

    if not Path(models.__file__).resolve().is_relative_to(root):
        raise RuntimeError(f"'models' resolves to {models.__file__}, not to {root}")
    backbone.Unet, backbone.Conv2DSequence = Unet, Conv2DSequence
    backbone.weights_init, backbone.mu_init = weights_init, mu_init
    from models.MoSE import MoSE
    from utils.OTloss import OT_loss

    return types.SimpleNamespace(MoSE=MoSE, OT_loss=OT_loss)


def stay_on_cpu() -> None:
    """`.cuda()` returns the tensor or module itself; `ReduceLROnPlateau` drops `verbose`."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau

    class Plateau(plateau):
        def __init__(self, *args, verbose=None, **kwargs):
            super().__init__(*args, **kwargs)

    torch.optim.lr_scheduler.ReduceLROnPlateau = Plateau


def build(a: dict, mods: types.SimpleNamespace):
    """Their OT loss and MoSE from the JSON arguments (`loss`, `model`)."""
    loss_fn = mods.OT_loss(**a["loss"])
    net = mods.MoSE(**a["model"], loss_fn=loss_fn)
    return net, loss_fn


def random_batch(a: dict):
    """The inputs of `benchmarks.bench_train.random_batch`: the same generator and draws."""
    B, M, (H, W) = a["batch"], a["annotations"], a["image_size"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, a["model"]["input_channels"], H, W, generator=g)  # (B, C_in, H, W)
    y = torch.randint(0, a["model"]["num_classes"], (B, M, H, W), generator=g)  # (B, M, H, W)
    v = torch.full((B, M), 1.0 / M)  # (B, M)
    return x, y, v


def timed(fn, steps: int):
    """(seconds of the warm-up call, seconds per call over `steps` further calls)."""
    t0 = time.perf_counter()
    fn()
    t1 = time.perf_counter()
    for _ in range(steps):
        fn()
    return t1 - t0, (time.perf_counter() - t1) / steps


def speed(a: dict, mods: types.SimpleNamespace) -> dict:
    """Seconds per training and evaluation step of their code (see the module docstring)."""
    from utils import get_conf_map_accumulate

    torch.manual_seed(0)
    np.random.seed(0)
    net, _ = build(a, mods)
    optimizer = torch.optim.Adam(net.parameters(), lr=a["lr"], weight_decay=1e-5)
    x, y, v = random_batch(a)

    def train_step():  # their Engine.train, one iteration
        net.train()
        losses = net.forward(x, y, v)
        loss = losses[0].nanmean()
        with torch.no_grad():
            [part.nanmean().item() for part in losses]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def eval_step():  # their Engine.test, one iteration
        net.eval()
        metrics, prediction, prob = net.forward(x, y, v, val=True)
        [metric.nanmean().item() for metric in metrics]
        get_conf_map_accumulate(prediction, prob, y, v, a["model"]["num_classes"], None, None)

    first_train_s, train_s = timed(train_step, a["steps"])
    first_eval_s, eval_s = timed(eval_step, a["steps"])
    B = a["batch"]
    return dict(train_img_per_s=B / train_s, eval_img_per_s=B / eval_s, train_step_s=train_s,
                eval_step_s=eval_s, first_train_step_s=first_train_s,
                first_eval_step_s=first_eval_s,
                peak_mem_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                torch=torch.__version__, threads=torch.get_num_threads())


def experiment(a: dict, mods: types.SimpleNamespace) -> types.SimpleNamespace:
    """The settings module their engine reads (the names of their LIDC config files)."""
    import data.transformations as their_transforms
    import torchvision.transforms as transforms
    from data.lidc_dataset import lidc_Dataloader

    run = Path(a["run_dir"])
    cfg = types.SimpleNamespace(
        experiment_name=run.name, log_root=str(run.parents[1]), log_dir_name=run.parent.name,
        run_root=str(run / "runs"), data_folder=a["data_folder"], data_loader=lidc_Dataloader,
        n_classes=2, input_channels=1, num_w=0, label_range="all", eval_class_ids=[1],
        train_batch_size=a["train_batch_size"], val_batch_size=a["val_batch_size"],
        test_batch_size=a["test_batch_size"], epochs=a["epochs"], lr=a["lr"],
        scheduler_options=a["scheduler_options"], logging_frequency=1, validation_frequency=1,
        transform={"train": transforms.Compose([
            their_transforms.RandomHorizontalFlip(), their_transforms.RandomVerticalFlip(),
            their_transforms.RandomRotation(angle=10)]), "val": None, "test": None})
    cfg.net, cfg.loss_fn = build(a, mods)
    return cfg


def train(a: dict, mods: types.SimpleNamespace) -> dict:
    """Train with their engine, then predict the test split with the best checkpoint."""
    import engine

    from utils import utils as their_utils

    t0 = time.perf_counter()
    their_utils.random_init(a["seed"])
    torch.set_num_threads(a["threads"])
    cfg = experiment(a, mods)
    run = Path(a["run_dir"])
    run.mkdir(parents=True, exist_ok=True)
    logger = their_utils.setup_logger("basic_logger", str(run / "training_log.log"))
    milestones = dict(zip(a["gamma_milestones"], a["gamma_values"]))

    class Engine(engine.Engine):
        def update_param_schedulers(self, mean_losses):
            super().update_param_schedulers(mean_losses)
            if self.epoch + 1 in milestones:  # their epochs count from 0, ours from 1
                self.exp_config.loss_fn.gamma = milestones[self.epoch + 1]
                logger.info(f"gamma -> {self.exp_config.loss_fn.gamma}")

    data = cfg.data_loader(exp_config=cfg)
    runner = Engine(cfg, logger=logger, args=types.SimpleNamespace(demo=""), tensorboard=True)
    runner.train(data)
    runner.save_model("last")
    wall_s = time.perf_counter() - t0
    best = run / f"{cfg.experiment_name}_best_ged.pth"
    runner.net.load_state_dict(torch.load(best), strict=True)
    (run / "authors_test").mkdir(exist_ok=True)  # as their main.py makes it before testing
    runner.test(data.test, str(run / "authors_test"))
    their = np.load(run / "authors_test" / f"weighted_{a['model']['sample_per_mode']}"
                    "_mean_metrics.npy")
    save_predictions(runner.net, data, run / "predictions.npz")
    return dict(wall_s=wall_s, best_val_ged=float(runner.best_terms["ged"]),
                their_test_metrics=dict(ged=float(their[0]), miou=float(their[1]),
                                        ece=float(their[2])))


@torch.no_grad()
def save_predictions(net, data, path: Path) -> None:
    """The test split's compact predictions: probabilities (n, N, C, H, W), sample weights
    (n, N), and each image's file stem (their loader lists files lexicographically)."""
    net.eval()
    preds, weights = [], []
    for x, y, pg in data.test:
        _, pred, prob = net.forward(x, y, pg, val=True)
        preds.append(pred.float())
        weights.append(prob.float())
    stems = [Path(p).stem for p in data.test_ds.img_file]
    np.savez_compressed(path, pred=torch.cat(preds).numpy(), weights=torch.cat(weights).numpy(),
                        stems=np.array(stems))


def main() -> None:
    mode, a = sys.argv[1], json.loads(sys.argv[2])
    root = Path(a["authors_root"]).resolve()
    stay_on_cpu()
    torch.set_num_threads(a["threads"])
    mods = authors_modules(root)
    result = {"speed": speed, "train": train}[mode](a, mods)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
