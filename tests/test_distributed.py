"""DDP: evaluation shards cover every image once, sampling ignores the world size, and torchrun
with 2 CPU processes (gloo) trains and evaluates exactly like one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import main
from data.synthetic import make_lidc
from utils import build
from utils.config.config import load_config
from utils.runtime import distributed
from utils.runtime.checkpoint import load_model_weights
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


def records(run: Path) -> list:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_two_gloo_processes_train_one_epoch_then_resume(tmp_path):
    make_lidc(str(tmp_path / "data"), n_train=8, n_val=4, n_test=1, size=16, seed=0)
    torchrun(2, tiny_args(tmp_path))
    run = tmp_path / "log" / "synthetic" / "synthetic_lidc"
    assert [r["epoch"] for r in records(run)] == [0, 1]  # written by rank 0 only
    assert records(run)[1]["train_steps"] == 2  # 8 images = 2 steps x 2 ranks x batch 2
    assert (run / "log.txt").read_text().count("2 process(es)") == 1
    assert (run / "log.txt").read_text().count("gate refit (20 steps") == 1  # every rank, one log
    assert len(list((tmp_path / "runs" / "synthetic" / "synthetic_lidc").iterdir())) == 1
    for name in ("synthetic_lidc_best_ged.pth", "synthetic_lidc_last.pth"):
        weights = torch.load(run / name, weights_only=True)
        assert not any(k.startswith("module.") for k in weights)  # saved unwrapped
        cfg = load_config("experiments/synthetic_lidc.py", ["num_filters=[4, 8]", "latent_dim=1"])
        load_model_weights(build.build_model(cfg), weights)
    state = torch.load(run / "synthetic_lidc_resume.pth", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["progress"]["epoch"] == 1
    assert not torch.equal(state["rng"][0]["latent"], state["rng"][1]["latent"])  # seed + rank
    torchrun(2, tiny_args(tmp_path, "--resume", "--set", "epochs=2"))
    assert [r["epoch"] for r in records(run)] == [0, 1, 2]
    assert torch.load(run / "synthetic_lidc_resume.pth", weights_only=True)["progress"][
        "epoch"] == 2


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
