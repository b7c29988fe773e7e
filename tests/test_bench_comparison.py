"""The bookkeeping of benchmarks/bench_comparison.py: run names, validation curves, the plateau
epoch, the tuning rule (the same learning-rate grid for every method, then each method's own
setting) and the tables; the runs are faked, nothing is trained."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import benchmarks.bench_comparison as bc


def test_run_name_names_every_setting_the_budget_and_the_seed():
    assert bc.run_name("ssn", dict(lr=3e-3, ssn_rank=20), 48, 1) == "ssn_lr0.003_ssn_rank20_e48_s1"
    assert bc.run_name("mose", dict(lr=1e-2), 16, 0) == "mose_lr0.01_e16_s0"


def test_overrides_carry_settings_budget_seed_and_no_test():
    args = SimpleNamespace(runs="log/x", data="d")
    sets = bc.overrides("n", dict(lr=0.001, beta=10.0), 48, 2, args)
    values = sets[1::2]
    assert sets[::2] == ["--set"] * len(values)
    for item in ("seed=2", "epochs=48", "lr=0.001", "beta=10.0", "experiment_name=n",
                 "test_after_training=False", "data_folder=d"):
        assert item in values


def test_curve_reads_the_validation_ged_of_every_epoch(tmp_path):
    records = [dict(epoch=0, val_ged=0.9), dict(epoch=1, train_loss=1.0),
               dict(epoch=1, val_ged=0.5), dict(epoch=2, val_ged=0.4)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    assert bc.curve(tmp_path) == [0.9, 0.5, 0.4]


def test_curve_leaves_a_hole_where_an_epoch_was_not_validated(tmp_path):
    records = [dict(epoch=0, val_ged=0.9), dict(epoch=2, val_ged=0.4)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    assert bc.curve(tmp_path) == [0.9, None, 0.4]


def test_plateau_is_the_first_epoch_within_tolerance_of_the_best():
    assert bc.plateau_epoch([1.0, 0.5, 0.304, 0.31, 0.3], tol=0.02) == 2
    assert bc.plateau_epoch([1.0, 0.5, 0.304, 0.31, 0.3], tol=0.01) == 4
    assert bc.plateau_epoch([None, 0.5, float("nan"), 0.5]) == 1


def fake_runs(monkeypatch, val):
    """Replace training by a table of best validation GEDs; returns the list of runs made."""
    made = []

    def run_one(method, settings, epochs, seed, test, args):
        made.append((method, dict(settings), epochs, seed, test))
        key = (method,) + tuple(sorted(settings.items()))
        return dict(method=method, settings=dict(settings), epochs=epochs, seed=seed,
                    best_val_ged=val[key])

    monkeypatch.setattr(bc, "run_one", run_one)
    return made


def test_tuning_picks_the_learning_rate_then_the_methods_own_setting(monkeypatch):
    val = {("mose", ("lr", 1e-3)): 0.30, ("mose", ("lr", 1e-2)): 0.20,
           ("ssn", ("lr", 1e-3), ("ssn_rank", 10)): 0.50,
           ("ssn", ("lr", 1e-2), ("ssn_rank", 10)): 0.40,
           ("ssn", ("lr", 1e-2), ("ssn_rank", 20)): 0.35,
           ("prob_unet", ("beta", 1.0), ("lr", 1e-3)): 0.25,
           ("prob_unet", ("beta", 1.0), ("lr", 1e-2)): 0.45,
           ("prob_unet", ("beta", 10.0), ("lr", 1e-3)): 0.26}
    made = fake_runs(monkeypatch, val)
    args = SimpleNamespace(methods=["mose", "ssn", "prob_unet"], lrs=[1e-3, 1e-2], long=48,
                           tune_epochs=32, seeds=[0, 1], jobs=1)
    chosen = bc.tune(args)
    assert chosen == dict(mose=dict(lr=1e-2), ssn=dict(lr=1e-2, ssn_rank=20),
                          prob_unet=dict(lr=1e-3, beta=1.0))
    grid = made[:6]
    assert {(m, s["lr"]) for m, s, *_ in grid} == {(m, lr) for m in args.methods
                                                    for lr in args.lrs}
    # every tuning run has the tuning budget, not the long one
    assert all(e == 32 and seed == 0 and not test for _, _, e, seed, test in made)
    # the second value of a method's own setting is tried only at its chosen learning rate
    assert ("ssn", dict(lr=1e-2, ssn_rank=20), 32, 0, False) in made
    assert ("prob_unet", dict(lr=1e-3, beta=10.0), 32, 0, False) in made
    assert not any(m == "mose" for m, *_ in made[6:])


def test_summary_and_table_give_mean_min_and_max_over_seeds():
    runs = [dict(method="ssn", seed=s, ged_ratio=r, ece=e, plateau_epoch=p)
            for s, r, e, p in ((0, 1.2, 0.01, 30), (1, 1.4, 0.03, 40))]
    summary = bc.summarise(runs)
    assert summary["ssn"]["ged_ratio"] == dict(mean=pytest.approx(1.3), min=1.2, max=1.4)
    assert summary["ssn"]["seeds"] == [0, 1]
    text = bc.table(summary, dict(ssn=dict(lr=0.003, ssn_rank=20)), dict(ssn=1234))
    row = text.splitlines()[2]
    assert row.startswith("| SSN | lr 0.003, ssn_rank 20 | 1.300 (1.200–1.400) |")
    assert "2.00 (1.00–3.00)" in row and "35 (30–40)" in row and row.endswith("| 1,234 |")


def test_add_puts_another_config_under_the_same_protocol(monkeypatch):
    monkeypatch.setattr(bc, "CONFIGS", dict(bc.CONFIGS))
    monkeypatch.setattr(bc, "NAMES", dict(bc.NAMES))
    args = bc.parse_args(["--methods", "mose_paper", "--add", "mine=experiments/synthetic_lidc.py"])
    assert args.methods == ["mose_paper", "mine"]
    assert bc.CONFIGS["mine"] == "experiments/synthetic_lidc.py"


@pytest.mark.parametrize("argv", [["--add", "mine"], ["--add", "mine=experiments/none.py"],
                                  ["--methods", "nobody"]])
def test_bad_methods_stop_with_a_usage_error(argv, monkeypatch, capsys):
    monkeypatch.setattr(bc, "CONFIGS", dict(bc.CONFIGS))
    monkeypatch.setattr(bc, "NAMES", dict(bc.NAMES))
    with pytest.raises(SystemExit):
        bc.parse_args(argv)
    assert "CONFIG" in capsys.readouterr().err


def test_late_gain_compares_the_last_quarter_with_the_first_three():
    from benchmarks.plot_comparison import convergence, late_gain

    assert late_gain(np.array([1.0, 0.5, 0.4, 0.4, 0.4])) == 0.0
    assert late_gain(np.array([1.0, 0.5, 0.5, 0.5, 0.4])) == pytest.approx(0.25)
    runs = [dict(method="ssn", val_curve=[1.0, 0.5, 0.5, 0.5, 0.4]),
            dict(method="ssn", val_curve=[1.0, 0.5, 0.5, 0.5, 0.4])]
    assert convergence({"4": dict(runs=runs)}) == {"4": dict(ssn=dict(flat_from=4,
                                                                       late_gain=0.25))}


def test_the_tuning_budget_defaults_to_the_long_budget():
    assert bc.parse_args(["--long", "40"]).tune_epochs == 40
    assert bc.parse_args(["--long", "48", "--tune-epochs", "32"]).tune_epochs == 32
