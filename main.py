"""Train or evaluate MoSE (Mixture of Stochastic Experts, ICLR 2023).

    python main.py CONFIG                         # train (then test, if the config asks)
    python main.py CONFIG --demo test             # evaluate the best checkpoint on a split
    python main.py CONFIG --set lr=5e-4 --set eval_sample_num=16 --device cpu

The protocol: validate before the first epoch and every `validation_frequency` epochs, keep the
checkpoint with the lowest validation GED, step the LR and gamma / S / G schedulers on the
monitored training loss after every epoch, save the last weights at the end.
"""

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from data import build_dataloaders
from models import MoSE
from utils.checkpoint import load_model_weights, save_checkpoint
from utils.config import Config, ConfigError, load_config
from utils.cpu_memory import reuse_freed_memory
from utils.engine import evaluate, train_one_epoch
from utils.logger import MetricsWriter, log_to_files, logger, setup_logging, write_json
from utils.ot_loss import OTLoss
from utils.report import analyse_split, tensorboard_sample_grid
from utils.results import result_tag, summary_line
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
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    return p.parse_args(argv)


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
    """DataLoaders of `splits` with the config's batch sizes, workers and annotation range."""
    return build_dataloaders(
        cfg.dataset, cfg.data_folder, train_batch_size=cfg.train_batch_size,
        val_batch_size=cfg.val_batch_size, test_batch_size=cfg.test_batch_size, num_w=cfg.num_w,
        label_range=cfg.label_range, use_bbpred=cfg.use_bbpred, seed=cfg.seed, splits=splits,
        bbpred_channel=cfg.input_channels == 4 if cfg.dataset == "cityscapes" else None)


def build_model(cfg: Config) -> MoSE:
    """The MoSE model described by the config."""
    return MoSE(input_channels=cfg.input_channels, num_classes=cfg.n_classes,
                num_filters=cfg.num_filters, latent_dim=cfg.latent_dim,
                num_expert=cfg.num_expert, sample_per_mode=cfg.sample_per_mode,
                softmax=cfg.softmax, masked_pred=cfg.masked_pred,
                eval_sample_num=cfg.eval_sample_num, fast_head=cfg.fast_head,
                channels_last=cfg.channels_last)


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

    Returns:
        (validation results dict, new best GED).
    """
    results = evaluate(model, loader, cfg, device, make_generator(cfg.eval_seed, device),
                       desc="val")
    if results["ged"] <= best_ged:
        best_ged = results["ged"]
        name = cfg.experiment_name
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


def end_of_epoch(cfg: Config, parts: Dict[str, Any], epoch: int, planned: int) -> list:
    """Step the learning-rate and gamma / S / G schedulers on the monitored training loss."""
    monitor = parts["monitor"]
    if cfg.lr_schedule == "plateau":
        parts["lr_scheduler"].step(monitor.monitored("loss"))
    else:
        parts["lr_scheduler"].step(epoch, planned)
    return parts["param_schedulers"].step(monitor.monitored("loss"), monitor.monitored("kl"),
                                          epoch)


def train(cfg: Config, device: torch.device, run_dir: Path) -> float:
    """Train with the config's protocol; checkpoints go to `run_dir`.

    Returns:
        The best validation GED.
    """
    loaders = build_loaders(cfg, ("train", "val"))
    for split, loader in loaders.items():
        if len(loader) == 0:  # the last incomplete batch is dropped in training and validation
            raise ValueError(f"the {split} split of {cfg.data_folder} has {len(loader.dataset)} "
                             f"images, fewer than {split}_batch_size={cfg[split + '_batch_size']}"
                             f": lower {split}_batch_size")
    model = build_model(cfg).to(device)
    if cfg.pretrained_model_full_path:
        load_model_weights(model, cfg.pretrained_model_full_path)
    loss_fn = build_loss(cfg)
    parts = build_training(cfg, model, loss_fn)
    optimizer = parts["optimizer"]
    writer = MetricsWriter(run_dir / "metrics.jsonl",
                           Path(cfg.run_root) / cfg.log_dir_name / cfg.experiment_name)
    generator = make_generator(cfg.seed, device)
    logger.info(f"{sum(p.numel() for p in model.parameters()):,} parameters, "
                f"{len(loaders['train'].dataset)} training images, device {device}")
    val, best_ged = validate_and_save(model, optimizer, loaders["val"], cfg, device, run_dir,
                                      math.inf)
    tensorboard_sample_grid(writer.tb, model, loaders["val"], cfg, device, 0)
    log_epoch(writer, cfg, {"epoch": 0, **{f"val_{k}": v for k, v in val.items()
                                           if k in VAL_KEYS}}, [])
    start, planned = time.time(), cfg.epochs
    for epoch in range(1, cfg.epochs + 1):
        used = {**parts["param_schedulers"].values(), "lr": optimizer.param_groups[0]["lr"]}
        stats = train_one_epoch(model, loaders["train"], loss_fn, optimizer, parts["monitor"],
                                device, cfg.masked_pred, generator, epoch)
        planned = planned_epochs(cfg, start, epoch, planned)
        record = {"epoch": epoch, **{f"train_{k}": v for k, v in stats.items()}, **used}
        if epoch % cfg.validation_frequency == 0 or epoch == planned:
            val, best_ged = validate_and_save(model, optimizer, loaders["val"], cfg, device,
                                              run_dir, best_ged)
            tensorboard_sample_grid(writer.tb, model, loaders["val"], cfg, device, epoch)
            record.update({f"val_{k}": v for k, v in val.items() if k in VAL_KEYS})
        log_epoch(writer, cfg, record, end_of_epoch(cfg, parts, epoch, planned))
        if epoch == planned:
            break
    if planned < cfg.epochs:
        logger.info(f"max_train_minutes={cfg.max_train_minutes}: stopped after {planned} epochs")
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
    results = evaluate(model, loader, cfg, device, make_generator(cfg.eval_seed, device),
                       desc=split)
    tag = result_tag(results["representation"], results["num_samples"], cfg.sample_per_mode)
    results.update(split=split, tag=tag, checkpoint=str(ckpt), config=dict(cfg))
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
    """Run the command line; returns the test/demo results (or the best validation GED)."""
    args = parse_args(argv)
    cfg = load_config(args.config, args.overrides)
    if args.device:
        cfg["device"] = args.device
    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    setup_logging(run_dir / "log.txt")
    logger.info(f"{'demo ' + args.demo if args.demo else 'train'}: {args.config} -> {run_dir}")
    logger.info("config: " + json.dumps(cfg, sort_keys=True))
    device = resolve_device(cfg.device)
    if device.type == "cpu" and cfg.cpu_malloc_reuse:
        reuse_freed_memory()
    seed_everything(cfg.seed)
    prepare_data(cfg)
    if args.demo:
        ckpt = default_checkpoint(cfg, run_dir, args.ckpt)
        return evaluate_checkpoint(cfg, args.demo, ckpt, device, run_dir)
    write_json(run_dir / "config.json", cfg)
    shutil.copy(args.config, run_dir / Path(args.config).name)
    best_ged = train(cfg, device, run_dir)
    if not cfg.test_after_training:
        return {"best_val_ged": best_ged}
    ckpt = run_dir / f"{cfg.experiment_name}_best_ged.pth"
    return evaluate_checkpoint(cfg, "test", ckpt, device, run_dir)


def cli() -> None:
    """Entry point: user errors end with a one-line message unless --debug is given."""
    try:
        main()
    except (ConfigError, FileNotFoundError, ValueError, FloatingPointError) as err:
        if "--debug" in sys.argv:
            raise
        log_to_files(f"error: {err}")
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    cli()
