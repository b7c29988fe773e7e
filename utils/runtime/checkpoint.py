"""Checkpoint files: atomic saving and strict loading of our files and the authors'.

Our `<name>_best_ged.pth` and `_last.pth` hold a plain model state_dict, the same layout as the
authors' released files except for the `module.` prefix DataParallel adds to theirs, which is
removed on load. Files wrapping the weights in a dict under `model` or `state_dict` also load.
"""

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Dict, Union

import torch
from torch import nn

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
PREFIXES = ("module.", "_orig_mod.")


def save_checkpoint(obj: Any, path: Union[str, os.PathLike]) -> None:
    """Write `obj` with torch.save to a temporary file in the same folder, then rename it.

    A crash during the write leaves any previous file at `path` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_state_dict(path_or_state_dict: Union[str, os.PathLike, Mapping]) -> Dict[str, Any]:
    """Return a model state_dict with wrapper dicts and `module.` / `_orig_mod.` prefixes removed.

    Raises:
        FileNotFoundError: if a path is given and does not exist.
    """
    if isinstance(path_or_state_dict, Mapping):
        state = dict(path_or_state_dict)
    else:
        path = Path(path_or_state_dict)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in WRAPPER_KEYS:
        if key in state and isinstance(state[key], Mapping):
            state = dict(state[key])
            break
    return {strip_prefixes(k): v for k, v in state.items()}


def strip_prefixes(key: str) -> str:
    """`module.backbone.x` → `backbone.x` (DataParallel / DDP / torch.compile wrappers)."""
    changed = True
    while changed:
        changed = False
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def load_model_weights(model: nn.Module,
                       path_or_state_dict: Union[str, os.PathLike, Mapping]) -> nn.Module:
    """Load weights strictly into `model` (unwrapped from DDP / DataParallel if needed).

    Args:
        model: the model, possibly wrapped.
        path_or_state_dict: a checkpoint path (ours or the authors') or a state_dict.

    Returns:
        The model.

    Raises:
        ValueError: naming missing / unexpected keys or the first shape mismatch.
    """
    target = model.module if hasattr(model, "module") else model
    state = read_state_dict(path_or_state_dict)
    own = target.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(
            "checkpoint does not fit the model: "
            f"{len(missing)} missing keys (first: {missing[:3]}), "
            f"{len(unexpected)} unexpected keys (first: {unexpected[:3]}). Check that the config "
            "(num_filters, latent_dim, num_expert, n_classes, input_channels, gate_input) matches "
            "the run."
        )
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise ValueError(
                f"checkpoint does not fit the model: '{k}' has shape {tuple(state[k].shape)} in "
                f"the checkpoint but {tuple(v.shape)} in the model built from the config."
            )
    target.load_state_dict(state, strict=True)
    return model
