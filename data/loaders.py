"""DataLoaders for training, validation and test (the interface the engine uses).

Train: shuffled with a `torch.Generator` seeded by `seed`, drop_last=True. Val: not shuffled,
drop_last=True. Test: not shuffled, drop_last=False (as the authors). With `distributed=True`
a split gets a `DistributedSampler` (train shuffled with `seed`; the engine calls `set_epoch`);
the engine asks for it on the training split only: evaluation loaders stay whole and in order,
and `utils.runtime.distributed.shard_eval_loader` deals their batches out to the processes, so
every image is evaluated exactly once.
"""

from __future__ import annotations

import logging
import random
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from data.npy_folder import SPLITS
from data.specs import dataset_spec

logger = logging.getLogger(__name__)

def seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a DataLoader worker from its torch seed.

    Args:
        worker_id: the worker index (unused; torch's per-worker seed already differs).
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_dataset(
    dataset: str,
    data_folder: str,
    split: str,
    *,
    label_range=None,
    use_bbpred: bool = True,
    bbpred_channel: bool | None = None,
    input_channels: int | None = None,
    n_classes: int | None = None,
) -> Dataset:
    """Build one split's Dataset, as the dataset's spec reads it (`data.specs`).

    Args:
        dataset: a registered dataset name: 'lidc', 'cityscapes' (synthetic sets use the same
            names), 'folder' (your own data, `data.folder`) or one of your own.
        data_folder: dataset root holding `train/`, `val/`, `test/`.
        split: 'train', 'val' or 'test'.
        label_range: LIDC training annotation indices (None = all); must be None for
            'folder' (raters vary per image).
        use_bbpred: Cityscapes: use the black-box prediction channel.
        bbpred_channel: Cityscapes: force the 4th channel on/off (None follows
            `input_channels`, else use_bbpred).
        input_channels: 'folder': channels every image must have (None: any); Cityscapes: 4
            gives the black-box channel.
        n_classes: 'folder': label values must lie in [0, n_classes) (None: unchecked).

    Returns:
        The split's Dataset (`LIDCDataset`, `CityscapesDataset`, `FolderDataset`, ...).
    """
    options = dict(label_range=label_range, use_bbpred=use_bbpred, bbpred_channel=bbpred_channel,
                   input_channels=input_channels, n_classes=n_classes)
    return dataset_spec(str(dataset).lower()).build(data_folder, split, options)


def _check_shards(split: str, num_items: int, batch_size: int, world: int, drop_last: bool) -> None:
    """Every process must get at least one full batch of a sharded split it drops the last of.

    Each of the `world` processes takes `num_items // world` items and batches of `batch_size`.
    """
    if drop_last and num_items // world < batch_size:
        raise ValueError(
            f"the {split} split has {num_items} images, fewer than {world} processes x "
            f"{split}_batch_size={batch_size} = {world * batch_size} (each process takes "
            f"{split}_batch_size images per step): lower {split}_batch_size or launch fewer "
            "processes"
        )


def _make_loader(
    ds: Dataset, split: str, batch_size: int, num_w: int, seed: int, distributed: bool
) -> DataLoader:
    """Wrap a Dataset with the split's shuffling, sampler and drop_last policy."""
    shuffle, drop_last = split == "train", split != "test"
    sampler = None
    if distributed:
        sampler = DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
        _check_shards(split, len(ds), batch_size, sampler.num_replicas, drop_last)
    generator = torch.Generator()
    generator.manual_seed(seed)
    if drop_last and len(ds) < batch_size:
        logger.warning(
            "%s split has %d items < batch size %d: it yields no batch", split, len(ds), batch_size
        )
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_w,
        drop_last=drop_last,
        worker_init_fn=seed_worker,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
    )


def build_dataloaders(
    dataset: str,
    data_folder: str,
    *,
    train_batch_size: int = 1,
    val_batch_size: int = 1,
    test_batch_size: int = 1,
    num_w: int = 0,
    label_range=None,
    use_bbpred: bool = True,
    bbpred_channel: bool | None = None,
    seed: int = 0,
    splits: Sequence[str] = SPLITS,
    distributed: bool = False,
    input_channels: int | None = None,
    n_classes: int | None = None,
) -> dict[str, DataLoader]:
    """Build the DataLoaders of the requested splits.

    Args:
        dataset: a registered dataset name (`build_dataset`).
        data_folder: dataset root holding `train/`, `val/`, `test/`.
        train_batch_size: batch size of the train loader.
        val_batch_size: batch size of the val loader.
        test_batch_size: batch size of the test loader.
        num_w: DataLoader worker processes.
        label_range: LIDC annotation indices used for training (None = all).
        use_bbpred: Cityscapes: append the black-box prediction as a 4th input channel.
        bbpred_channel: Cityscapes: 4th channel on/off regardless; None follows use_bbpred
            (True without use_bbpred appends zeros).
        seed: seeds the train shuffling, DistributedSampler and worker seeds.
        splits: which of 'train', 'val', 'test' to build.
        distributed: use DistributedSampler (needs an initialised process group).
        input_channels: 'folder': channels every image must have (None: any).
        n_classes: 'folder': label values must lie in [0, n_classes) (None: unchecked).

    Returns:
        split -> DataLoader yielding (input (B, C_in, H, W) float32, labels (B, M, H, W) int64,
        label_probs (B, M) float32). 'folder' pads each split to its largest rater count with
        zero-weight copies (`data.folder`).
    """
    sizes = {"train": train_batch_size, "val": val_batch_size, "test": test_batch_size}
    if num_w < 0:
        raise ValueError(f"num_w must be >= 0, got {num_w}")
    loaders = {}
    for split in splits:
        if split not in sizes:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if int(sizes[split]) < 1:
            raise ValueError(f"{split}_batch_size must be >= 1, got {sizes[split]}")
        ds = build_dataset(dataset, data_folder, split, label_range=label_range,
                           use_bbpred=use_bbpred, bbpred_channel=bbpred_channel,
                           input_channels=input_channels, n_classes=n_classes)
        loaders[split] = _make_loader(ds, split, int(sizes[split]), num_w, seed, distributed)
    return loaders
