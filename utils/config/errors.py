"""User errors: which exceptions end a run with a one-line message, and what they say.

`main.cli` catches `USER_ERRORS` and prints `error_line(err)` instead of a traceback (unless
`--debug`). The library raises ordinary `ValueError` / `FileNotFoundError` / `ConfigError` with
actionable messages; this module adds the CUDA out-of-memory case, which PyTorch reports as a
long multi-line `RuntimeError`: it is re-raised as `OutOfMemory` naming the batch size to lower.
The batch size is never lowered automatically (the authors' code silently halves it).
"""

import os
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from utils.config.config import ConfigError


class OutOfMemory(RuntimeError):
    """CUDA ran out of memory; the message names the batch-size settings to lower."""


USER_ERRORS = (ConfigError, FileNotFoundError, ValueError, FloatingPointError, OutOfMemory)


def out_of_memory_message(cfg: Any, demo: Optional[str]) -> str:
    """The one-line advice for a CUDA out-of-memory error.

    Args:
        cfg: the run's settings (batch sizes).
        demo: the evaluated split with --demo, None for training.
    Returns:
        The message.
    """
    names = [f"{demo}_batch_size"] if demo else ["train_batch_size", "val_batch_size"]
    sizes = ", ".join(f"{n}={cfg[n]}" for n in names)
    first = names[0]
    hint = f"--set {first}={max(1, cfg[first] // 2)}"
    extra = "" if demo else " (or raise num_chunks to split the loss computation)"
    return (f"CUDA out of memory with {sizes}: use a smaller batch, e.g. {hint}{extra}; "
            "the batch size is never lowered automatically")


@contextmanager
def out_of_memory_hint(cfg: Any, demo: Optional[str] = None) -> Iterator[None]:
    """Turn a CUDA out-of-memory error raised inside the block into `OutOfMemory`.

    Args:
        cfg: the run's settings.
        demo: the evaluated split with --demo, None for training.
    """
    import torch  # lazily: checking a config must not wait for torch

    try:
        yield
    except torch.cuda.OutOfMemoryError as err:
        raise OutOfMemory(out_of_memory_message(cfg, demo)) from err


def error_line(err: BaseException) -> str:
    """`error: <message>` on one line; under torchrun with several processes, names the rank."""
    text = " ".join(str(err).split()) or type(err).__name__
    world = int(os.environ.get("WORLD_SIZE", "1"))
    where = f"rank {os.environ.get('RANK', '?')}: " if world > 1 else ""
    return f"error: {where}{text}"
