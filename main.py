"""Train or evaluate MoSE (Mixture of Stochastic Experts, ICLR 2023).

    python main.py CONFIG                         # train (then test, if the config asks)
    python main.py CONFIG --demo test             # evaluate the best checkpoint on a split
    python main.py CONFIG --predict IMAGES --out DIR   # predictions + uncertainty for new images
    python main.py CONFIG --set lr=5e-4 --set eval_sample_num=16 --device cpu
    python main.py CONFIG --resume                # continue from the last completed epoch
    python main.py CONFIG --fastest               # bf16 / compiled head where the machine has them
    torchrun --nproc_per_node=G main.py CONFIG    # G processes (DDP): docs/distributed.md

The protocol is the trainer's (`utils/training/trainer.py`), evaluation `utils/evaluation/`, its
figures and pages `utils/reports/`; heavy modules load once the config is valid.
"""

import argparse
import json
import logging
import sys
from typing import Any, Dict, List, Optional

from utils.config.errors import USER_ERRORS, error_line


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command line: a config file, an optional demo split and setting overrides."""
    p = argparse.ArgumentParser(description="Train or evaluate MoSE.")
    p.add_argument("config", help="config file, e.g. experiments/lidc_proposed.py")
    p.add_argument("--demo", choices=("train", "val", "test"),
                   help="evaluate the best checkpoint on this split instead of training")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a setting with a Python literal (repeatable)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="overrides the config's device")
    p.add_argument("--fastest", action="store_true",
                   help="bf16 autocast and the compiled head where this machine runs them fast "
                        "(the same as --set fastest=True; docs/performance.md)")
    p.add_argument("--predict", metavar="INPUT",
                   help="predict an image file or every image of a folder (needs --out)")
    p.add_argument("--out", metavar="DIR", help="--predict: output folder")
    p.add_argument("--no-figures", action="store_true",
                   help="--predict: arrays and CSV only, no PNG (figures take most of the time)")
    p.add_argument("--ckpt", help="--demo/--predict: weights to use instead of the run's best")
    p.add_argument("--resume", action="store_true",
                   help="continue training from the run folder's state (last completed epoch); "
                        "starts from scratch when the run has none yet")
    p.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    args = p.parse_args(argv)
    if args.resume and args.demo:
        p.error("--resume continues a training run; it cannot be combined with --demo")
    if args.predict and (args.demo or args.resume or not args.out):
        p.error("--predict INPUT needs --out DIR and no --demo or --resume")
    return args


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """Run the command line; returns the test/demo results (or the best validation GED).

    Launched by torchrun, every process runs this inside one process group (`utils.runtime`).
    """
    args = parse_args(argv)
    cfg = load_run_config(args)
    from utils.build import resolve_device
    from utils.config.errors import out_of_memory_hint
    from utils.runtime import distributed

    device = distributed.setup(resolve_device(cfg.device))
    try:
        with out_of_memory_hint(cfg, "test" if args.predict else args.demo):
            return run_command(args, cfg, device)
    finally:
        distributed.cleanup()


def load_run_config(args: argparse.Namespace) -> Any:
    """The run's settings: the config file, `--set` items, `--fastest` and `--device`."""
    from utils.config.config import load_config

    cfg = load_config(args.config, args.overrides + ["fastest=True"] * args.fastest)
    if args.device:
        cfg["device"] = args.device
    return cfg


def run_command(args: argparse.Namespace, cfg: Any, device: Any) -> Dict[str, Any]:
    """Set up the run folder, logging and seeds; then train (and test) or evaluate."""
    from utils.build import prepare_data, run_dir_of
    from utils.evaluation.run import default_checkpoint
    from utils.runtime import distributed
    from utils.runtime.cpu_memory import reuse_freed_memory
    from utils.runtime.fastest import apply_fastest
    from utils.runtime.logger import logger, setup_logging
    from utils.runtime.seed import seed_everything

    run_dir = run_dir_of(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    distributed.check_shared_folder(run_dir)  # multi-node: rank 0's files reach every rank
    main_rank = distributed.is_main()
    setup_logging(run_dir / "log.txt" if main_rank else None,
                  logging.INFO if main_rank else logging.WARNING)
    mode = ("predict " + args.predict if args.predict else "demo " + args.demo if args.demo
            else "resume" if args.resume else "train")
    logger.info(f"{mode}: {args.config} -> {run_dir}")
    apply_fastest(cfg, device)  # amp and compile_head for this device, with `fastest`
    logger.info("config: " + json.dumps(cfg, sort_keys=True))
    if device.type == "cpu" and cfg.cpu_malloc_reuse:
        reuse_freed_memory()
    seed_everything(cfg.seed)
    if args.predict:
        if not distributed.first_process_only("--predict"):
            return {}
        from utils.reports.prediction import run_prediction

        ckpt = default_checkpoint(cfg, run_dir, args.ckpt)
        return run_prediction(cfg, args.predict, args.out, ckpt, device, not args.no_figures)
    if main_rank:
        prepare_data(cfg)
    distributed.barrier()  # the other ranks read what rank 0 generated
    if args.demo:
        from utils.reports.analyses import report_checkpoint

        ckpt = default_checkpoint(cfg, run_dir, args.ckpt)
        return report_checkpoint(cfg, args.demo, ckpt, device, run_dir)
    from utils.training.trainer import train_and_test

    return train_and_test(cfg, args.config, device, resume=args.resume)


def cli() -> None:
    """Entry point: user errors and Ctrl-C end with one line unless --debug is given."""
    try:
        main()
    except (KeyboardInterrupt, *USER_ERRORS) as err:
        if "--debug" in sys.argv:
            raise
        line = ("interrupted: the state of the last completed epoch is kept; continue the run "
                "with --resume") if isinstance(err, KeyboardInterrupt) else error_line(err)
        from utils.runtime.logger import log_to_files

        log_to_files(line)
        sys.exit(line)


if __name__ == "__main__":
    cli()
