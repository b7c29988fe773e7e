"""Re-seeding dead experts (`revive_experts`): the per-expert usage the loss reports, the
re-seeding rule, its config checks, and a training run that uses it."""

import json
import math

import pytest
import torch

import main
from models import MoSE
from tests.independent import assert_reported_figures
from tests.test_engine import tiny_run
from utils.config.config import ConfigError, load_config
from utils.loss.ot_loss import OTLoss
from utils.training.revive import ExpertUsage, revive_dead_experts


def _usage(mass, cost):
    usage = ExpertUsage()
    usage.mass, usage.cost = torch.tensor(mass), torch.tensor(cost)
    return usage


def _model(K=4, L=2):
    torch.manual_seed(0)
    return MoSE(input_channels=1, num_classes=2, num_filters=[4, 8], latent_dim=L,
                num_expert=K, sample_per_mode=2, softmax=True, masked_pred=False)


def test_the_loss_reports_coupled_mass_and_cost_per_expert():
    torch.manual_seed(0)
    B, K, S, M, C = 3, 4, 2, 4, 2
    pred = torch.softmax(torch.randn(B, K * S, C, 6, 6), dim=2)
    gt = torch.randint(0, C, (B, M, 6, 6))
    v = torch.full((B, M), 1 / M)
    u = torch.full((B, K * S), 1 / (K * S))
    for gamma in (0.25, 1.0):
        loss_fn = OTLoss(gamma0=gamma)
        _, seg, _ = loss_fn(gt, pred, u, v, sample_shape=(K, S))
        P = loss_fn.coupling(loss_fn.cost_matrix(pred, gt), v)  # (B, N, M)
        expected = P.sum(-1).view(B, K, S).sum(dim=(0, 2))  # (K,)
        assert torch.allclose(loss_fn.last_expert_mass, expected)
        assert torch.isclose(loss_fn.last_expert_mass.sum(), torch.tensor(float(B)))
        assert torch.isclose(loss_fn.last_expert_cost.sum() / B, seg)  # seg = batch mean
    usage = ExpertUsage()
    usage.update(loss_fn)
    usage.update(loss_fn)
    assert torch.allclose(usage.mass, 2 * loss_fn.last_expert_mass)
    usage.update(object())  # a loss without the statistics (the baselines): ignored
    assert torch.allclose(usage.mass, 2 * loss_fn.last_expert_mass)


def test_a_dead_expert_takes_the_prior_of_the_worst_fitting_live_expert():
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.mu.grad = torch.randn_like(model.mu)
    model.log_sigma.grad = torch.randn_like(model.log_sigma)
    optimizer.step()  # Adam moments exist
    with torch.no_grad():
        model.log_sigma.copy_(torch.log(torch.rand(4, 2) * 0.2 + 0.05))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # expert 2 is dead; expert 1 fits its annotations worst, expert 3 second
    lines = revive_dead_experts(model, optimizer, _usage([40.0, 30.0, 0.1, 30.0],
                                                         [1.0, 6.0, 0.0, 3.0]),
                                threshold=0.01, generator=torch.Generator().manual_seed(0))
    assert lines[0] == ("coupled mass share per expert 0.400 0.300 0.001 0.300, "
                        "coupled cost 0.0100 0.0599 0.0000 0.0300")
    assert len(lines) == 2 and lines[1].startswith("expert 2 ") and "from expert 1 " in lines[1]
    assert torch.equal(model.log_sigma[2], model.log_sigma[1])
    sigma = torch.exp(model.log_sigma[1])
    step = (model.mu[2] - model.mu[1]).detach()
    assert 0 < step.abs().max() < 5 * sigma.max()  # moved, by about one prior std
    for k in (0, 1, 3):  # live experts are untouched
        assert torch.equal(model.mu[k], before["mu"][k])
        assert torch.equal(model.log_sigma[k], before["log_sigma"][k])
    for name, value in before.items():  # and so is everything but the priors
        if name not in ("mu", "log_sigma"):
            assert torch.equal(model.state_dict()[name], value), name
    for moment in ("exp_avg", "exp_avg_sq"):
        state = optimizer.state[model.mu][moment]
        assert torch.equal(state[2], state[1])


def test_nothing_is_revived_when_every_expert_is_used_or_nothing_was_recorded():
    model = _model()
    optimizer = torch.optim.Adam(model.parameters())
    before = model.mu.detach().clone()
    usage = _usage([1.0, 1.0, 1.0, 1.0], [0.1, 0.2, 0.3, 0.4])
    assert len(revive_dead_experts(model, optimizer, usage, threshold=0.1)) == 1  # shares only
    assert revive_dead_experts(model, optimizer, ExpertUsage(), threshold=0.1) == []
    assert torch.equal(model.mu, before)


def test_two_dead_experts_get_two_different_donors():
    model = _model(K=4)
    optimizer = torch.optim.Adam(model.parameters())
    lines = revive_dead_experts(model, optimizer, _usage([0.0, 5.0, 0.0, 5.0], [0, 1.0, 0, 2.0]),
                                threshold=0.05, generator=torch.Generator().manual_seed(1))
    assert [line.split(" from expert ")[1][0] for line in lines[1:]] == ["3", "1"]
    assert torch.equal(model.log_sigma[0], model.log_sigma[3])
    assert torch.equal(model.log_sigma[2], model.log_sigma[1])


@pytest.mark.parametrize("value, message", [
    ({"threshold": 0.02}, "exactly the keys"),
    ({"threshold": 1.5, "epochs": [1, 2]}, "'threshold' must be in (0, 1)"),
    ({"threshold": 0.1, "epochs": [3, 2]}, "'epochs' must be [first, last]"),
    ({"threshold": 0.1, "epochs": [0, 2]}, "'epochs' must be [first, last]"),
])
def test_bad_revive_settings_are_named(value, message):
    with pytest.raises(ConfigError, match="revive_experts") as err:
        load_config("experiments/synthetic_lidc.py", [f"revive_experts={value!r}"])
    assert message in str(err.value)


def test_the_baselines_ignore_revival():
    cfg = load_config("experiments/synthetic_lidc.py",
                      ["method='ssn'", "revive_experts={'threshold': 0.1, 'epochs': [1, 2]}"])
    assert cfg.revive_experts is None


def test_a_training_run_revives_and_logs_it(tmp_path):
    # three experts share 8 images x 4 annotations under the nearest-sample coupling: shares
    # in units of 1/32 cannot all be 1/3, so one is below the threshold 0.34 and one above:
    # the run re-seeds, logs it, and still trains and tests normally
    args = tiny_run(tmp_path, "--set", "experiment_name=rv", "--set", "epochs=2",
                    "--set", "latent_dim=1", "--set", "num_expert=3", "--set", "gamma0=1.0",
                    "--set", "gamma_scheduler_options=None",  # γ = 1 throughout
                    "--set", "revive_experts={'threshold': 0.34, 'epochs': [2, 2]}",
                    "--set", "test_after_training=True", "--set", "num_figures=0")
    results = main.main(["experiments/synthetic_lidc.py", *args])
    log = (tmp_path / "log" / "synthetic" / "rv" / "log.txt").read_text()
    assert "epoch 2: expert " in log and "re-seeded from expert" in log
    assert "epoch 1: expert " not in log  # outside the window
    want = assert_reported_figures(results)  # brute-force figures of the tested checkpoint
    assert math.isfinite(want["ged"])
    config = json.loads((tmp_path / "log" / "synthetic" / "rv" / "config.json").read_text())
    assert config["revive_experts"] == {"threshold": 0.34, "epochs": [2, 2]}
