"""build_dataloaders: the contract the engine relies on."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from data import build_dataloaders, seed_worker
from data.synthetic import make_lidc

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("loaders") / "lidc"
    make_lidc(str(path), n_train=10, n_val=5, n_test=5, size=16, seed=0)
    return str(path)


def _orders(loader):
    return [list(batch) for batch in loader.batch_sampler]


def test_batching_policy(root):
    loaders = build_dataloaders(
        "lidc", root, train_batch_size=4, val_batch_size=2, test_batch_size=2
    )
    assert len(loaders["train"]) == 2 and len(loaders["val"]) == 2  # drop_last
    assert [len(b) for b in _orders(loaders["test"])] == [2, 2, 1]  # keeps the last batch
    assert _orders(loaders["val"]) == [[0, 1], [2, 3]]  # not shuffled
    batches = list(loaders["test"])
    x, y, p = batches[-1]
    assert x.shape == (1, 1, 16, 16) and x.dtype == torch.float32
    assert y.shape == (1, 4, 16, 16) and y.dtype == torch.int64
    assert p.shape == (1, 4) and p.dtype == torch.float32


def test_train_shuffle_is_seeded(root):
    def order(seed):
        return [
            i
            for b in build_dataloaders(
                "lidc", root, train_batch_size=2, seed=seed, splits=("train",)
            )["train"].batch_sampler
            for i in b
        ]

    first, again, other = order(0), order(0), order(1)
    assert first == again and first != other and sorted(first) == list(range(10))
    assert first != list(range(10))


def test_workers_run_and_seed_numpy(root):
    loader = build_dataloaders("lidc", root, train_batch_size=5, num_w=1, splits=("train",))[
        "train"
    ]
    assert sum(x.shape[0] for x, _, _ in loader) == 10
    torch.manual_seed(5)
    seed_worker(0)
    value = np.random.rand()
    np.random.seed(5)
    assert value == np.random.rand()


def test_distributed_samplers(root, tmp_path):
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        loaders = build_dataloaders(
            "lidc", root, train_batch_size=3, test_batch_size=2, distributed=True, seed=4
        )
    finally:
        dist.destroy_process_group()
    train, test = loaders["train"].sampler, loaders["test"].sampler
    assert isinstance(train, DistributedSampler) and train.shuffle and train.seed == 4
    assert isinstance(test, DistributedSampler) and not test.shuffle
    assert list(test) == list(range(5)) and len(loaders["train"]) == 3


def test_bad_arguments(root):
    with pytest.raises(ValueError, match="dataset"):
        build_dataloaders("mnist", root)
    with pytest.raises(ValueError, match="batch_size"):
        build_dataloaders("lidc", root, train_batch_size=0)
    with pytest.raises(ValueError, match="split"):
        build_dataloaders("lidc", root, splits=("training",))
    with pytest.raises(FileNotFoundError, match="python -m data"):
        build_dataloaders("cityscapes", root)


def test_an_lidc_run_does_not_import_torchvision(root):
    # torchvision costs a second or more at every start; only Cityscapes and folder data use it
    code = ("import sys, main, utils.training.trainer, utils.reports.analyses\n"
            "from data import build_dataloaders\n"
            f"loader = build_dataloaders('lidc', {root!r}, train_batch_size=2, splits=('train',))"
            "['train']\n"
            "next(iter(loader))\n"
            "assert 'torchvision' not in sys.modules, 'torchvision was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
