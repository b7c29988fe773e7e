"""Multi-process training and evaluation with PyTorch's DistributedDataParallel (DDP).

`torchrun --nproc_per_node=G main.py CONFIG` starts G processes ("ranks"); torchrun sets
RANK, LOCAL_RANK and WORLD_SIZE, and `setup` joins them into one process group: NCCL on GPUs
(rank r of a node uses GPU LOCAL_RANK), gloo on CPUs. Without torchrun every helper here is a
no-op for a single process, so the same code path serves both.

Training shards the shuffled training set with a `DistributedSampler` (`data.loaders`); each rank's
`train_batch_size` images make up 1/G of a step's global batch. Evaluation shards whole batches
instead (`EvalBatchSampler`): batch j of the unsharded, in-order split goes to rank j % G, nothing
is padded or repeated, and the per-batch results are gathered and combined in batch order
(`utils.evaluation.loop.evaluate`). Each batch draws its samples from a generator seeded by
(eval_seed, j) (`batch_generator`), so GED, M-IoU and ECE equal a single-process run's.

Launch mistakes end with one line (`main.cli`): `--device cuda` without a GPU or without NCCL,
more processes than GPUs, a process group that does not form (`RendezvousError`), a run folder
that the nodes do not share (`check_shared_folder`), and (`data.loaders`) a training split too
small to give every process one batch. Users' documentation: docs/distributed.md.
"""

import logging
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Sampler

logger = logging.getLogger("mose")

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
# how long `init_process_group` waits for every process (None: PyTorch's default)
INIT_TIMEOUT: Optional[timedelta] = None
_IDLE_WARNED = set()  # (batches, world) of evaluation loaders already warned about
# what a failed rendezvous raises (older PyTorch: a plain RuntimeError)
JOIN_ERRORS = (getattr(dist, "DistError", RuntimeError),)


class RendezvousError(ValueError):
    """The processes did not form a process group (a user error: `main.cli` prints one line)."""


def launched_by_torchrun() -> bool:
    """True when torchrun (or another launcher) set RANK, LOCAL_RANK and WORLD_SIZE."""
    return all(name in os.environ for name in TORCHRUN_VARS)


def is_distributed() -> bool:
    """True inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process' global rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """True on the process that writes logs, TensorBoard, metrics and checkpoints (rank 0)."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group, if launched by torchrun; return this rank's device.

    The backend follows the device: NCCL on GPUs, gloo on CPUs.

    Args:
        device: the resolved device ('cuda' or 'cpu').
    Returns:
        `cuda:LOCAL_RANK` on GPUs, else `device` unchanged.
    """
    if not launched_by_torchrun() or is_distributed():
        return device
    if device.type == "cuda":
        device = _local_gpu()
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        dist.init_process_group(backend, timeout=INIT_TIMEOUT)
    except JOIN_ERRORS as err:
        raise RendezvousError(rendezvous_message(err)) from err
    return device


def _local_gpu() -> torch.device:
    """GPU LOCAL_RANK of this node, after checking that it exists and that NCCL is built."""
    if not dist.is_nccl_available():
        raise ValueError("device 'cuda' under torchrun needs NCCL, which this PyTorch build "
                         "lacks; install a CUDA build of PyTorch with NCCL, or use --device cpu "
                         "(gloo)")
    local_rank = int(os.environ["LOCAL_RANK"])
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"LOCAL_RANK={local_rank} but this node has "
                         f"{torch.cuda.device_count()} visible GPUs: --nproc_per_node must "
                         "not exceed the GPUs per node")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def rendezvous_message(err: BaseException) -> str:
    """What to check when `init_process_group` fails (timeout, refused or unreachable address).

    Args:
        err: PyTorch's error.
    Returns:
        One line: the number of processes, the address they meet at and what to check.
    """
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    reason = " ".join(str(err).split())[:300]
    return (f"could not join the process group of {os.environ.get('WORLD_SIZE', '?')} processes "
            f"at {where} ({reason}); check that this address and port "
            "are reachable from every node (the head node's address, a free port, no firewall), "
            "that every node is launched, and that all use the same --nnodes, --nproc_per_node "
            "and --rdzv_id")


def cleanup() -> None:
    """Leave the process group (if any)."""
    if is_distributed():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op for one process)."""
    if is_distributed():
        dist.barrier()


def check_shared_folder(folder: Path) -> None:
    """Check that every process sees the files rank 0 writes in `folder` (the run folder).

    Rank 0 writes the checkpoints and the resume state; every rank reads them back (resume,
    gate refit, test of the best checkpoint), so under multi-node training `log_root` must be a
    folder all nodes share. Rank 0 writes a marker with a fresh token, every rank reads it, rank
    0 removes it. No-op for one process.

    Args:
        folder: the run folder (created on every rank).
    Raises:
        ValueError: naming the ranks that do not see rank 0's marker.
    """
    if world_size() == 1:
        return
    marker = Path(folder) / ".shared_folder_check"
    if is_main():
        marker.write_text(uuid.uuid4().hex)
    token = gather_objects([marker.read_text()] if is_main() else [])[0]
    seen = marker.is_file() and marker.read_text() == token
    blind = [r for r, ok in gather_objects([(rank(), seen)]) if not ok]
    if is_main():
        marker.unlink()
    if blind:
        raise ValueError(f"processes {blind} do not see the files rank 0 writes in {folder}: "
                         "under multi-node training log_root must be a folder every node "
                         "shares (not a node-local disk such as /tmp)")


def first_process_only(task: str) -> bool:
    """True on rank 0; under DDP rank 0 logs that `task` runs on it alone.

    Args:
        task: what runs on one process, e.g. '--predict'.
    Returns:
        Whether this process runs the task (the others have nothing to do and exit).
    """
    if world_size() > 1 and is_main():
        logger.info(f"{task} runs on one process: rank 0 does all of it, the other "
                    f"{world_size() - 1} process(es) exit")
    return is_main()


def prepare_model(model: nn.Module, device: torch.device, sync_bn: bool) -> nn.Module:
    """Convert BatchNorm to SyncBatchNorm when asked and running DDP; move to `device`.

    Args:
        model: the MoSE model (unwrapped).
        device: this rank's device.
        sync_bn: the `sync_bn` setting (ignored for a single process).
    Returns:
        The model (BatchNorm modules replaced when converted), on `device`.
    """
    if sync_bn and world_size() > 1:
        if device.type != "cuda":
            raise ValueError("sync_bn=True needs CUDA GPUs (PyTorch's SyncBatchNorm does not run "
                             "on CPUs); set sync_bn=False")
        model = convert_sync_bn(model)
    return model.to(device)


def convert_sync_bn(model: nn.Module) -> nn.Module:
    """Replace every BatchNorm by a SyncBatchNorm and switch MoSE to its plain head.

    The fast head (`models/fast_head.py`) normalises inside its own autograd function with the
    BatchNorm modules' parameters, so it would keep per-rank statistics; the plain head calls
    the (now synchronised) modules. Same parameters, buffers and mathematics: checkpoints do
    not change, and evaluation may use the fast head again.

    Args:
        model: the MoSE model (unwrapped).
    Returns:
        The converted model.
    """
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if getattr(model, "fast_head", False):
        model.fast_head = False
        logger.info("sync_bn: using the plain head (the fast head bypasses SyncBatchNorm)")
    return model


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """`DistributedDataParallel(model)` under DDP, else `model` itself."""
    if not is_distributed():
        return model
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP / DataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel,
                                              nn.DataParallel)) else model


def broadcast_buffers(model: nn.Module) -> None:
    """Copy rank 0's buffers (BatchNorm running statistics) to every rank.

    DDP broadcasts them at the start of each training forward, so after the last step of an
    epoch every rank holds its own update; evaluation and checkpoints must all see rank 0's.
    """
    if world_size() > 1:
        for buffer in unwrap(model).buffers():
            dist.broadcast(buffer.data, src=0)


def broadcast_parameters(module: nn.Module) -> None:
    """Copy rank 0's parameters of `module` to every rank (no-op for one process)."""
    if world_size() > 1:
        for param in module.parameters():
            dist.broadcast(param.data, src=0)


def average_across_ranks(values: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over the ranks (the tensor itself for one process).

    Args:
        values: e.g. (3,) float losses of this rank's batch.
    Returns:
        The mean over ranks, same shape; NaN on every rank if NaN on any.
    """
    if world_size() == 1:
        return values
    values = values.clone()
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values / world_size()


def gather_objects(items: List[Any]) -> List[Any]:
    """Concatenate every rank's list of picklable items (rank order); every rank gets all."""
    if world_size() == 1:
        return list(items)
    gathered: List[Any] = [None] * world_size()
    dist.all_gather_object(gathered, list(items))
    return [item for part in gathered for item in part]


def batch_generator(eval_seed: int, batch_index: int, device: torch.device) -> torch.Generator:
    """Generator of the evaluation draws of batch `batch_index` (independent of world size).

    Args:
        eval_seed: the `eval_seed` setting.
        batch_index: j, position of the batch in the unsharded, in-order split.
        device: where the sampling happens.
    Returns:
        A generator seeded from (eval_seed, j) through numpy's SeedSequence (well mixed).
    """
    seed = int(np.random.SeedSequence([eval_seed, batch_index]).generate_state(1, np.uint64)[0])
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


class EvalBatchSampler(Sampler):
    """Whole in-order batches of one split for this rank: batch j goes to rank j % world.

    Args:
        num_items: images in the split.
        batch_size: images per batch.
        drop_last: drop the last incomplete batch (as the single-process loader does).
        rank, world: this rank and the number of ranks.
    """

    def __init__(self, num_items: int, batch_size: int, drop_last: bool, rank: int, world: int):
        num_batches = num_items // batch_size if drop_last else -(-num_items // batch_size)
        self.batch_size, self.num_items, self.num_batches = batch_size, num_items, num_batches
        self.batch_ids = list(range(rank, num_batches, world))

    def positions(self) -> Iterator[Tuple[int, int]]:
        """(batch index j, dataset index of its first image) of this rank's batches."""
        return ((j, j * self.batch_size) for j in self.batch_ids)

    def __iter__(self) -> Iterator[List[int]]:
        for _, start in self.positions():
            yield list(range(start, min(start + self.batch_size, self.num_items)))

    def __len__(self) -> int:
        return len(self.batch_ids)


def shard_eval_loader(loader: DataLoader) -> DataLoader:
    """This rank's share of an in-order evaluation loader (the loader itself for one process).

    A split with fewer batches than processes is still evaluated exactly (some processes get
    no batch); rank 0 warns once per split size, since those processes only wait.

    Args:
        loader: a validation / test loader, not shuffled, with `batch_size` and `drop_last`.
    Returns:
        A loader over the same dataset yielding the batches of `EvalBatchSampler`.
    """
    if world_size() == 1:
        return loader
    sampler = EvalBatchSampler(len(loader.dataset), loader.batch_size, loader.drop_last,
                               rank(), world_size())
    _warn_idle(len(loader.dataset), sampler.num_batches)
    return DataLoader(loader.dataset, batch_sampler=sampler, num_workers=loader.num_workers,
                      worker_init_fn=loader.worker_init_fn, generator=loader.generator,
                      pin_memory=loader.pin_memory)


def _warn_idle(num_items: int, batches: int) -> None:
    """Warn (rank 0, once per split size) when some processes get no evaluation batch."""
    world = world_size()
    if batches >= world or (batches, world) in _IDLE_WARNED or not is_main():
        return
    _IDLE_WARNED.add((batches, world))
    logger.warning(f"an evaluation split of {num_items} images gives {batches} batch(es) for "
                   f"{world} processes: {world - batches} process(es) wait during its "
                   "evaluation (the results do not change; a smaller batch size shares it out)")


def batch_positions(loader: DataLoader) -> Iterator[Tuple[int, int]]:
    """(batch index j, dataset index of its first image) of each batch `loader` yields.

    Sharded loaders know their batches; any other loader is taken as in order from index 0.
    """
    if isinstance(loader.batch_sampler, EvalBatchSampler):
        yield from loader.batch_sampler.positions()
        return
    j = 0
    while True:
        yield j, j * (loader.batch_size or 1)
        j += 1
