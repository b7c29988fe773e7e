"""Stochastic Segmentation Networks: output dict, low-rank sampling, MC likelihood by hand,
gradients, checkpoints."""

import math

import pytest
import torch

from models.ssn import SSN, low_rank_sample
from tests.helpers import assert_checkpoint_round_trip, assert_finite_gradients
from tests.helpers import random_batch as batch
from utils.loss.ssn_nll import SSNLoss


def tiny(**overrides) -> SSN:
    kwargs = dict(input_channels=1, num_classes=2, num_filters=[4, 8, 8], rank=3, mc_samples=6,
                  softmax=True, masked_pred=False)
    kwargs.update(overrides)
    return SSN(**kwargs)


@pytest.mark.parametrize("C,softmax", [(2, True), (2, False), (5, True), (5, False)])
def test_train_and_eval_outputs(C, softmax):
    torch.manual_seed(0)
    model = tiny(num_classes=C, softmax=softmax, eval_sample_num=7)
    x, labels, probs = batch(C=C)
    out = model(x, label=labels, label_probs=probs)
    assert out["pred"].shape == (3, 6, C, 12, 10) and out["logits"].shape == (3, 6, C, 12, 10)
    assert out["logit_mean"].shape == (3, C, 12, 10)
    torch.testing.assert_close(out["target"], labels[torch.arange(3), out["annotation"]])
    torch.testing.assert_close(out["weights"], torch.full((3, 6), 1 / 6))
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out["pred"].shape == (3, 7, C, 12, 10) and "target" not in out
    torch.testing.assert_close(out["weights"], torch.full((3, 7), 1 / 7))
    if softmax:
        torch.testing.assert_close(out["pred"].sum(2), torch.ones(3, 7, 12, 10))
    else:
        torch.testing.assert_close(out["pred"], out["logits"])


def test_default_eval_sample_num_is_16_and_stored():
    model = tiny().eval()
    assert model.eval_sample_num == 16
    with torch.no_grad():
        assert model(batch()[0])["pred"].shape[1] == 16


def test_sampler_equals_torch_low_rank_normal_rsample():
    g = torch.Generator().manual_seed(0)
    B, D, R, n = 2, 9, 3, 5
    mean, factor = torch.randn(B, D, generator=g), torch.randn(B, D, R, generator=g)
    diag = torch.rand(B, D, generator=g) + 0.1
    torch.manual_seed(7)
    ours = low_rank_sample(mean, factor, diag, n)  # (B, n, D), global generator
    torch.manual_seed(7)
    theirs = torch.distributions.LowRankMultivariateNormal(mean, factor, diag).rsample((n,))
    torch.testing.assert_close(ours, theirs.transpose(0, 1))


def test_model_distribution_has_the_low_rank_covariance():
    torch.manual_seed(0)
    model = tiny(rank=2).eval()
    x = batch(B=1, H=4, W=4)[0]
    with torch.no_grad():
        mean, factor, diag = model.distribution_params(x)
        dist = model.distribution(x)
    assert mean.shape == (1, 32) and factor.shape == (1, 32, 2) and diag.shape == (1, 32)
    assert (diag > 0).all()
    torch.testing.assert_close(dist.covariance_matrix[0],
                               factor[0] @ factor[0].T + torch.diag(diag[0]))
    # the mean in (C, H, W) order is the eval output's logit_mean
    with torch.no_grad():
        torch.testing.assert_close(model(x)["logit_mean"].reshape(1, -1), mean)


def test_mc_log_likelihood_by_explicit_sampling():
    """The loss of a training forward, recomputed from the distribution with the same noise."""
    torch.manual_seed(0)
    model = tiny(num_classes=3, rank=2, mc_samples=4)
    x, labels, probs = batch(B=2, C=3, H=4, W=3)
    out = model(x, label=labels, label_probs=probs, generator=torch.Generator().manual_seed(9))
    loss, seg, kl = SSNLoss()(out, labels, probs)
    with torch.no_grad():
        mean, factor, diag = model.distribution_params(x)  # same batch: same batch-norm numbers
    g = torch.Generator().manual_seed(9)  # replay: annotation draw, factor noise, diagonal noise
    index = torch.multinomial(probs, 1, generator=g)[:, 0]
    eps_r, eps_d = torch.randn(4, 2, 2, generator=g), torch.randn(4, 2, 36, generator=g)
    expected = 0.0
    for b in range(2):
        y = labels[b, index[b]].flatten().tolist()  # (H·W,) pixel order
        log_liks = []
        for s in range(4):
            eta = (mean[b] + factor[b] @ eps_r[s, b] + diag[b].sqrt() * eps_d[s, b]).double()
            eta = eta.reshape(3, 12)  # (C, H·W)
            log_liks.append(sum(eta[y[p], p].item() - math.log(eta[:, p].exp().sum().item())
                                for p in range(12)))
        top = max(log_liks)
        expected -= top + math.log(sum(math.exp(v - top) for v in log_liks) / 4)
    assert loss.item() == pytest.approx(expected / 2, rel=1e-4)
    assert seg.item() == loss.item() and kl.item() == 0


def test_mc_loss_is_minus_log_mean_likelihood():
    # two samples with likelihoods e^-1 and e^-3 on one pixel-free check: -log((e^-1 + e^-3)/2)
    logits = torch.tensor([[[[[0.0]], [[math.log(math.e - 1)]]],
                            [[[0.0]], [[math.log(math.e ** 3 - 1)]]]]])  # (1, 2, 2, 1, 1)
    target = torch.zeros(1, 1, 1, dtype=torch.long)
    loss = SSNLoss()(dict(logits=logits, target=target), target[:, None], torch.ones(1, 1))[0]
    assert loss.item() == pytest.approx(-math.log((math.exp(-1) + math.exp(-3)) / 2), rel=1e-5)


def test_loss_needs_a_training_output():
    with pytest.raises(ValueError, match="training-mode"):
        SSNLoss()(dict(logits=torch.zeros(1, 1, 2, 2, 2)), torch.zeros(1, 1, 2, 2).long(), None)


@pytest.mark.parametrize("softmax", [True, False])
def test_masked_pred_outputs_class_zero_on_void(softmax):
    model = tiny(num_classes=3, softmax=softmax, masked_pred=True).eval()
    x, labels, _ = batch(C=3)
    labels[:, 0, :4] = 0
    with torch.no_grad():
        pred = model(x, label=labels)["pred"]  # (B, N, C, H, W)
    assert (pred[:, :, 0, :4] == 1).all() and (pred[:, :, 1:, :4] == 0).all()


@pytest.mark.parametrize("C", [2, 4])
def test_every_parameter_gets_a_finite_gradient(C):
    torch.manual_seed(0)
    model = tiny(num_classes=C)
    x, labels, probs = batch(C=C)
    loss, _, _ = SSNLoss()(model(x, label=labels, label_probs=probs), labels, probs)
    loss.backward()
    assert_finite_gradients(model)


def test_checkpoint_round_trip(tmp_path):
    assert_checkpoint_round_trip(tiny, *batch(), tmp_path / "ssn.pth")
