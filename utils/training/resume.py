"""Exact resume of a training run from its own folder: `<experiment_name>_resume.pth`.

Written atomically (`utils.runtime.checkpoint.save_checkpoint`) at the end of every epoch, it holds
what the next epoch depends on: the model weights (unwrapped, no `module.` prefix), the optimizer,
the learning-rate scheduler, the gamma / S / G schedulers with their counters, the loss monitor with
its running means, the epoch, the best validation GED, the planned number of epochs, the training
time so far, and every rank's random states (python, numpy, torch CPU and CUDA, the training
DataLoader's generator, which fixes the data order and worker seeds, and the latent sampling
generator). Everything is stored as tensors and plain Python values, so the file loads with
`torch.load(weights_only=True)`. A run killed during an epoch resumes from the end of the last
completed one; on a CPU with the same settings the resumed run is bit-identical to an uninterrupted
one.
"""

import json
import logging
import random
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import torch
from torch import nn

from utils.runtime.checkpoint import load_model_weights, save_checkpoint
from utils.runtime.distributed import gather_objects, is_main, rank, unwrap, world_size
from utils.training.state import Progress, TrainingParts

logger = logging.getLogger("mose")

STATE_VERSION = 1
# settings that may change between a run and its resumption without a warning
FREE_TO_CHANGE = ("epochs", "max_train_minutes", "num_w", "device", "logging_frequency",
                  "test_after_training", "num_figures", "sweep", "cpu_malloc_reuse")


def resume_path(run_dir: Path, experiment_name: str) -> Path:
    """`<run_dir>/<experiment_name>_resume.pth`."""
    return Path(run_dir) / f"{experiment_name}_resume.pth"


def rng_state(generators: Dict[str, torch.Generator]) -> Dict[str, Any]:
    """This process' random states as tensors and plain values (weights_only-loadable).

    Args:
        generators: name -> generator, e.g. the DataLoader's and the latent sampler's.
    Returns:
        dict with `python`, `numpy`, `torch`, `cuda` and one entry per generator.
    """
    version, keys, gauss = random.getstate()
    _, np_keys, pos, has_gauss, cached = np.random.get_state()
    state = dict(python=[version, list(keys), gauss],
                 numpy=dict(keys=torch.from_numpy(np_keys.astype(np.int64)), pos=int(pos),
                            has_gauss=int(has_gauss), cached=float(cached)),
                 torch=torch.get_rng_state(),
                 cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])
    state.update({name: g.get_state() for name, g in generators.items()})
    return state


def restore_rng(state: Dict[str, Any], generators: Dict[str, torch.Generator]) -> None:
    """Set the random states that `rng_state` returned.

    Args:
        state: `rng_state` output.
        generators: the same names as when saved.
    """
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys), gauss))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, generator in generators.items():
        generator.set_state(state[name])


def save_training_state(path: Path, model: nn.Module, parts: TrainingParts, progress: Progress,
                        generators: Dict[str, torch.Generator], cfg: Dict[str, Any]) -> None:
    """Write the resume state (rank 0; under DDP every rank must call it: RNGs are gathered).

    Args:
        path: the resume file.
        model: the model (unwrapped or DDP).
        parts: the optimizer, schedulers and loss monitor (`utils.training.trainer.build_training`).
        progress: where the run stands.
        generators: the generators `rng_state` saves.
        cfg: the run's settings (compared on resume).
    """
    rngs = gather_objects([rng_state(generators)])  # one entry per rank, in rank order
    if not is_main():
        return
    state = dict(version=STATE_VERSION, model=unwrap(model).state_dict(), **parts.state_dicts(),
                 progress=progress.state_dict(), rng=rngs, world_size=world_size(),
                 config=json.loads(json.dumps(dict(cfg), default=str)))
    save_checkpoint(state, path)


def load_training_state(path: Path, model: nn.Module, parts: TrainingParts,
                        generators: Dict[str, torch.Generator], cfg: Dict[str, Any]) -> Progress:
    """Restore a run from its resume file; the random states are restored last.

    Args:
        path: the resume file.
        model, parts, generators, cfg: as for `save_training_state`, freshly built.
    Returns:
        The saved progress (`planned` reset to `epochs` when that setting changed).
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"no resume state {path}: this run has not completed an epoch; "
                                "start it without --resume")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"{path} has resume-state version {state.get('version')}, expected "
                         f"{STATE_VERSION}: start the run again without --resume")
    _warn_changed_settings(state["config"], cfg)
    load_model_weights(model, state["model"])
    parts.load_state_dicts(state)
    progress = Progress(**state["progress"])
    if state["config"].get("epochs") != cfg["epochs"]:
        progress.planned = cfg["epochs"]
    restore_rng(_own_rng(state["rng"]), generators)
    if rank() >= len(state["rng"]) and "latent" in generators:
        # a rank the saved run did not have: its own latent stream, not a copy of rank 0's
        generators["latent"].manual_seed(new_rank_seed(cfg["seed"], rank(), progress.epoch))
    logger.info(f"resumed from {path}: epoch {progress.epoch} done, best val GED "
                f"{progress.best_ged:.4f}")
    return progress


def _own_rng(rngs: List[Dict[str, Any]]) -> Dict[str, Any]:
    """This rank's saved random states; rank 0's for a rank the saved run did not have (the
    caller then reseeds that rank's latent generator with `new_rank_seed`)."""
    if len(rngs) != world_size():
        logger.warning(f"the run was saved with {len(rngs)} processes and resumes with "
                       f"{world_size()}: the data order and sampling will differ from an "
                       "uninterrupted run")
    return rngs[rank()] if rank() < len(rngs) else rngs[0]


def new_rank_seed(seed: int, rank_: int, epoch: int) -> int:
    """The latent generator's seed of a rank that joins a resumed run at `epoch`.

    It mixes the run's seed, the rank and the epoch, away from the `seed + rank` seeds of a fresh
    run, so the joining rank does not repeat another rank's latent samples.
    """
    return (seed * 1_000_003 + rank_ * 10_007 + epoch + 1) % 2**63


def _warn_changed_settings(saved: Dict[str, Any], cfg: Dict[str, Any]) -> None:
    current = json.loads(json.dumps(dict(cfg), default=str))
    changed = [k for k in current if k not in FREE_TO_CHANGE and saved.get(k) != current[k]]
    if changed:
        logger.warning(f"settings changed since the run was saved: {changed}; the resumed run "
                       "continues with the new values")


def trim_metrics(path: Path, last_epoch: int) -> None:
    """Drop the records of epochs after `last_epoch` from metrics.jsonl (a killed epoch's).

    Args:
        path: the run's metrics.jsonl (nothing happens if absent).
        last_epoch: the last completed epoch of the resume state.
    """
    path = Path(path)
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    kept = [ln for ln in lines if ln.strip() and json.loads(ln).get("epoch", 0) <= last_epoch]
    if len(kept) != len(lines):
        path.write_text("".join(ln + "\n" for ln in kept))
