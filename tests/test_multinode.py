"""Two torchrun "nodes" on this machine (two launchers, --nnodes=2, one gloo process each, a
rendezvous on 127.0.0.1) train exactly like one node with two processes, and --resume continues
the run: one epoch on two nodes, then --resume to two epochs, ends with the weights, losses,
validation figures and scheduler states of a straight two-epoch run on one node. Only rank 0
writes the run folder."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from data.synthetic import make_lidc
from utils import build
from utils.config.config import load_config
from utils.runtime.checkpoint import load_model_weights

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # the `torchrun` command
TIMEOUT_S = 300  # per launch; a launch that hangs (e.g. a rendezvous that never forms) fails
# lr halves after every epoch (a relative threshold of 10 is never met, whatever the losses), so
# the schedule does not depend on the planned number of epochs and a resumed run can equal a
# straight one; the cosine decay would end at min_lr on the last planned epoch of the first run
PLATEAU = ["--set", "lr_schedule='plateau'", "--set", "scheduler_mean='epoch'",
           "--set", "scheduler_options={'patience': 0, 'factor': 0.5, 'threshold': 10.0}"]


def run_args(root: Path, name: str, *extra: str) -> list:
    """A synthetic LIDC run `name` under `root`: 8 training images, batches of 2 per process."""
    return ["experiments/synthetic_lidc.py", "--device", "cpu",
            "--set", f"data_folder={root / 'data'}", "--set", f"log_root={root / 'log'}",
            "--set", f"run_root={root / 'runs'}", "--set", f"experiment_name={name}",
            "--set", "num_filters=[4, 8]", "--set", "sample_per_mode=2", "--set", "latent_dim=1",
            "--set", "gamma0=0.5", "--set", "train_batch_size=2", "--set", "val_batch_size=2",
            "--set", "num_figures=0", "--set", "max_train_minutes=None",
            "--set", "test_after_training=False", "--set", "gate_refit_steps=20", *PLATEAU,
            *extra]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_node(args: list) -> list:
    """The torchrun command of one node with two processes."""
    return [*TORCHRUN, "--standalone", "--nproc_per_node=2", "main.py", *args]


def two_nodes(args: list, rendezvous: str) -> list:
    """The torchrun commands of two one-process nodes meeting on 127.0.0.1.

    Args:
        args: main.py's arguments.
        rendezvous: 'static' (--master_addr/--master_port and --node_rank) or 'c10d'
            (--rdzv_endpoint; the nodes get their ranks in the order they join).
    """
    port, common = free_port(), [*TORCHRUN, "--nnodes=2", "--nproc_per_node=1"]
    if rendezvous == "static":
        return [[*common, f"--node_rank={node}", "--master_addr=127.0.0.1",
                 f"--master_port={port}", "main.py", *args] for node in (0, 1)]
    return [[*common, "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}",
             "--rdzv_id=mose-test", "main.py", *args]] * 2


def launch(*commands: list) -> None:
    """Run the launchers together (one thread per process); every one must succeed in time."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=env) for c in commands]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out[-4000:]


def records(run: Path) -> list:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """A straight two-epoch run on one node; one epoch on two nodes (static rendezvous), its
    state kept; then --resume to two epochs on two nodes (c10d rendezvous)."""
    root = tmp_path_factory.mktemp("multinode")
    make_lidc(str(root / "data"), n_train=8, n_val=4, n_test=1, size=16, seed=0)
    launch(one_node(run_args(root, "one_node", "--set", "epochs=2")),
           *two_nodes(run_args(root, "two_nodes", "--set", "epochs=1"), "static"))
    two = root / "log" / "synthetic" / "two_nodes"
    first = dict(records=records(two), log=(two / "log.txt").read_text(),
                 state=torch.load(two / "two_nodes_resume.pth", weights_only=True),
                 tensorboard=list((root / "runs" / "synthetic" / "two_nodes").iterdir()))
    launch(*two_nodes(run_args(root, "two_nodes", "--resume", "--set", "epochs=2"), "c10d"))
    return dict(one=root / "log" / "synthetic" / "one_node", two=two, first=first)


@pytest.mark.slow
def test_two_nodes_then_resume_equal_one_node_straight(runs):
    one, two = runs["one"], runs["two"]
    # epochs 0-1 from the first two-node launch, epoch 2 from the resumed one: the same losses,
    # validation figures, lr (halved after each epoch) and gamma (moved at epoch 2)
    assert records(two) == records(one)
    assert [r.get("lr") for r in records(one)] == [None, 3e-3, 1.5e-3]
    straight = torch.load(one / "one_node_last.pth", weights_only=True)
    resumed = torch.load(two / "two_nodes_last.pth", weights_only=True)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    end = torch.load(one / "one_node_resume.pth", weights_only=True)
    again = torch.load(two / "two_nodes_resume.pth", weights_only=True)
    for part in ("lr_scheduler", "param_schedulers", "monitor", "progress"):
        assert {k: v for k, v in again[part].items() if k != "elapsed"} == \
            {k: v for k, v in end[part].items() if k != "elapsed"}, part
    assert again["progress"]["epoch"] == 2 and "resumed from" in (two / "log.txt").read_text()


@pytest.mark.slow
def test_rank_zero_alone_writes_the_run_folder(runs):
    first, two = runs["first"], runs["two"]
    assert [r["epoch"] for r in first["records"]] == [0, 1]  # one record per epoch: rank 0's
    assert first["records"][1]["train_steps"] == 2  # 8 images = 2 steps x 2 ranks x batch 2
    assert first["log"].count("2 process(es)") == 1
    assert first["log"].count("gate refit (20 steps") == 1  # every rank refits, rank 0 logs
    assert len(first["tensorboard"]) == 1  # one event file
    state = first["state"]
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["progress"]["epoch"] == 1
    assert not torch.equal(state["rng"][0]["latent"], state["rng"][1]["latent"])  # seed + rank
    cfg = load_config("experiments/synthetic_lidc.py", ["num_filters=[4, 8]", "latent_dim=1"])
    for name in ("two_nodes_best_ged.pth", "two_nodes_last.pth"):
        weights = torch.load(two / name, weights_only=True)
        assert not any(k.startswith("module.") for k in weights)  # saved unwrapped
        load_model_weights(build.build_model(cfg), weights)
    assert not (two / ".shared_folder_check").exists()  # the check's marker is removed
