"""Refitting the gating network after training (`gate_refit_steps`): the fit and its folded
standardisation, the targets the loss' coupling gives, the config checks, and a training run."""

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
from utils.training import trainer
from utils.training.gate_refit import (
    collect,
    epoch_batches,
    fit_gate,
    fit_image_gate,
    gate_loss,
    refit_gate,
)


def _model(K=4, S=2, gate_input="bottleneck"):
    torch.manual_seed(0)
    return MoSE(input_channels=1, num_classes=2, num_filters=[4, 8], latent_dim=2,
                num_expert=K, sample_per_mode=S, softmax=True, masked_pred=False,
                gate_input=gate_input)


def test_the_fit_learns_shares_that_follow_the_input_and_keeps_the_gate_s_shape():
    model = _model()
    torch.manual_seed(1)
    # inputs on a large offset and scale (standardisation matters), shares set by input 3
    inputs = torch.randn(400, 8) * 5 + 20  # (n, D)
    t = torch.sigmoid((inputs[:, 3] - 20) / 2)  # (n,)
    shares = torch.stack([t, 1 - t, torch.zeros_like(t), torch.zeros_like(t)], 1)  # (n, K)
    keys = {k: v.shape for k, v in model.gating.state_dict().items()}
    stats = fit_gate(model.gating.fc_layer, inputs, shares, steps=400, seed=0)
    assert {k: v.shape for k, v in model.gating.state_dict().items()} == keys  # same keys
    assert stats["after"] < stats["before"]
    with torch.no_grad():  # the folded layer on raw inputs: what the fit reached
        pi = torch.softmax(model.gating.fc_layer(inputs), 1)
        torch.testing.assert_close(float(gate_loss(model.gating.fc_layer(inputs), shares)),
                                   stats["after"])
    assert (pi[:, 0] - t).abs().mean() < 0.05  # it follows the input
    assert pi[:, 2:].max() < 0.05


def test_the_fit_is_seeded_and_leaves_the_global_random_state_alone():
    inputs, shares = torch.randn(50, 8), torch.softmax(torch.randn(50, 4), 1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b = _model(), _model()
    torch.set_rng_state(state)
    fit_gate(a.gating.fc_layer, inputs, shares, steps=20, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    fit_gate(b.gating.fc_layer, inputs, shares, steps=20, seed=5)
    for (k, va), vb in zip(a.gating.state_dict().items(), b.gating.state_dict().values()):
        assert torch.equal(va, vb), k


def test_the_targets_are_each_expert_s_share_of_the_loss_coupling_at_capacity_one():
    model = _model(K=4, S=2).eval()
    model.eval_sample_num = 5  # a standard-representation config: the pass is compact anyway
    torch.manual_seed(0)
    x = torch.randn(3, 1, 8, 8)
    labels = torch.randint(0, 2, (3, 4, 8, 8))
    probs = torch.tensor([[0.25] * 4, [0.5, 0.5, 0, 0], [0.1, 0.2, 0.3, 0.4]])
    loss_fn = OTLoss(gamma0=0.125, coupling="exact")
    data = collect(model, [(x, labels, probs)], loss_fn, torch.device("cpu"),
                   torch.Generator().manual_seed(0))
    assert loss_fn.gamma == 0.125 and model.eval_sample_num == 5  # restored
    model.eval_sample_num = None
    out = model(x, generator=torch.Generator().manual_seed(0))
    at_one = OTLoss(gamma0=1.0, coupling="exact")
    P = at_one.coupling(at_one.cost_matrix(out["pred"], labels), probs)  # (B, N, M)
    torch.testing.assert_close(data["shares"], P.sum(-1).view(3, 4, 2).sum(-1))
    torch.testing.assert_close(data["shares"].sum(1), torch.ones(3))
    with torch.no_grad():
        u_g, _ = model.backbone(x)
    torch.testing.assert_close(data["inputs"], u_g.mean((2, 3)))


def test_refit_gate_lowers_the_gate_loss_and_keeps_the_experts():
    model = _model()
    torch.manual_seed(0)
    batches = [(torch.randn(4, 1, 8, 8), torch.randint(0, 2, (4, 4, 8, 8)),
                torch.full((4, 4), 0.25)) for _ in range(3)]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = refit_gate(model, batches, OTLoss(gamma0=1.0), torch.device("cpu"), 200, seed=0)
    assert stats["images"] == 12 and stats["after"] < stats["before"]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("gating.") for k in changed)


@pytest.mark.parametrize("value,message", [(-1, "int >= 0"), (2.5, "expected int"),
                                           (True, "expected int|int >= 0")])
def test_bad_refit_settings_are_named(value, message):
    with pytest.raises(ConfigError, match=message):
        load_config("experiments/synthetic_lidc.py", [f"gate_refit_steps={value!r}"])


def test_refit_does_not_combine_with_grouping_and_baselines_drop_it():
    with pytest.raises(ConfigError, match="grouping"):
        load_config("experiments/synthetic_lidc.py", ["gate_refit_steps=10", "G0=0.5"])
    cfg = load_config("experiments/synthetic_lidc.py", ["gate_refit_steps=10", "method='ssn'"])
    assert cfg.gate_refit_steps == 0


def test_a_training_run_refits_the_best_checkpoint_and_tests_it(tmp_path, monkeypatch):
    seen = {}

    def spy(model, *args):  # the best checkpoint's weights as the refit receives them
        seen["before"] = {k: v.clone() for k, v in model.state_dict().items()}
        return refit_gate(model, *args)

    monkeypatch.setattr(trainer, "refit_gate", spy)
    args = tiny_run(tmp_path, "--set", "experiment_name=rf", "--set", "gate_refit_steps=50",
                    "--set", "test_after_training=True", "--set", "num_figures=0")
    results = main.main(["experiments/synthetic_lidc.py", *args])
    run = tmp_path / "log" / "synthetic" / "rf"
    log = (run / "log.txt").read_text()
    assert "gate refit (50 steps, 8 training images)" in log and "val ged" in log
    best = torch.load(run / "rf_best_ged.pth", map_location="cpu", weights_only=True)
    best = best.get("state_dict", best)
    before = seen["before"]
    changed = {k for k in before if not torch.equal(best[k], before[k])}
    assert changed and all(k.startswith("gating.") for k in changed)  # the gate only
    want = assert_reported_figures(results)  # the refitted checkpoint's brute-force figures
    assert math.isfinite(want["ged"])
    assert json.loads((run / "config.json").read_text())["gate_refit_steps"] == 50


def bright_spot_images(n: int, seed: int = 1):
    """(n, 1, 12, 12) images with one bright 2×2 spot at a random place; its brightness t sets
    the shares (t, 1 − t, 0, 0): a cue a global average would blur, in any orientation."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g)  # (n,)
    x = 0.05 * torch.randn(n, 1, 12, 12, generator=g)
    rows, cols = torch.randint(0, 11, (2, n), generator=g)
    for i in range(n):
        x[i, 0, rows[i]:rows[i] + 2, cols[i]:cols[i] + 2] += t[i]
    shares = torch.stack([t, 1 - t, torch.zeros_like(t), torch.zeros_like(t)], 1)  # (n, K)
    return x, shares


def test_the_image_gate_fit_learns_a_local_cue_is_seeded_and_leaves_the_rng_alone():
    x, shares = bright_spot_images(256)
    a, b = _model(gate_input="image"), _model(gate_input="image")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    stats = fit_image_gate(a.gating, x, shares, steps=150, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert stats["after"] < stats["before"]
    with torch.no_grad():
        pi = a.gating(x)  # (n, K)
    assert (pi[:, 0] - shares[:, 0]).abs().mean() < 0.1  # it reads the spot's brightness
    fit_image_gate(b.gating, x, shares, steps=150, seed=3)
    for (k, va), vb in zip(a.gating.state_dict().items(), b.gating.state_dict().values()):
        assert torch.equal(va, vb), k


def test_epoch_batches_cover_every_index_once_per_epoch():
    torch.manual_seed(0)
    batches = epoch_batches(10, 4)
    first = [next(batches) for _ in range(2)]  # 10 // 4 = 2 full batches per epoch
    assert all(len(b) == 4 for b in first) and len(set(torch.cat(first).tolist())) == 8
    assert len(next(epoch_batches(3, 4))) == 3  # fewer images than a batch: all of them


def test_an_image_gate_is_collected_as_images_and_refitted_whole():
    model = _model(gate_input="image")
    torch.manual_seed(0)
    batches = [(torch.randn(4, 1, 8, 8), torch.randint(0, 2, (4, 4, 8, 8)),
                torch.full((4, 4), 0.25)) for _ in range(3)]
    data = collect(model.eval(), batches, OTLoss(gamma0=1.0), torch.device("cpu"),
                   torch.Generator().manual_seed(0))
    torch.testing.assert_close(data["inputs"], torch.cat([b[0] for b in batches]))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = refit_gate(model, batches, OTLoss(gamma0=1.0), torch.device("cpu"), 30, seed=0)
    assert stats["images"] == 12 and stats["after"] < stats["before"]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("gating.encoder") for k in changed)
    assert all(k.startswith("gating.") for k in changed)
