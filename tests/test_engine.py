"""End-to-end: a two-step training run with evaluation, --demo on an authors'-layout run folder,
and the command line's error messages."""

import json
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import main
from data.synthetic import make_lidc
from tests import independent
from tests.independent import assert_reported_figures
from utils import build
from utils.config.config import Config, load_config
from utils.training import trainer
from utils.training.engine import train_one_epoch
from utils.training.schedulers import LossMonitor

REFERENCE_WEIGHTS = Path("tests/data/forward_lidc_state_dict.pth")
# the size of the model whose weights are in REFERENCE_WEIGHTS (authors' key names)
REFERENCE_MODEL = ["num_filters=[8, 16, 32, 32, 32, 32, 32]", "sample_per_mode=2"]


def tiny_run(tmp_path, *extra):
    """--set items of a tiny synthetic LIDC run under tmp_path (8 train images, batch 4)."""
    return ["--device", "cpu",
            "--set", f"data_folder={tmp_path / 'data'}", "--set", f"log_root={tmp_path / 'log'}",
            "--set", f"run_root={tmp_path / 'runs'}",
            "--set", "synthetic_options={'n_train': 8, 'n_val': 4, 'n_test': 5, 'size': 16}",
            "--set", "num_filters=[4, 8]", "--set", "sample_per_mode=2", "--set", "epochs=1",
            "--set", "latent_dim=1", "--set", "gamma0=0.5",
            "--set", "train_batch_size=4", "--set", "val_batch_size=4",
            "--set", "test_batch_size=2", "--set", "max_train_minutes=None",
            "--set", "gate_refit_steps=20", *extra]


def test_two_step_training_run_then_test(tmp_path):
    results = main.main(["experiments/synthetic_lidc.py", *tiny_run(tmp_path)])
    run = tmp_path / "log" / "synthetic" / "synthetic_lidc"
    for name in ("synthetic_lidc_best_ged.pth", "synthetic_lidc_best_ged_optim.pth",
                 "synthetic_lidc_last.pth", "config.json", "synthetic_lidc.py", "log.txt",
                 "metrics.jsonl", "test/results_compact_S2.json"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1]
    assert records[1]["train_steps"] == 2  # 8 images, batch 4
    assert records[1]["gamma"] == 0.5 and records[1]["S"] == 2
    assert json.loads((run / "config.json").read_text())["epochs"] == 1
    assert any((tmp_path / "runs" / "synthetic" / "synthetic_lidc").iterdir())  # TensorBoard
    # test results on all 5 images (the last incomplete batch kept) are the brute-force figures
    # of the best checkpoint (after its gate refit), with the truth figures
    assert results["num_images"] == 5 and results["num_samples"] == 8
    want = assert_reported_figures(results)
    assert math.isfinite(want["ged"]) and math.isfinite(want["miou"])
    assert results["true_ged"] > 0 and 0 <= results["mode_mass_error"] <= 1
    # the best checkpoint (before the refit) is the epoch with the lowest validation GED, and
    # that GED is its brute-force validation GED
    cfg = Config(results["config"])
    best = run / "synthetic_lidc_best_ged_before_refit.pth"
    val = independent.split_figures(cfg, best, "val")
    assert min(r["val_ged"] for r in records) == pytest.approx(val["ged"], rel=1e-6, abs=1e-7)
    # --demo test on the saved best checkpoint repeats the numbers exactly (own eval seed);
    # --demo val gives the refitted checkpoint's brute-force validation figures
    again = main.main(["experiments/synthetic_lidc.py", "--demo", "test", *tiny_run(tmp_path)])
    for key in ("ged", "miou", "ece", "true_ged", "mode_mass_error"):
        assert again[key] == results[key], key
    val_demo = main.main(["experiments/synthetic_lidc.py", "--demo", "val", *tiny_run(tmp_path)])
    assert val_demo["num_images"] == 4 and (run / "val" / "results_compact_S2.json").is_file()
    assert_reported_figures(val_demo, "val")


def test_a_cityscapes_layout_run_reports_its_brute_force_figures(tmp_path):
    # 25 classes, 10 evaluated, void masking, logits, the black-box channel, training crops of
    # the 32x64 scenes: the test figures are those of the tests' own metrics
    args = ["--device", "cpu", "--set", f"data_folder={tmp_path / 'data'}",
            "--set", f"log_root={tmp_path / 'log'}", "--set", f"run_root={tmp_path / 'runs'}",
            "--set", "synthetic_options={'n_train': 4, 'n_val': 2, 'n_test': 3, 'size': (32, 64)}",
            "--set", "num_filters=[8, 8]",
            "--set", "latent_dim=1", "--set", "num_expert=2", "--set", "gamma0=0.5",
            "--set", "epochs=1", "--set", "train_batch_size=2", "--set", "val_batch_size=2",
            "--set", "test_batch_size=2", "--set", "num_figures=0", "--set", "num_chunks=1"]
    results = main.main(["experiments/synthetic_cityscapes.py", *args])
    assert results["num_images"] == 3 and results["num_samples"] == 2
    assert_reported_figures(results)  # after two steps, hardly any evaluated class is drawn
    # the trained weights with three evaluated classes favoured over the rest (the features
    # choose among them): samples that draw them, so every figure is defined and non-trivial
    run = tmp_path / "log" / "synthetic" / "synthetic_cityscapes"
    weights = torch.load(run / "synthetic_cityscapes_best_ged.pth", weights_only=True)
    weights = weights.get("state_dict", weights)
    weights["last_layer.bias"][[2, 12, 14]] += 5.0
    torch.save(weights, tmp_path / "favoured.pth")
    demo = main.main(["experiments/synthetic_cityscapes.py", "--demo", "test", "--ckpt",
                      str(tmp_path / "favoured.pth"), *args])
    want = assert_reported_figures(demo)
    assert math.isfinite(want["ged"]) and want["miou"] > 0 and want["ece"][0] > 0


def test_the_same_command_twice_gives_the_same_results_file(tmp_path):
    # no clock in the result: a fixed number of epochs and seeded sampling, so two runs of one
    # command on one machine write identical results (paths aside)
    files = []
    for name in ("first", "second"):
        args = tiny_run(tmp_path, "--set", f"experiment_name={name}", "--set", "epochs=2",
                        "--set", "test_after_training=True", "--set", "num_figures=0")
        main.main(["experiments/synthetic_lidc.py", *args])
        run = tmp_path / "log" / "synthetic" / name
        result = json.loads((run / "test" / "results_compact_S2.json").read_text())
        for key in ("checkpoint", "config"):
            result.pop(key)
        files.append(result)
        assert (run / f"{name}_last.pth").is_file()
    assert files[0] == files[1]
    last = [torch.load(tmp_path / "log" / "synthetic" / n / f"{n}_last.pth", weights_only=True)
            for n in ("first", "second")]
    assert all(torch.equal(last[0][k], last[1][k]) for k in last[0])


def test_demo_on_authors_checkpoint_layout(tmp_path):
    make_lidc(str(tmp_path / "data64"), n_train=2, n_val=2, n_test=5, size=64, seed=1)
    run = tmp_path / "log" / "lidc" / "lidc_pretrained"
    run.mkdir(parents=True)
    shutil.copy(REFERENCE_WEIGHTS, run / "lidc_pretrained_best_ged.pth")
    common = ["experiments/lidc_proposed.py", "--demo", "test", "--device", "cpu",
              "--set", f"data_folder={tmp_path / 'data64'}", "--set",
              f"log_root={tmp_path / 'log'}", "--set", "experiment_name=lidc_pretrained",
              "--set", "test_batch_size=2"]
    for arg in REFERENCE_MODEL:
        common += ["--set", arg]
    main.main(common)
    # the results file written by the demo holds the brute-force figures of the authors' weights
    saved = json.loads((run / "test" / "results_compact_S2.json").read_text())
    assert saved["num_images"] == 5 and saved["representation"] == "compact"
    assert saved["num_samples"] == 8 and saved["checkpoint"].endswith("best_ged.pth")
    assert saved["config"]["experiment_name"] == "lidc_pretrained"
    want = assert_reported_figures(saved)
    assert math.isfinite(want["ged"])
    main.main(common + ["--set", "eval_sample_num=16"])
    standard = json.loads((run / "test" / "results_standard_N16.json").read_text())
    assert standard["representation"] == "standard" and standard["num_samples"] == 16
    assert_reported_figures(standard)  # uniform weights: the Hungarian matching


def test_demo_with_a_checkpoint_that_does_not_fit(tmp_path):
    weights = tmp_path / "w.pth"
    shutil.copy(REFERENCE_WEIGHTS, weights)
    make_lidc(str(tmp_path / "data"), n_train=2, n_val=2, n_test=2, size=32, seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        main.main(["experiments/lidc_proposed.py", "--demo", "test", "--ckpt", str(weights),
                   "--set", f"data_folder={tmp_path / 'data'}",
                   "--set", f"log_root={tmp_path / 'log'}"])


def test_validation_split_smaller_than_a_batch(tmp_path):
    with pytest.raises(ValueError, match="fewer than val_batch_size=8: lower val_batch_size"):
        main.main(["experiments/synthetic_lidc.py",
                   *tiny_run(tmp_path, "--set", "val_batch_size=8")])


def test_missing_checkpoint_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train first"):
        main.main(["experiments/lidc_proposed.py", "--demo", "test",
                   "--set", f"log_root={tmp_path / 'log'}"])


def test_cli_errors_are_one_line():
    proc = subprocess.run([sys.executable, "main.py", "experiments/lidc_proposed.py",
                           "--set", "epoch=3"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "unknown setting 'epoch' in --set; did you mean 'epochs'?" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_requested_without_gpu(tmp_path):
    with pytest.raises(ValueError, match="no CUDA GPU"):
        main.main(["experiments/lidc_proposed.py", "--device", "cuda",
                   "--set", f"log_root={tmp_path / 'log'}"])


def test_a_passed_deadline_ends_the_epoch_after_one_step():
    cfg = load_config("experiments/synthetic_lidc.py", ["num_filters=[4, 8]", "latent_dim=1"])
    model, loss_fn = build.build_model(cfg), build.build_loss(cfg)
    data = TensorDataset(torch.randn(6, 1, 8, 8), torch.randint(0, 2, (6, 4, 8, 8)),
                         torch.full((6, 4), 0.25))
    loader = DataLoader(data, batch_size=2)
    optimizer = torch.optim.Adam(model.parameters())
    stats = train_one_epoch(model, loader, loss_fn, optimizer, LossMonitor(), torch.device("cpu"),
                            deadline=time.time() - 1)
    assert stats["steps"] == 1 and stats["cut_short"]
    stats = train_one_epoch(model, loader, loss_fn, optimizer, LossMonitor(), torch.device("cpu"))
    assert stats["steps"] == 3 and not stats["cut_short"]


def test_an_undefined_validation_ged_still_writes_a_best_checkpoint(tmp_path, monkeypatch):
    # e.g. a Cityscapes validation where no sample or annotation holds an evaluated class
    original = trainer.evaluate
    monkeypatch.setattr(trainer, "evaluate",
                        lambda *args, **kwargs: dict(original(*args, **kwargs), ged=math.nan))
    main.main(["experiments/synthetic_lidc.py",
               *tiny_run(tmp_path, "--set", "test_after_training=False")])
    run = tmp_path / "log" / "synthetic" / "synthetic_lidc"
    assert (run / "synthetic_lidc_best_ged.pth").is_file()
    assert (run / "synthetic_lidc_best_ged_optim.pth").is_file()
