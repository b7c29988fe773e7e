"""The baselines in MoSE's protocol: `--set method=...` trains, validates, tests, draws figures,
sweeps sample counts and calibrates modes through the same code as MoSE."""

import json
import math

import pytest
import torch

import main
from models.prob_unet import ProbUnet
from models.ssn import SSN
from tests.independent import assert_reported_figures
from utils.evaluation.sweep import has_experts, sampling
from utils.loss.elbo import ELBOLoss
from utils.training.schedulers import TrainingParamSchedulers


def tiny_run(tmp_path, method, *extra):
    """--set items of a tiny synthetic LIDC run of `method` under tmp_path (8 train images)."""
    return ["experiments/synthetic_lidc.py", "--device", "cpu",
            "--set", f"method={method}", "--set", f"data_folder={tmp_path / 'data'}",
            "--set", f"log_root={tmp_path / 'log'}", "--set", f"run_root={tmp_path / 'runs'}",
            "--set", "synthetic_options={'n_train': 8, 'n_val': 4, 'n_test': 5, 'size': 16}",
            "--set", "num_filters=[4, 8]", "--set", "epochs=1", "--set", "train_batch_size=4",
            "--set", "val_batch_size=4", "--set", "test_batch_size=2",
            "--set", "prob_unet_latent_dim=2", "--set", "ssn_rank=2", "--set", "ssn_mc_samples=4",
            "--set", "eval_sample_num=6", "--set", "num_figures=1", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["prob_unet", "ssn"])
def test_train_test_figures_sweep_and_demo(tmp_path, method):
    results = main.main(tiny_run(tmp_path, method, "--set", "sweep=True",
                                 "--set", "sweep_counts=[1, 3]"))
    run = tmp_path / "log" / "synthetic" / "synthetic_lidc"
    for name in ("synthetic_lidc_best_ged.pth", "synthetic_lidc_last.pth", "metrics.jsonl",
                 "test/results_standard_N6.json", "test/figures/sample_grid_0.png",
                 "test/mode_calibration.json", "test/sweep.json", "test/sweep.png"):
        assert (run / name).is_file(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[1]["train_steps"] == 2 and "gamma" not in records[1]  # no MoSE schedules
    if method == "ssn":
        assert records[1]["train_kl"] == 0
    assert results["representation"] == "standard" and results["num_samples"] == 6
    want = assert_reported_figures(results)  # the brute-force figures of the best checkpoint
    assert math.isfinite(want["ged"]) and results["true_ged"] > 0
    sweep = json.loads((run / "test" / "sweep.json").read_text())
    assert [e["num_samples"] for e in sweep["standard"]] == [1, 3] and sweep["compact"] == []
    again = main.main(["--demo", "test", *tiny_run(tmp_path, method)])
    assert (again["ged"], again["ece"]) == (results["ged"], results["ece"])


def test_a_checkpoint_of_another_method_is_a_clear_error(tmp_path):
    main.main(tiny_run(tmp_path, "ssn", "--set", "num_figures=0",
                       "--set", "test_after_training=False"))
    with pytest.raises(ValueError, match="checkpoint does not fit the model"):
        main.main(["--demo", "test", *tiny_run(tmp_path, "prob_unet")])


@pytest.mark.parametrize("cls", [ProbUnet, SSN])
def test_sampling_context_leaves_a_baseline_standard(cls):
    model = cls(input_channels=1, num_classes=2, num_filters=[4, 8], eval_sample_num=5).eval()
    assert not has_experts(model)
    with sampling(model, None):  # MoSE's "compact" request: a baseline keeps its samples
        assert model.eval_sample_num == 5
    with sampling(model, 9):
        with torch.no_grad():
            assert model(torch.randn(1, 1, 8, 8))["pred"].shape[1] == 9
    assert model.eval_sample_num == 5


def test_param_schedulers_have_nothing_to_schedule_for_a_baseline():
    model = ProbUnet(input_channels=1, num_classes=2, num_filters=[4, 8])
    schedulers = TrainingParamSchedulers(model, ELBOLoss())
    assert schedulers.values() == {} and schedulers.step(1.0, 0.0, 1) == []
    with pytest.raises(ValueError, match="set gamma_scheduler_options to None"):
        TrainingParamSchedulers(model, ELBOLoss(), dict(values=[1.0], patience=1))


def test_zero_weight_annotations_are_never_trained_on():
    """Folder datasets pad varying rater counts with zero-weight annotations."""
    torch.manual_seed(0)
    model = SSN(input_channels=1, num_classes=2, num_filters=[4, 8], rank=2, mc_samples=2)
    labels = torch.randint(0, 2, (64, 3, 4, 4))
    probs = torch.tensor([0.5, 0.5, 0.0]).expand(64, 3)
    out = model(torch.randn(64, 1, 4, 4), label=labels, label_probs=probs)
    assert (out["annotation"] < 2).all()
