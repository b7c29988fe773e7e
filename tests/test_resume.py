"""--resume: a run killed mid-epoch continues from its last completed epoch and ends with weights
bit-identical to an uninterrupted run (CPU); the resume state loads with weights_only=True;
an interrupted checkpoint write leaves the previous best / last files intact."""

import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import main
from data.synthetic import make_lidc
from utils.training import trainer
from utils.training.resume import restore_rng, rng_state, trim_metrics


class Killed(Exception):
    """Stands for a kill (preemption, Ctrl-C) in the middle of a run."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume") / "data"
    make_lidc(str(root), n_train=8, n_val=4, n_test=3, size=16, seed=0)
    return root


def run_args(data: Path, tmp_path: Path, name: str, *extra: str) -> list:
    """A tiny 3-epoch run (4 steps per epoch) with schedulers that move during the run: γ at a
    milestone, and the learning rate at every epoch (a relative threshold of 10 makes every
    epoch count as no improvement, whatever the losses' rounding)."""
    return ["experiments/synthetic_lidc.py", "--device", "cpu",
            "--set", f"data_folder={data}", "--set", f"log_root={tmp_path / 'log'}",
            "--set", f"run_root={tmp_path / 'runs'}", "--set", f"experiment_name={name}",
            "--set", "num_filters=[4, 8]", "--set", "sample_per_mode=2", "--set", "epochs=3",
            "--set", "latent_dim=1", "--set", "gamma0=0.5",
            "--set", "train_batch_size=2", "--set", "val_batch_size=2", "--set", "num_figures=0",
            "--set", "max_train_minutes=None", "--set", "test_after_training=False",
            "--set", "lr_schedule='plateau'", "--set", "scheduler_mean='epoch'",
            "--set", "scheduler_options={'patience': 0, 'factor': 0.5, 'threshold': 10.0}",
            "--set", "gamma_scheduler_options={'values': [1.0], 'milestones': [2]}", *extra]


def kill_at_step(monkeypatch, step: int) -> None:
    """Make the `step`-th optimizer step (counted from 1 over the run) raise `Killed`."""
    original, calls = torch.optim.Adam.step, []

    def step_or_die(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise Killed
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step_or_die)


def records(run: Path) -> list:
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_killed_mid_epoch_resumes_bit_identical(data, tmp_path, monkeypatch):
    main.main(run_args(data, tmp_path, "straight"))
    with monkeypatch.context() as m:
        kill_at_step(m, 6)  # epoch 2 (steps 5-8), after one optimizer step of it
        with pytest.raises(Killed):
            main.main(run_args(data, tmp_path, "killed"))
    run = tmp_path / "log" / "synthetic" / "killed"
    state = torch.load(run / "killed_resume.pth", weights_only=True)
    assert state["progress"]["epoch"] == 1 and not (run / "killed_last.pth").exists()
    main.main(run_args(data, tmp_path, "killed", "--resume"))
    straight = torch.load(tmp_path / "log/synthetic/straight/straight_last.pth", weights_only=True)
    resumed = torch.load(run / "killed_last.pth", weights_only=True)
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    # the same epochs, losses, validation and scheduler values; gamma moved at epoch 2
    expected = records(tmp_path / "log/synthetic/straight")
    assert records(run) == expected and [r.get("gamma") for r in expected] == [None, .5, .5, 1.]
    end = torch.load(tmp_path / "log/synthetic/straight/straight_resume.pth", weights_only=True)
    again = torch.load(run / "killed_resume.pth", weights_only=True)
    for part in ("lr_scheduler", "param_schedulers", "monitor", "progress"):
        assert {k: v for k, v in again[part].items() if k != "elapsed"} == \
            {k: v for k, v in end[part].items() if k != "elapsed"}, part
    assert end["lr_scheduler"]["num_bad_epochs"] == 0  # the plateau rule halved the learning
    assert end["lr_scheduler"]["_last_lr"] == pytest.approx([0.003 / 8])  # rate after each epoch


def test_resume_without_a_state_starts_from_scratch(data, tmp_path):
    # a job script for a preemptible cluster can always pass --resume (detectron2's convention)
    main.main(run_args(data, tmp_path, "fresh", "--resume"))
    main.main(run_args(data, tmp_path, "straight"))
    fresh, straight = (tmp_path / "log" / "synthetic" / name for name in ("fresh", "straight"))
    assert "no resume state" in (fresh / "log.txt").read_text()
    assert (fresh / "fresh_last.pth").read_bytes() == (straight / "straight_last.pth").read_bytes()


def test_ctrl_c_ends_with_one_line_and_keeps_the_last_epoch(data, tmp_path, monkeypatch):
    original, calls = trainer.train_one_epoch, []

    def interrupted_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_one_epoch", interrupted_in_epoch_2)
    monkeypatch.setattr(sys, "argv", ["main.py", *run_args(data, tmp_path, "stopped")])
    with pytest.raises(SystemExit) as info:
        main.cli()
    assert info.value.code == ("interrupted: the state of the last completed epoch is kept; "
                               "continue the run with --resume")
    state = torch.load(tmp_path / "log" / "synthetic" / "stopped" / "stopped_resume.pth",
                       weights_only=True)
    assert state["progress"]["epoch"] == 1


def test_random_states_round_trip():
    generators = dict(loader=torch.Generator().manual_seed(1), latent=torch.Generator())
    state = rng_state(generators)
    draws = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=
             generators["loader"]), torch.rand(1, generator=generators["latent"]))
    restore_rng(state, generators)
    again = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=
             generators["loader"]), torch.rand(1, generator=generators["latent"]))
    assert draws[:2] == again[:2]
    assert all(torch.equal(a, b) for a, b in zip(draws[2:], again[2:]))


def test_trim_metrics_drops_the_killed_epoch(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"epoch": e}) + "\n" for e in (0, 1, 2)))
    trim_metrics(path, 1)
    assert [json.loads(ln)["epoch"] for ln in path.read_text().splitlines()] == [0, 1]


def test_interrupted_save_keeps_best_and_last(data, tmp_path, monkeypatch):
    main.main(run_args(data, tmp_path, "saved", "--set", "epochs=1"))
    run = tmp_path / "log" / "synthetic" / "saved"
    files = {name: (run / name).read_bytes() for name in
             ("saved_best_ged.pth", "saved_best_ged_optim.pth", "saved_last.pth")}

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise Killed

    monkeypatch.setattr("utils.runtime.checkpoint.torch.save", crash)
    with pytest.raises(Killed):  # a new run: its first save (best, after validation) dies
        main.main(run_args(data, tmp_path, "saved", "--set", "epochs=1"))
    for name, content in files.items():
        assert (run / name).read_bytes() == content, name
        torch.load(run / name, weights_only=True)  # still loadable
    assert not list(run.glob(".*.tmp"))  # no temporary file left behind


def test_resume_on_more_processes_gives_every_new_rank_its_own_latent_stream(tmp_path,
                                                                              monkeypatch):
    from utils.training import resume
    from utils.training.schedulers import CosineLR, LossMonitor, TrainingParamSchedulers
    from utils.training.state import Progress, TrainingParts

    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters())
    parts = TrainingParts(optimizer, CosineLR(optimizer), TrainingParamSchedulers(model, None),
                          LossMonitor())

    def generators():
        return dict(loader=torch.Generator().manual_seed(5),
                    latent=torch.Generator().manual_seed(7))

    cfg = dict(seed=3, epochs=2)
    path = tmp_path / "state.pth"
    saved = generators()
    torch.rand(3, generator=saved["latent"])  # the saved run has drawn from its stream
    resume.save_training_state(path, model, parts, Progress(epoch=1, best_ged=0.5, planned=2,
                                                            elapsed=1.0), saved, cfg)
    monkeypatch.setattr(resume, "world_size", lambda: 2)
    restored = {}
    for r in (0, 1):
        monkeypatch.setattr(resume, "rank", lambda r=r: r)
        restored[r] = generators()
        resume.load_training_state(path, model, parts, restored[r], cfg)
    # rank 0 continues the saved stream; rank 1 (new) starts its own, seeded from (seed, rank,
    # epoch); both share rank 0's data-order state
    assert torch.equal(restored[0]["latent"].get_state(), saved["latent"].get_state())
    fresh = torch.Generator().manual_seed(resume.new_rank_seed(3, 1, 1))
    assert torch.equal(restored[1]["latent"].get_state(), fresh.get_state())
    assert not torch.equal(restored[1]["latent"].get_state(), restored[0]["latent"].get_state())
    assert torch.equal(restored[1]["loader"].get_state(), saved["loader"].get_state())
    seeds = {resume.new_rank_seed(s, r, e) for s in range(3) for r in range(1, 9) for e in range(9)}
    assert len(seeds) == 3 * 8 * 9 and not seeds & set(range(12))  # distinct, not `seed + rank`
