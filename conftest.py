"""Repository-root conftest: makes `python -m pytest` import the packages from the repo root,
gives every test the same starting state whatever ran before it, and offers other test orders
(`--test-order reverse` or `--test-order SEED`) so that order dependence shows."""

import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent
PROJECT_LOGGER = "mose"
DEFAULT_THREADS = torch.get_num_threads()  # as the run started (OMP_NUM_THREADS or the cores)
ROOT_LEVEL = logging.getLogger().level


def pytest_addoption(parser):
    parser.addoption("--test-order", default="default",
                     help="'default', 'reverse' (every test in the opposite order) or an integer "
                          "seed: files shuffled, then the tests within each file")


def pytest_collection_modifyitems(config, items):
    order = config.getoption("--test-order")
    if order == "default":
        return
    if order == "reverse":
        items.reverse()
        return
    if not order.isdigit():
        raise pytest.UsageError(f"--test-order must be 'default', 'reverse' or an integer seed, "
                                f"got {order!r}")
    rng = random.Random(int(order))
    files = {}
    for item in items:  # grouped by file, so a file's module fixtures are built once
        files.setdefault(item.nodeid.split("::")[0], []).append(item)
    groups = list(files.values())
    rng.shuffle(groups)
    for group in groups:
        rng.shuffle(group)
    items[:] = [item for group in groups for item in group]


def reset_logging() -> None:
    """The project logger as a fresh process has it (no handlers, propagating, level unset); the
    root logger's level as the run started and none of the handlers a `basicConfig` adds.

    A run (`setup_logging`) gives the project logger console and file handlers, an INFO level
    and no propagation: a later test's `caplog` would see different records depending on
    whether such a run came first.
    """
    log = logging.getLogger(PROJECT_LOGGER)
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    log.setLevel(logging.NOTSET)
    log.propagate, log.disabled = True, False
    root = logging.getLogger()
    root.setLevel(ROOT_LEVEL)
    for handler in list(root.handlers):  # pytest's own capture handlers stay
        if not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)


def fast_head_caches() -> list:
    """The fast head's module-level caches (compiled kernels, fused-op state), if present."""
    import models.fast_head as fast_head

    return [cache for cache in (getattr(fast_head, name, None) for name in ("_COMPILED", "_FUSED"))
            if isinstance(cache, dict)]


def reset_torch_state() -> None:
    """Default dtype, gradient mode, deterministic flag and thread count as the run started."""
    torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)
    torch.use_deterministic_algorithms(False)
    if torch.get_num_threads() != DEFAULT_THREADS:
        torch.set_num_threads(DEFAULT_THREADS)


def seed_all() -> None:
    """torch's, numpy's and Python's global generators seeded 0."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)


@pytest.fixture(scope="module", autouse=True)
def module_start_state():
    """A file's module-scoped fixtures, built before any test's own reset, start from the
    same state too: whatever ran before, a file's shared objects are the same."""
    reset_logging()
    reset_torch_state()
    seed_all()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        yield


@pytest.fixture(autouse=True)
def isolated_global_state(monkeypatch):
    """Every test starts from the same process state and leaves none behind: project logger,
    torch's global settings and thread count, the random generators (seeded 0), the working
    directory (the repository root), the environment and the fast head's caches."""
    reset_logging()
    reset_torch_state()
    seed_all()
    monkeypatch.chdir(ROOT)
    environ = dict(os.environ)
    caches = [(cache, dict(cache)) for cache in fast_head_caches()]
    yield
    for cache, saved in caches:
        cache.clear()
        cache.update(saved)
    if dict(os.environ) != environ:
        os.environ.clear()
        os.environ.update(environ)
    reset_torch_state()
    reset_logging()
