"""Train or evaluate MoSE (Mixture of Stochastic Experts, ICLR 2023).

    python main.py CONFIG                         # train (then test, if the config asks)
    python main.py CONFIG --demo test             # evaluate the best checkpoint on a split
    python main.py CONFIG --set lr=5e-4 --set eval_sample_num=16 --device cpu
    python main.py CONFIG --resume                # continue from the last completed epoch
    torchrun --nproc_per_node=G main.py CONFIG    # G processes (DDP), e.g. one per GPU

The protocol: validate before the first epoch and every `validation_frequency` epochs, keep the
checkpoint with the lowest validation GED, step the LR and gamma / S / G schedulers on the
monitored training loss after every epoch, save the last weights at the end.
"""

import argparse
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from data import build_dataloaders
from models import MoSE
from utils import distributed
from utils.checkpoint import load_model_weights, save_checkpoint
from utils.config import Config, load_config
from utils.cpu_memory import reuse_freed_memory
from utils.distributed import is_main, shard_eval_loader
from utils.engine import evaluate, train_one_epoch
from utils.errors import USER_ERRORS, error_line, out_of_memory_hint
from utils.logger import MetricsWriter, NullWriter, log_to_files, logger, setup_logging, write_json
from utils.ot_loss import OTLoss
from utils.report import analyse_split, tensorboard_sample_grid
from utils.results import result_tag, summary_line
from utils.resume import load_training_state, resume_path, save_training_state, trim_metrics
from utils.schedulers import CosineLR, LossMonitor, TrainingParamSchedulers
from utils.seed import make_generator, seed_everything

# validation figures recorded per epoch (the last three only where the true modes are known)
VAL_KEYS = ("ged", "miou", "ece", "true_ged", "ged_ratio", "mode_mass_error")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command line: a config file, an optional demo split and setting overrides."""
    p = argparse.ArgumentParser(description="Train or evaluate MoSE.")
    p.add_argument("config", help="config file, e.g. experiments/lidc_proposed.py")
    p.add_argument("--demo", choices=("train", "val", "test"),
                   help="evaluate the best checkpoint on this split instead of training")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting with a Python literal (repeatable)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="overrides the config's device")
    p.add_argument("--ckpt", help="--demo: weights to evaluate instead of the run's best")
    p.add_argument("--resume", action="store_true",
                   help="continue training from the run folder's state (last completed epoch)")
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = p.parse_args(argv)
    if args.resume and args.demo:
        p.error("--resume continues a training run; it cannot be combined with --demo")
    return args


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available to torch; "
                         "use --device cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def prepare_data(cfg: Config) -> None:
    """Generate the synthetic set into `data_folder` if the config asks and it is absent."""
    if cfg.synthetic is None or Path(cfg.data_folder).exists():
        return
    from data.synthetic import make_cityscapes, make_lidc

    logger.info(f"generating synthetic {cfg.synthetic} data into {cfg.data_folder}")
    make = make_lidc if cfg.synthetic == "lidc" else make_cityscapes
    make(cfg.data_folder, **cfg.synthetic_options)


def build_loaders(cfg: Config, splits: tuple) -> Dict[str, Any]:
    """DataLoaders of `splits` with the config's batch sizes, workers and annotation range.

    Under DDP the training split gets a DistributedSampler (each rank `train_batch_size` images
    per step); evaluation loaders stay whole and in order (`shard_eval_loader` shares them out).
    """
    return {split: build_dataloaders(
        cfg.dataset, cfg.data_folder, train_batch_size=cfg.train_batch_size,
        val_batch_size=cfg.val_batch_size, test_batch_size=cfg.test_batch_size, num_w=cfg.num_w,
        label_range=cfg.label_range, use_bbpred=cfg.use_bbpred, seed=cfg.seed, splits=(split,),
        bbpred_channel=cfg.input_channels == 4 if cfg.dataset == "cityscapes" else None,
        distributed=split == "train" and distributed.is_distributed())[split]
        for split in splits}


def build_model(cfg: Config) -> MoSE:
    """The MoSE model described by the config (compiled in place when `compile` is set)."""
    model = MoSE(input_channels=cfg.input_channels, num_classes=cfg.n_classes,
                 num_filters=cfg.num_filters, latent_dim=cfg.latent_dim,
                 num_expert=cfg.num_expert, sample_per_mode=cfg.sample_per_mode,
                 softmax=cfg.softmax, masked_pred=cfg.masked_pred,
                 eval_sample_num=cfg.eval_sample_num, fast_head=cfg.fast_head,
                 channels_last=cfg.channels_last, amp=cfg.amp)
    if cfg.compile:
        model.compile()  # in place: state_dict keys (and checkpoints) stay unprefixed
    return model


def build_loss(cfg: Config) -> OTLoss:
    """The OT loss described by the config."""
    return OTLoss(cost_fn=cfg.cost_fn, beta=cfg.beta, gamma0=cfg.gamma0, G0=cfg.G0,
                  num_chunks=cfg.num_chunks, coupling=cfg.coupling)


def run_dir_of(cfg: Config) -> Path:
    """log/<log_dir_name>/<experiment_name>: checkpoints, logs and results of a run."""
    return Path(cfg.log_root) / cfg.log_dir_name / cfg.experiment_name


def validate_and_save(model: MoSE, optimizer: torch.optim.Optimizer, loader: Any, cfg: Config,
                      device: torch.device, run_dir: Path, best_ged: float) -> tuple:
    """Validate; save weights and optimizer state if the GED is <= the best so far.

    Under DDP every rank evaluates its share of the batches and gets the same results; rank 0
    saves (its BatchNorm statistics are first copied to every rank).

    Returns:
        (validation results dict, new best GED).
    """
    distributed.broadcast_buffers(model)
    results = evaluate(model, shard_eval_loader(loader), cfg, device, desc="val")
    if results["ged"] <= best_ged:
        best_ged = results["ged"]
        name = cfg.experiment_name
        if is_main():
            save_checkpoint(model.state_dict(), run_dir / f"{name}_best_ged.pth")
            save_checkpoint(optimizer.state_dict(), run_dir / f"{name}_best_ged_optim.pth")
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


def build_training(cfg: Config, model: MoSE, loss_fn: OTLoss) -> Dict[str, Any]:
    """Optimizer, learning-rate scheduler, gamma / S / G schedulers and the loss monitor.

    Every entry has `state_dict` / `load_state_dict`, so a run's state is their union.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.lr_schedule == "plateau":
        lr_scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer,
                                                                  **cfg.scheduler_options)
    else:
        lr_scheduler = CosineLR(optimizer, min_lr=cfg.scheduler_options.get("min_lr", 0.0))
    param_schedulers = TrainingParamSchedulers(model, loss_fn, cfg.gamma_scheduler_options,
                                               cfg.S_scheduler_options, cfg.G_scheduler_options)
    return dict(optimizer=optimizer, lr_scheduler=lr_scheduler,
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


def end_of_epoch(cfg: Config, parts: Dict[str, Any], epoch: int, planned: int) -> list:
    """Step the learning-rate and gamma / S / G schedulers on the monitored training loss."""
    monitor = parts["monitor"]
    if cfg.lr_schedule == "plateau":
        parts["lr_scheduler"].step(monitor.monitored("loss"))
    else:
        parts["lr_scheduler"].step(epoch, planned)
    return parts["param_schedulers"].step(monitor.monitored("loss"), monitor.monitored("kl"),
                                          epoch)


def setup_training(cfg: Config, device: torch.device, run_dir: Path, resume: bool) -> dict:
    """Loaders, model, loss, optimizer and schedulers, writer, generators and the progress so
    far: restored from the run's resume state, or from a first validation (epoch 0).

    Returns:
        dict with `loaders`, `model` (unwrapped), `ddp_model` (what trains: DDP or the model),
        `loss_fn`, `parts`, `writer`, `generators` and `progress` (epoch, best_ged, planned,
        elapsed seconds).
    """
    loaders = build_loaders(cfg, ("train", "val"))
    for split, loader in loaders.items():
        if len(loader) == 0:  # the last incomplete batch is dropped in training and validation
            raise ValueError(f"the {split} split of {cfg.data_folder} has {len(loader.dataset)} "
                             f"images, fewer than {split}_batch_size={cfg[split + '_batch_size']}"
                             f": lower {split}_batch_size")
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
    run = dict(loaders=loaders, model=model, loss_fn=loss_fn, parts=parts, writer=writer,
               generators=generators)
    if resume:  # the random states are restored last: nothing below draws from them
        progress = load_training_state(resume_path(run_dir, cfg.experiment_name), model, parts,
                                       generators, cfg)
        if is_main():
            trim_metrics(run_dir / "metrics.jsonl", progress["epoch"])
    else:
        progress = first_validation(run, cfg, device, run_dir)
    return dict(run, progress=progress, ddp_model=distributed.wrap(model, device))


def first_validation(run: dict, cfg: Config, device: torch.device, run_dir: Path) -> dict:
    """Validate before the first epoch (epoch 0 of the logs).

    Returns:
        The progress of a fresh run: epoch 0, the best GED so far, `epochs` planned.
    """
    model, writer, loader = run["model"], run["writer"], run["loaders"]["val"]
    val, best_ged = validate_and_save(model, run["parts"]["optimizer"], loader, cfg, device,
                                      run_dir, math.inf)
    tensorboard_sample_grid(writer.tb, model, loader, cfg, device, 0)
    log_epoch(writer, cfg, {"epoch": 0, **{f"val_{k}": v for k, v in val.items()
                                           if k in VAL_KEYS}}, [])
    return dict(epoch=0, best_ged=best_ged, planned=cfg.epochs, elapsed=0.0)


def train(cfg: Config, device: torch.device, run_dir: Path, resume: bool = False) -> float:
    """Train with the config's protocol; checkpoints go to `run_dir` (written by rank 0).

    The resume state is saved at the end of every epoch, so a run killed during an epoch
    continues from the end of the last completed one.

    Args:
        cfg: the run's settings.
        device: this process' device.
        run_dir: the run folder.
        resume: continue from `<experiment_name>_resume.pth` instead of starting afresh.
    Returns:
        The best validation GED.
    """
    run = setup_training(cfg, device, run_dir, resume)
    model, parts, writer = run["model"], run["parts"], run["writer"]
    val_loader, optimizer = run["loaders"]["val"], parts["optimizer"]
    epoch, planned, best_ged = (run["progress"][k] for k in ("epoch", "planned", "best_ged"))
    start = time.time() - run["progress"]["elapsed"]
    while epoch < planned:
        epoch += 1
        used = {**parts["param_schedulers"].values(), "lr": optimizer.param_groups[0]["lr"]}
        stats = train_one_epoch(run["ddp_model"], run["loaders"]["train"], run["loss_fn"],
                                optimizer, parts["monitor"], device, cfg.masked_pred,
                                run["generators"]["latent"], epoch, deadline(cfg, start))
        planned = epoch if stats["cut_short"] else planned_epochs(cfg, start, epoch, planned)
        record = {"epoch": epoch, **{f"train_{k}": v for k, v in stats.items()}, **used}
        if epoch % cfg.validation_frequency == 0 or epoch == planned:
            val, best_ged = validate_and_save(model, optimizer, val_loader, cfg, device,
                                              run_dir, best_ged)
            tensorboard_sample_grid(writer.tb, model, val_loader, cfg, device, epoch)
            record.update({f"val_{k}": v for k, v in val.items() if k in VAL_KEYS})
        log_epoch(writer, cfg, record, end_of_epoch(cfg, parts, epoch, planned))
        progress = dict(epoch=epoch, best_ged=best_ged, planned=planned,
                        elapsed=time.time() - start)
        save_training_state(resume_path(run_dir, cfg.experiment_name), model, parts, progress,
                            run["generators"], cfg)
    if planned < cfg.epochs:
        logger.info(f"max_train_minutes={cfg.max_train_minutes}: stopped after {planned} epochs")
    if is_main():
        save_checkpoint(model.state_dict(), run_dir / f"{cfg.experiment_name}_last.pth")
    writer.close()
    logger.info(f"training done in {(time.time() - start) / 60:.1f} min; best val GED "
                f"{best_ged:.4f}")
    return best_ged


def evaluate_checkpoint(cfg: Config, split: str, ckpt: Path, device: torch.device,
                        run_dir: Path) -> Dict[str, Any]:
    """Evaluate weights on a split; write `<run_dir>/<split>/results_<tag>.json`, the figures,
    the mode calibration and (with `sweep`) the sample-count sweep (`utils.report`).

    Returns:
        The results dict (ged, miou, ece fraction, num_images, representation, ...).
    """
    loader = build_loaders(cfg, (split,))[split]
    model = build_model(cfg).to(device)
    load_model_weights(model, ckpt)
    results = evaluate(model, shard_eval_loader(loader), cfg, device, desc=split)
    tag = result_tag(results["representation"], results["num_samples"], cfg.sample_per_mode)
    results.update(split=split, tag=tag, checkpoint=str(ckpt), config=dict(cfg))
    if not is_main():  # every rank holds the gathered results; rank 0 writes them
        return results
    path = run_dir / split / f"results_{tag}.json"
    write_json(path, results)
    logger.info(summary_line(split, results))
    logger.info(f"results written to {path}")
    analyse_split(model, loader, cfg, device, run_dir / split, results)
    return results


def default_checkpoint(cfg: Config, run_dir: Path, ckpt: Optional[str]) -> Path:
    """--ckpt, else pretrained_model_full_path, else the run folder's best-GED weights."""
    path = Path(ckpt or cfg.pretrained_model_full_path
                or run_dir / f"{cfg.experiment_name}_best_ged.pth")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found: train first "
                                f"(python main.py {cfg.config_file}) or pass --ckpt PATH")
    return path


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run the command line; returns the test/demo results (or the best validation GED).

    Launched by torchrun, every process runs this inside one process group (`utils.distributed`).
    """
    args = parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.device:
        cfg["device"] = args.device
    device = distributed.setup(resolve_device(cfg.device))
    try:
        with out_of_memory_hint(cfg, args.demo):
            return run_command(args, cfg, device)
    finally:
        distributed.cleanup()


def run_command(args: argparse.Namespace, cfg: Config, device: torch.device) -> Dict[str, Any]:
    """Train (fresh or resumed) or evaluate, as the command line asks; only rank 0 writes."""
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(run_dir / "log.txt" if is_main() else None,
                  logging.INFO if is_main() else logging.WARNING)
    mode = "demo " + args.demo if args.demo else "resume" if args.resume else "train"
    logger.info(f"{mode}: {args.config} -> {run_dir}")
    logger.info("config: " + json.dumps(cfg, sort_keys=True))
    if device.type == "cpu" and cfg.cpu_malloc_reuse:
        reuse_freed_memory()
    seed_everything(cfg.seed)
    if is_main():
        prepare_data(cfg)
    distributed.barrier()  # the other ranks read what rank 0 generated
    if args.demo:
        ckpt = default_checkpoint(cfg, run_dir, args.ckpt)
        return evaluate_checkpoint(cfg, args.demo, ckpt, device, run_dir)
    if is_main():
        write_json(run_dir / "config.json", cfg)
        shutil.copy(args.config, run_dir / Path(args.config).name)
    best_ged = train(cfg, device, run_dir, resume=args.resume)
    if not cfg.test_after_training:
        return {"best_val_ged": best_ged}
    ckpt = run_dir / f"{cfg.experiment_name}_best_ged.pth"
    return evaluate_checkpoint(cfg, "test", ckpt, device, run_dir)


def cli() -> None:
    """Entry point: user errors end with a one-line message unless --debug is given."""
    try:
        main()
    except USER_ERRORS as err:
        if "--debug" in sys.argv:
            raise
        log_to_files(error_line(err))
        sys.exit(error_line(err))


if __name__ == "__main__":
    cli()
