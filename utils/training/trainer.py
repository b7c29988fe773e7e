"""The trainer: the paper's protocol around the engine — validation before the first epoch and
every `validation_frequency` epochs, the best-GED checkpoint, the learning-rate and γ / S / G
schedulers fed the monitored training loss after every epoch, the resume state written at the
end of every epoch, the last weights at the end, the optional gate refit of the best checkpoint
(`gate_refit_steps`) and the test of the best checkpoint.
"""

import math
import random
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np
import torch

from utils.build import build_loaders, build_loss, build_model, run_dir_of
from utils.config.config import Config
from utils.config.files import copy_config
from utils.reports.analyses import report_checkpoint, tensorboard_sample_grid
from utils.runtime import distributed
from utils.runtime.checkpoint import load_model_weights, save_checkpoint
from utils.runtime.distributed import is_main, shard_eval_loader
from utils.runtime.logger import MetricsWriter, NullWriter, logger, write_json
from utils.runtime.seed import make_generator
from utils.training.engine import evaluate, train_one_epoch
from utils.training.gate_refit import refit_gate
from utils.training.resume import (
    load_training_state,
    resume_path,
    save_training_state,
    trim_metrics,
)
from utils.training.revive import ExpertUsage, revive_dead_experts
from utils.training.schedulers import CosineLR, LossMonitor, TrainingParamSchedulers
from utils.training.state import Progress, TrainingParts

# validation figures recorded per epoch (the last three only where the true modes are known)
VAL_KEYS = ("ged", "miou", "ece", "true_ged", "ged_ratio", "mode_mass_error")


@dataclass
class TrainingRun:
    """What a training run holds from its setup to its end.

    Attributes:
        loaders: 'train' and 'val' loaders.
        model: the model, unwrapped (what is validated and saved).
        ddp_model: what trains: the DDP wrapper under torchrun, else the model.
        loss_fn: the training loss.
        parts: optimizer, schedulers and loss monitor.
        writer: `metrics.jsonl` and TensorBoard (rank 0), else a `NullWriter`.
        generators: 'loader' (the training data order) and 'latent' (the sampling), saved by
            name in the resume state.
        progress: where the run stands.
    """

    loaders: Dict[str, Any]
    model: torch.nn.Module
    ddp_model: torch.nn.Module
    loss_fn: Any
    parts: TrainingParts
    writer: Any
    generators: Dict[str, torch.Generator]
    progress: Progress


def train_and_test(cfg: Config, config_file: str, device: torch.device,
                   resume: bool = False) -> Dict[str, Any]:
    """Train (fresh, or resumed when `resume` and a resume state exists), then test the best
    checkpoint if `test_after_training`.

    Returns:
        The test results, or `{"best_val_ged": ...}` without a test.
    """
    run_dir = run_dir_of(cfg)
    if is_main():
        write_json(run_dir / "config.json", cfg)
        copy_config(config_file, run_dir)  # loadable from the run folder, bases resolved
    best_ged = train(cfg, device, run_dir, resume=resume)
    if cfg.gate_refit_steps:
        refit_best_checkpoint(cfg, device, run_dir)
    if not cfg.test_after_training:
        return {"best_val_ged": best_ged}
    ckpt = run_dir / f"{cfg.experiment_name}_best_ged.pth"
    return report_checkpoint(cfg, "test", ckpt, device, run_dir)


def refit_best_checkpoint(cfg: Config, device: torch.device, run_dir: Path) -> None:
    """Refit the gating network of the best checkpoint (`utils.training.gate_refit`) and write
    it back; logs the validation figures before and after.

    Under DDP every rank refits on the whole training split (the same computation), takes rank
    0's result and validates on its share of the batches, as during training; rank 0 saves.
    The weights before the refit are kept as `<name>_best_ged_before_refit.pth` (written once
    per best checkpoint; a new best checkpoint removes it) and the refit always starts from
    them, so running it again (e.g. after a resumed run that had already finished) gives the
    same weights, and the effect of the refit can be measured on the same run.
    """
    ckpt = run_dir / f"{cfg.experiment_name}_best_ged.pth"
    before_refit = pre_refit_path(run_dir, cfg.experiment_name)
    if is_main() and not before_refit.is_file():
        shutil.copyfile(ckpt, before_refit)
    distributed.barrier()
    model = load_model_weights(build_model(cfg), before_refit).to(device)
    loaders = build_loaders(cfg, ("train", "val"), shard_train=False)
    keys = ("ged", "ged_ratio", "mode_mass_error")

    def summary() -> str:
        val = evaluate(model, shard_eval_loader(loaders["val"]), cfg, device, desc="val")
        return " ".join(f"{k} {val[k]:.4f}" for k in keys if k in val)

    before = summary()
    stats = refit_gate(model, loaders["train"], build_loss(cfg), device, cfg.gate_refit_steps,
                       cfg.seed)
    distributed.broadcast_parameters(model.gating)
    logger.info(f"gate refit ({cfg.gate_refit_steps} steps, {stats['images']} training "
                f"images): gate loss {stats['before']:.4f} -> {stats['after']:.4f}; "
                f"val {before} -> {summary()}")
    if is_main():
        save_checkpoint(model.state_dict(), ckpt)
    distributed.barrier()


def pre_refit_path(run_dir: Path, name: str) -> Path:
    """Where the best checkpoint's weights before the gate refit are kept."""
    return run_dir / f"{name}_best_ged_before_refit.pth"


def validate_and_save(model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: Any,
                      cfg: Config, device: torch.device, run_dir: Path, best_ged: float) -> tuple:
    """Validate; save weights and optimizer state if the GED is <= the best so far.

    Under DDP every rank evaluates its share of the batches and gets the same results; rank 0
    saves (its BatchNorm statistics are first copied to every rank). A NaN GED (no image with a
    defined GED) never counts as an improvement, except that a run without any best checkpoint
    yet keeps its first validated weights, so that a best checkpoint always exists.

    Returns:
        (validation results dict, new best GED).
    """
    distributed.broadcast_buffers(model)
    results = evaluate(model, shard_eval_loader(loader), cfg, device, desc="val")
    ged = results["ged"]
    if ged <= best_ged or (math.isnan(ged) and best_ged == math.inf):
        best_ged = ged if not math.isnan(ged) else best_ged
        name = cfg.experiment_name
        if is_main():
            save_checkpoint(model.state_dict(), run_dir / f"{name}_best_ged.pth")
            save_checkpoint(optimizer.state_dict(), run_dir / f"{name}_best_ged_optim.pth")
            pre_refit_path(run_dir, name).unlink(missing_ok=True)  # belongs to an older best
    return results, best_ged


def log_epoch(writer: MetricsWriter, cfg: Config, record: Dict[str, Any], moves: list) -> None:
    """Write an epoch record to metrics.jsonl, and to the text log and TensorBoard.

    The text log and TensorBoard get every `logging_frequency`-th epoch and every validation.
    """
    writer.log(record)
    epoch = record["epoch"]
    for move in moves:
        logger.info(f"epoch {epoch}: parameter scheduler moved: {move}")
    if epoch % cfg.logging_frequency and "val_ged" not in record:
        return
    text = "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in record.items())
    logger.info(text)
    writer.scalars({k.replace("_", "/", 1): v for k, v in record.items()
                    if k != "epoch" and isinstance(v, (int, float))}, step=epoch)


def build_training(cfg: Config, model: torch.nn.Module, loss_fn: Any) -> TrainingParts:
    """Optimizer, learning-rate scheduler, gamma / S / G schedulers and the loss monitor.

    Every part has `state_dict` / `load_state_dict`, so a run's state is their union.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "plateau":
        lr_scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer,
                                                                  **cfg.scheduler_options)
    else:
        lr_scheduler = CosineLR(optimizer, min_lr=cfg.scheduler_options.get("min_lr", 0.0))
    param_schedulers = TrainingParamSchedulers(model, loss_fn, cfg.gamma_scheduler_options,
                                               cfg.S_scheduler_options, cfg.G_scheduler_options)
    return TrainingParts(optimizer=optimizer, lr_scheduler=lr_scheduler,
                         param_schedulers=param_schedulers, monitor=LossMonitor(cfg.scheduler_mean))


def planned_epochs(cfg: Config, start: float, epochs_done: int, planned: int) -> int:
    """Epochs the run will have: `epochs`, fewer if `max_train_minutes` cannot fit them all."""
    if cfg.max_train_minutes is None:
        return planned
    elapsed = time.time() - start
    fit = int((60 * cfg.max_train_minutes - elapsed) // (elapsed / epochs_done))
    return max(epochs_done, min(planned, epochs_done + fit))


def deadline(cfg: Config, start: float) -> Optional[float]:
    """The `time.time()` at which training stops, mid-epoch if need be (None: no budget)."""
    return None if cfg.max_train_minutes is None else start + 60 * cfg.max_train_minutes


def end_of_epoch(cfg: Config, parts: TrainingParts, epoch: int, planned: int) -> list:
    """Step the learning-rate and gamma / S / G schedulers on the monitored training loss."""
    monitor = parts.monitor
    if cfg.lr_schedule == "plateau":
        parts.lr_scheduler.step(monitor.monitored("loss"))
    else:
        parts.lr_scheduler.step(epoch, planned)
    return parts.param_schedulers.step(monitor.monitored("loss"), monitor.monitored("kl"), epoch)


def check_loaders(cfg: Config, loaders: Dict[str, Any]) -> None:
    """A split with no full batch is an error (training and validation drop the last one), and
    so is a training input whose size is not the config's `image_size`."""
    for split, loader in loaders.items():
        if len(loader) == 0:
            raise ValueError(f"the {split} split of {cfg.data_folder} has {len(loader.dataset)} "
                             f"images, fewer than {split}_batch_size={cfg[split + '_batch_size']}"
                             f": lower {split}_batch_size")
    if cfg.image_size is not None and "train" in loaders:
        size = list(first_item_size(loaders["train"].dataset))
        if size != list(cfg.image_size):
            raise ValueError(f"image_size={list(cfg.image_size)} but the training inputs of "
                             f"{cfg.data_folder} are {size[0]}x{size[1]}: set image_size={size} "
                             "or None")


def first_item_size(dataset: Any) -> tuple:
    """(H, W) of a dataset's first item, drawn without moving the random streams that
    augmentation and training use (python, numpy, torch)."""
    saved = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        x = dataset[0][0]  # (C_in, H, W)
    random.setstate(saved[0])
    np.random.set_state(saved[1])
    return tuple(x.shape[-2:])


def setup_training(cfg: Config, device: torch.device, run_dir: Path,
                   resume: bool) -> TrainingRun:
    """Loaders, model, loss, optimizer and schedulers, writer, generators and the progress so
    far: restored from the run's resume state, or from a first validation (epoch 0).

    `resume` without a resume state in the run folder starts the run from scratch and says so
    (detectron2's resume_or_load), so a job script can always pass --resume.
    """
    loaders = build_loaders(cfg, ("train", "val"))
    check_loaders(cfg, loaders)
    state_file = resume_path(run_dir, cfg.experiment_name)
    if resume and not state_file.is_file():
        logger.info(f"--resume: no resume state {state_file} yet; starting the run from scratch")
        resume = False
    model = distributed.prepare_model(build_model(cfg), device, cfg.sync_bn)
    if cfg.pretrained_model_full_path and not resume:
        load_model_weights(model, cfg.pretrained_model_full_path)
    loss_fn = build_loss(cfg)
    parts = build_training(cfg, model, loss_fn)
    writer = (MetricsWriter(run_dir / "metrics.jsonl",
                            Path(cfg.run_root) / cfg.log_dir_name / cfg.experiment_name)
              if is_main() else NullWriter())
    generators = dict(loader=loaders["train"].generator,
                      latent=make_generator(cfg.seed + distributed.rank(), device))
    logger.info(f"{sum(p.numel() for p in model.parameters()):,} parameters, "
                f"{len(loaders['train'].dataset)} training images, device {device}, "
                f"{distributed.world_size()} process(es)")
    if resume:  # the random states are restored last: nothing below draws from them
        progress = load_training_state(state_file, model, parts, generators, cfg)
        if is_main():
            trim_metrics(run_dir / "metrics.jsonl", progress.epoch)
    else:
        progress = first_validation(model, parts, writer, loaders["val"], cfg, device, run_dir)
    return TrainingRun(loaders, model, distributed.wrap(model, device), loss_fn, parts, writer,
                       generators, progress)


def first_validation(model: torch.nn.Module, parts: TrainingParts, writer: Any, loader: Any,
                     cfg: Config, device: torch.device, run_dir: Path) -> Progress:
    """Validate before the first epoch (epoch 0 of the logs).

    Returns:
        The progress of a fresh run: epoch 0, the best GED so far, `epochs` planned.
    """
    val, best_ged = validate_and_save(model, parts.optimizer, loader, cfg, device, run_dir,
                                      math.inf)
    log_epoch(writer, cfg, {"epoch": 0, **{f"val_{k}": v for k, v in val.items()
                                           if k in VAL_KEYS}}, [])
    return Progress(epoch=0, best_ged=best_ged, planned=cfg.epochs, elapsed=0.0)


def run_epoch(run: TrainingRun, cfg: Config, device: torch.device, run_dir: Path,
              start: float) -> None:
    """Train the next epoch, validate when due, log, step the schedulers, save the resume state;
    `run.progress` then holds the epoch done."""
    model, parts, epoch = run.model, run.parts, run.progress.epoch + 1
    planned, best_ged = run.progress.planned, run.progress.best_ged
    used = {**parts.param_schedulers.values(), "lr": parts.optimizer.param_groups[0]["lr"]}
    revive = cfg.revive_experts
    reviving = revive is not None and revive["epochs"][0] <= epoch <= revive["epochs"][1]
    usage = ExpertUsage() if reviving else None
    stats = train_one_epoch(run.ddp_model, run.loaders["train"], run.loss_fn, parts.optimizer,
                            parts.monitor, device, run.generators["latent"], epoch,
                            deadline(cfg, start), usage)
    if usage is not None:  # the same draw on every rank: seeded by the run's seed and epoch
        direction = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        for line in revive_dead_experts(model, parts.optimizer, usage, revive["threshold"],
                                        direction):
            logger.info(f"epoch {epoch}: {line}")
    planned = epoch if stats["cut_short"] else planned_epochs(cfg, start, epoch, planned)
    record = {"epoch": epoch, **{f"train_{k}": v for k, v in stats.items()}, **used}
    if epoch % cfg.validation_frequency == 0 or epoch == planned:
        val_loader = run.loaders["val"]
        val, best_ged = validate_and_save(model, parts.optimizer, val_loader, cfg, device,
                                          run_dir, best_ged)
        if epoch == planned:  # one figure per run: rendering costs seconds on a CPU
            tensorboard_sample_grid(run.writer.tb, model, val_loader, cfg, device, epoch)
        record.update({f"val_{k}": v for k, v in val.items() if k in VAL_KEYS})
    log_epoch(run.writer, cfg, record, end_of_epoch(cfg, parts, epoch, planned))
    run.progress = replace(run.progress, epoch=epoch, best_ged=best_ged, planned=planned,
                           elapsed=time.time() - start)
    save_training_state(resume_path(run_dir, cfg.experiment_name), model, parts, run.progress,
                        run.generators, cfg)


def train(cfg: Config, device: torch.device, run_dir: Path, resume: bool = False) -> float:
    """Train with the config's protocol; checkpoints go to `run_dir` (written by rank 0).

    The resume state is saved at the end of every epoch (atomically), so a run killed or
    interrupted during an epoch continues from the end of the last completed one.

    Args:
        cfg: the run's settings.
        device: this process' device.
        run_dir: the run folder.
        resume: continue from `<experiment_name>_resume.pth` if it exists.
    Returns:
        The best validation GED.
    """
    run = setup_training(cfg, device, run_dir, resume)
    start = time.time() - run.progress.elapsed
    while run.progress.epoch < run.progress.planned:
        run_epoch(run, cfg, device, run_dir, start)
    if run.progress.planned < cfg.epochs:
        logger.info(f"max_train_minutes={cfg.max_train_minutes}: stopped after "
                    f"{run.progress.planned} epochs")
    if is_main():
        save_checkpoint(run.model.state_dict(), run_dir / f"{cfg.experiment_name}_last.pth")
    run.writer.close()
    logger.info(f"training done in {(time.time() - start) / 60:.1f} min; best val GED "
                f"{run.progress.best_ged:.4f}")
    return run.progress.best_ged
