"""One seeding function for python, numpy and torch, and seeded generators."""

import random
from typing import Union

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy and torch (CPU and every CUDA device).

    DataLoader workers are seeded by the loaders from their own generator (`data` package).

    Args:
        seed: the run's seed.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_generator(seed: int, device: Union[str, torch.device] = "cpu") -> torch.Generator:
    """A fresh `torch.Generator` on `device`, seeded with `seed`.

    Args:
        seed: generator seed.
        device: where the sampling happens (the model's device).
    Returns:
        The seeded generator.
    """
    generator = torch.Generator(device=torch.device(device))
    generator.manual_seed(seed)
    return generator
