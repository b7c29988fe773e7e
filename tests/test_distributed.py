"""DDP: evaluation shards cover every image once, sampling ignores the world size, torchrun
with 2 CPU processes (gloo) evaluates exactly like one process, --predict runs on rank 0 alone,
and the usual launch mistakes end with one line. Training with torchrun (two nodes, resume):
tests/test_multinode.py."""

import functools
import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import data.loaders
import main
from data.loaders import build_dataloaders
from data.synthetic import make_lidc
from utils import build
from utils.config.config import load_config
from utils.config.errors import error_line
from utils.runtime import distributed
from utils.runtime.distributed import EvalBatchSampler, batch_generator

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # the `torchrun` command


@pytest.mark.parametrize("num_items,batch_size,drop_last", [(5, 2, False), (9, 2, True),
                                                            (7, 3, False), (1, 4, False)])
def test_eval_shards_cover_every_image_once_without_padding(num_items, batch_size, drop_last):
    single = EvalBatchSampler(num_items, batch_size, drop_last, rank=0, world=1)
    expected = list(single)
    assert expected == [list(range(s, min(s + batch_size, num_items)))
                        for s in range(0, num_items, batch_size)
                        if not drop_last or s + batch_size <= num_items]
    for world in (2, 3, 4):
        shards = [EvalBatchSampler(num_items, batch_size, drop_last, r, world)
                  for r in range(world)]
        by_batch = {j: batch for s in shards for j, batch in zip(s.batch_ids, s)}
        assert [by_batch[j] for j in sorted(by_batch)] == expected  # each batch exactly once
        assert sum(len(s) for s in shards) == len(expected)
        for s in shards:
            assert [start for _, start in s.positions()] == [b[0] for b in s]


def test_batch_generators_depend_on_seed_and_batch_only():
    cpu = torch.device("cpu")
    a = torch.randn(5, generator=batch_generator(0, 3, cpu))
    assert torch.equal(a, torch.randn(5, generator=batch_generator(0, 3, cpu)))
    assert not torch.equal(a, torch.randn(5, generator=batch_generator(0, 4, cpu)))
    assert not torch.equal(a, torch.randn(5, generator=batch_generator(1, 3, cpu)))


def test_single_process_helpers_are_no_ops():
    assert not distributed.is_distributed() and distributed.world_size() == 1
    assert distributed.rank() == 0 and distributed.is_main()
    values = torch.tensor([1.0, float("nan")])
    assert distributed.average_across_ranks(values) is values
    assert distributed.gather_objects([1, 2]) == [1, 2]
    model = nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu")) is model
    assert distributed.unwrap(nn.DataParallel(model)) is model


def test_sync_bn_switches_to_the_plain_head_and_needs_cuda(monkeypatch):
    model = build.build_model(load_config(None, ["num_filters=[4, 8]"]))
    assert model.fast_head
    converted = distributed.convert_sync_bn(model)
    assert not converted.fast_head
    assert any(isinstance(m, nn.SyncBatchNorm) for m in converted.modules())
    assert not any(type(m) is nn.BatchNorm2d for m in converted.modules())
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match="sync_bn=True needs CUDA GPUs"):
        distributed.prepare_model(model, torch.device("cpu"), sync_bn=True)


def tiny_args(root: Path, *extra: str) -> list:
    """A 1-epoch synthetic LIDC run under `root`: 5 test images, test batches of 2."""
    return ["experiments/synthetic_lidc.py", "--device", "cpu",
            "--set", f"data_folder={root / 'data'}", "--set", f"log_root={root / 'log'}",
            "--set", f"run_root={root / 'runs'}", "--set", "num_filters=[4, 8]",
            "--set", "sample_per_mode=2", "--set", "latent_dim=1", "--set", "gamma0=0.5",
            "--set", "epochs=1", "--set", "train_batch_size=2",
            "--set", "val_batch_size=2", "--set", "test_batch_size=2", "--set", "num_figures=0",
            "--set", "max_train_minutes=None", "--set", "test_after_training=False",
            "--set", "gate_refit_steps=20", *extra]


def torchrun(nproc: int, args: list) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([*TORCHRUN, "--standalone", f"--nproc_per_node={nproc}", "main.py",
                           *args], capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_one_and_two_processes_evaluate_alike(tmp_path):
    make_lidc(str(tmp_path / "data"), n_train=2, n_val=2, n_test=5, size=16, seed=0)
    cfg = load_config(None, ["num_filters=[4, 8]", "sample_per_mode=2", "gate_input='image'"])
    ckpt = tmp_path / "weights.pth"
    torch.manual_seed(3)
    torch.save(build.build_model(cfg).state_dict(), ckpt)
    # 5 test images in batches of 2 + 2 + 1: rank 0 takes batches 0 and 2, rank 1 batch 1
    args = tiny_args(tmp_path, "--demo", "test", "--ckpt", str(ckpt))
    torchrun(2, args)
    run = tmp_path / "log" / "synthetic" / "synthetic_lidc"
    two = json.loads((run / "test" / "results_compact_S2.json").read_text())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (OMP_NUM_THREADS=1)
    try:
        one = main.main(args)
    finally:
        torch.set_num_threads(threads)
    assert one["num_images"] == two["num_images"] == 5  # every image once, no padding
    for key in ("ged", "miou", "ece", "true_ged", "mode_mass_error"):
        assert one[key] == two[key], key
    assert one["ece_bins"] == two["ece_bins"] and 0 < one["ece"] < 1


def as_torchrun_process(monkeypatch, rank: int, world: int, **env: str) -> None:
    """Set the variables torchrun gives process `rank` of `world` (no process group)."""
    monkeypatch.setenv("RANK", str(rank))
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    monkeypatch.setenv("WORLD_SIZE", str(world))
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def test_cuda_without_gpus_under_torchrun_is_one_line(monkeypatch, tmp_path):
    as_torchrun_process(monkeypatch, 1, 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "argv", ["main.py", *tiny_args(tmp_path, "--device", "cuda")])
    with pytest.raises(SystemExit) as info:
        main.cli()
    assert info.value.code == ("error: rank 1: device 'cuda' was requested but no CUDA GPU is "
                               "available to torch; use --device cpu (torchrun's processes then "
                               "use gloo instead of NCCL)")
    assert not dist.is_initialized()


def test_nccl_needs_a_gpu_per_process_and_an_nccl_build(monkeypatch):
    as_torchrun_process(monkeypatch, 1, 2)
    monkeypatch.setattr(dist, "is_nccl_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"LOCAL_RANK=1 but this node has 1 visible GPUs: "
                                         "--nproc_per_node must not exceed the GPUs per node"):
        distributed.setup(torch.device("cuda"))
    monkeypatch.setattr(dist, "is_nccl_available", lambda: False)
    with pytest.raises(ValueError, match="needs NCCL, which this PyTorch build lacks"):
        distributed.setup(torch.device("cuda"))
    assert not dist.is_initialized()


@pytest.mark.parametrize("batch_size,steps", [(2, 1), (3, None)])
def test_training_split_must_give_every_process_a_batch(tmp_path, monkeypatch, batch_size, steps):
    make_lidc(str(tmp_path), n_train=9, n_val=1, n_test=1, size=8, seed=0)
    # 4 processes: 9 // 4 = 2 images each (one dropped), enough for batches of 2, not of 3
    monkeypatch.setattr(data.loaders, "DistributedSampler",
                        functools.partial(DistributedSampler, num_replicas=4, rank=0))

    def train_loader():
        return build_dataloaders("lidc", str(tmp_path), train_batch_size=batch_size,
                                 splits=("train",), distributed=True)["train"]

    if steps is not None:
        assert len(train_loader()) == steps
        return
    with pytest.raises(ValueError) as info:
        train_loader()
    assert str(info.value) == ("the train split has 9 images, fewer than 4 processes x "
                               "train_batch_size=3 = 12 (each process takes train_batch_size "
                               "images per step): lower train_batch_size or launch fewer "
                               "processes")


def test_evaluation_with_more_processes_than_batches_warns_once(monkeypatch):
    warnings = []
    monkeypatch.setattr(distributed, "world_size", lambda: 4)
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    monkeypatch.setattr(distributed, "_IDLE_WARNED", set())
    monkeypatch.setattr(distributed.logger, "warning", warnings.append)
    loader = DataLoader(TensorDataset(torch.arange(3)), batch_size=2, shuffle=False)
    for _ in range(2):  # e.g. two validations
        shard = distributed.shard_eval_loader(loader)
        assert [b[0].tolist() for b in shard] == [[0, 1]]  # rank 0: batch 0; rank 1: batch 1
    assert warnings == ["an evaluation split of 3 images gives 2 batch(es) for 4 processes: "
                        "2 process(es) wait during its evaluation (the results do not change; "
                        "a smaller batch size shares it out)"]


def test_a_process_group_that_does_not_form_is_one_line(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # rank 0 of 2 waits for a rank 1 that is never launched
    as_torchrun_process(monkeypatch, 0, 2, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    monkeypatch.setattr(distributed, "INIT_TIMEOUT", timedelta(seconds=1))
    with pytest.raises(distributed.RendezvousError) as info:
        distributed.setup(torch.device("cpu"))
    line = error_line(info.value)
    assert line.startswith(f"error: rank 0: could not join the process group of 2 processes at "
                           f"127.0.0.1:{port} (")
    assert line.endswith("check that this address and port are reachable from every node (the "
                         "head node's address, a free port, no firewall), that every node is "
                         "launched, and that all use the same --nnodes, --nproc_per_node and "
                         "--rdzv_id")
    assert "\n" not in line and not dist.is_initialized()


@pytest.mark.parametrize("shared", [True, False])
def test_a_run_folder_the_nodes_do_not_share_is_an_error(tmp_path, monkeypatch, shared):
    node0, node1 = tmp_path / "node0", tmp_path / "node1"
    node0.mkdir()
    node1.mkdir()
    seen_by_rank1 = node0 if shared else node1  # where rank 1's log_root points
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    calls = []

    def gather(items):  # rank 0's items, then what rank 1 sends from its view of the folder
        calls.append(items)
        if len(calls) == 1:
            return list(items)  # the token, from rank 0
        marker = seen_by_rank1 / ".shared_folder_check"
        return list(items) + [(1, marker.is_file() and marker.read_text() == calls[0][0])]

    monkeypatch.setattr(distributed, "gather_objects", gather)
    if shared:
        distributed.check_shared_folder(node0)
    else:
        with pytest.raises(ValueError, match=r"processes \[1\] do not see the files rank 0 "
                                             "writes in .*node0: under multi-node training "
                                             "log_root must be a folder every node shares"):
            distributed.check_shared_folder(node0)
    assert len(calls) == 2 and not list(node0.iterdir())  # the marker is removed


def test_predict_under_torchrun_runs_on_rank_0_alone(monkeypatch, tmp_path):
    infos = []
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr(distributed, "check_shared_folder", lambda folder: None)
    monkeypatch.setattr("utils.reports.prediction.run_prediction",
                        lambda *args: pytest.fail("rank 1 predicts"))
    monkeypatch.setattr(distributed, "rank", lambda: 1)
    out = tmp_path / "out"
    args = tiny_args(tmp_path, "--predict", str(tmp_path / "images"), "--out", str(out))
    assert main.main(args) == {} and not out.exists()
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    monkeypatch.setattr(distributed.logger, "info", infos.append)
    assert distributed.first_process_only("--predict")
    assert infos == ["--predict runs on one process: rank 0 does all of it, the other 1 "
                     "process(es) exit"]
