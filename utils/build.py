"""From a config to the objects of a run: device, data, model and training objective.

The one place that reads settings to construct things, so that training (`utils.training`),
evaluation (`utils.evaluation.run`) and prediction build them identically; what differs
between datasets and between methods it looks up in their specs (`data.specs`,
`utils.methods`).
"""

import inspect
import json
from pathlib import Path
from typing import Any, Dict

import torch

from data import build_dataloaders
from data.specs import dataset_spec
from utils.config.config import Config
from utils.methods import method_spec
from utils.runtime import distributed
from utils.runtime.logger import logger


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda if available else cpu; 'cuda' without a GPU is an error."""
    if name == "cuda" and not torch.cuda.is_available():
        under_torchrun = (" (torchrun's processes then use gloo instead of NCCL)"
                          if distributed.launched_by_torchrun() else "")
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available to torch; "
                         "use --device cpu" + under_torchrun)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def prepare_data(cfg: Config) -> None:
    """Check the data where the dataset's spec has a check (the folder dataset: every problem
    logged, the first raised); generate the synthetic set into `data_folder` if the config asks
    and it is absent."""
    spec = dataset_spec(cfg.dataset)
    if spec.check is not None:
        spec.check(cfg, logger.error)
        logger.info(f"data_folder {cfg.data_folder}: checked, no problems")
    if cfg.synthetic is None:
        return
    make = dataset_spec(cfg.synthetic).synthetic()
    folder = Path(cfg.data_folder)
    if folder.exists():  # never replaced behind the user's back: a set made by hand is kept
        stale = stale_synthetic_settings(folder, make, cfg.synthetic_options)
        if stale:
            logger.warning(f"the synthetic data in {folder} was generated with other settings "
                           f"than synthetic_options ({stale}); using it as it is. Delete the "
                           "folder to generate it with the config's settings")
        return
    logger.info(f"generating synthetic {cfg.synthetic} data into {folder}")
    make(str(folder), **cfg.synthetic_options)


def stale_synthetic_settings(folder: Path, make: Any, options: Dict[str, Any]) -> str:
    """Which generator settings of an existing synthetic set differ from `options` ('' if none,
    or if the folder holds no synthetic set: real data is never replaced).

    Args:
        folder: dataset root; its `synthetic_info.json` records the generator's settings.
        make: the generator (`make_lidc` / `make_cityscapes`), for its defaults.
        options: the config's `synthetic_options`.
    """
    info_file = folder / "synthetic_info.json"
    if not info_file.is_file():
        return ""
    info = json.loads(info_file.read_text())
    defaults = {name: par.default for name, par in inspect.signature(make).parameters.items()
                if par.default is not inspect.Parameter.empty and name != "overwrite"}
    recorded = dict(defaults, **info,  # settings added later: older sets used the default
                    **{f"n_{split}": n for split, n in info.get("counts", {}).items()})
    differ = []
    for name, value in dict(defaults, **options).items():
        value = list(value) if isinstance(value, tuple) else value
        have = recorded[name]
        if have != value:
            differ.append(f"{name} {have!r} -> {value!r}")
    return ", ".join(differ)


def build_loaders(cfg: Config, splits: tuple, shard_train: bool = True) -> Dict[str, Any]:
    """DataLoaders of `splits` with the config's batch sizes, workers and annotation range.

    Under DDP the training split gets a DistributedSampler (each rank `train_batch_size` images
    per step) unless `shard_train` is False; evaluation loaders stay whole and in order
    (`shard_eval_loader` shares them out).
    """
    return {split: build_dataloaders(
        cfg.dataset, cfg.data_folder, train_batch_size=cfg.train_batch_size,
        val_batch_size=cfg.val_batch_size, test_batch_size=cfg.test_batch_size, num_w=cfg.num_w,
        label_range=cfg.label_range, use_bbpred=cfg.use_bbpred, seed=cfg.seed, splits=(split,),
        input_channels=cfg.input_channels, n_classes=cfg.n_classes,
        distributed=split == "train" and shard_train and distributed.is_distributed())[split]
        for split in splits}


def build_model(cfg: Config) -> torch.nn.Module:
    """The model of `cfg.method` described by the config (the method's spec builds it)."""
    return method_spec(cfg.method).build_model(cfg)


def build_loss(cfg: Config) -> Any:
    """The training loss of `cfg.method` (the method's spec builds it): MoSE's OT loss, the
    Prob. U-Net's negative ELBO or SSN's Monte-Carlo NLL, each called through
    `utils.loss.objective` by the engine."""
    return method_spec(cfg.method).build_loss(cfg)


def run_dir_of(cfg: Config) -> Path:
    """log/<log_dir_name>/<experiment_name>: checkpoints, logs and results of a run."""
    return Path(cfg.log_root) / cfg.log_dir_name / cfg.experiment_name
