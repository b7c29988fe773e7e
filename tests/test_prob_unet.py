"""Probabilistic U-Net: output dict, annotation draw, KL and ELBO by hand, gradients, checkpoint."""

import math

import pytest
import torch
import torch.nn.functional as F

from models.prob_unet import Fcomb, ProbUnet, draw_annotation, kl_diag_gaussians
from tests.helpers import assert_checkpoint_round_trip, assert_finite_gradients
from tests.helpers import random_batch as batch
from utils.loss.elbo import ELBOLoss


def tiny(**overrides) -> ProbUnet:
    kwargs = dict(input_channels=1, num_classes=2, num_filters=[4, 8, 8], latent_dim=3,
                  softmax=True, masked_pred=False)
    kwargs.update(overrides)
    return ProbUnet(**kwargs)


@pytest.mark.parametrize("C,softmax", [(2, True), (2, False), (5, True), (5, False)])
def test_train_and_eval_outputs(C, softmax):
    torch.manual_seed(0)
    model = tiny(num_classes=C, softmax=softmax, eval_sample_num=7)
    x, labels, probs = batch(C=C)
    out = model(x, label=labels, label_probs=probs)
    assert out["pred"].shape == (3, 1, C, 12, 10) and out["logits"].shape == (3, 1, C, 12, 10)
    assert out["kl"].shape == (3,) and (out["kl"] >= 0).all()
    assert out["target"].shape == (3, 12, 10)
    torch.testing.assert_close(out["target"], labels[torch.arange(3), out["annotation"]])
    torch.testing.assert_close(out["weights"], torch.ones(3, 1))
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out["pred"].shape == (3, 7, C, 12, 10) and "kl" not in out
    torch.testing.assert_close(out["weights"], torch.full((3, 7), 1 / 7))
    if softmax:
        torch.testing.assert_close(out["pred"].sum(2), torch.ones(3, 7, 12, 10))
        torch.testing.assert_close(out["pred"], out["logits"].softmax(2))
    else:
        torch.testing.assert_close(out["pred"], out["logits"])
    assert len({tuple(s.flatten().tolist()) for s in out["logits"][0]}) == 7  # distinct z


def test_default_eval_sample_num_is_16_and_stored():
    model = tiny().eval()
    assert model.eval_sample_num == 16
    with torch.no_grad():
        assert model(batch()[0])["pred"].shape[1] == 16


def test_same_generator_same_samples():
    torch.manual_seed(0)
    model = tiny().eval()
    x = batch()[0]
    with torch.no_grad():
        a = model(x, generator=torch.Generator().manual_seed(3))["pred"]
        b = model(x, generator=torch.Generator().manual_seed(3))["pred"]
        c = model(x, generator=torch.Generator().manual_seed(4))["pred"]
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_annotation_draw_follows_label_probs():
    labels = torch.arange(4).reshape(1, 4, 1, 1).expand(2000, 4, 2, 2)  # annotation m is all m
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3]).expand(2000, 4)
    index, target = draw_annotation(labels, probs, torch.Generator().manual_seed(0))
    torch.testing.assert_close(target[:, 0, 0], index)
    freq = torch.bincount(index, minlength=4).float() / 2000
    torch.testing.assert_close(freq, probs[0], atol=0.03, rtol=0)


def test_kl_of_two_diagonal_gaussians_by_hand():
    # 1-D: KL(N(1, 0.5²) ‖ N(0, 2²)) = log(2/0.5) + (0.5² + 1²)/(2·2²) - 1/2
    by_hand = math.log(4) + 1.25 / 8 - 0.5
    kl = kl_diag_gaussians(torch.tensor([[1.0]]), torch.tensor([[math.log(0.5)]]),
                           torch.tensor([[0.0]]), torch.tensor([[math.log(2.0)]]))
    torch.testing.assert_close(kl, torch.tensor([by_hand]))
    # L-D sums over dimensions; compare with torch.distributions on random parameters
    g = torch.Generator().manual_seed(0)
    mq, lq, mp, lp = (torch.randn(5, 6, generator=g) for _ in range(4))
    q = torch.distributions.Independent(torch.distributions.Normal(mq, lq.exp()), 1)
    p = torch.distributions.Independent(torch.distributions.Normal(mp, lp.exp()), 1)
    torch.testing.assert_close(kl_diag_gaussians(mq, lq, mp, lp),
                               torch.distributions.kl_divergence(q, p))


def test_model_kl_is_between_its_posterior_and_prior():
    torch.manual_seed(0)
    model = tiny()
    x, labels, probs = batch()
    out = model(x, label=labels, label_probs=probs, generator=torch.Generator().manual_seed(1))
    mu_p, ls_p = model.prior(x)  # training-mode batch norm: the same batch, the same numbers
    one_hot = F.one_hot(out["target"], 2).permute(0, 3, 1, 2).float() - 0.5
    mu_q, ls_q = model.posterior(torch.cat([x, one_hot], 1))
    torch.testing.assert_close(out["kl"], kl_diag_gaussians(mu_q, ls_q, mu_p, ls_p))


def test_elbo_loss_by_hand():
    g = torch.Generator().manual_seed(0)
    B, C, H, W = 2, 3, 2, 3
    logits = torch.randn(B, 1, C, H, W, generator=g)
    target = torch.randint(0, C, (B, H, W), generator=g)
    kl = torch.tensor([0.7, 1.9])
    labels = target[:, None].repeat(1, 4, 1, 1)
    loss, seg, kl_mean = ELBOLoss(beta=2.5)(dict(logits=logits, target=target, kl=kl), labels,
                                            torch.full((B, 4), 0.25))
    total = 0.0
    for b in range(B):
        for i in range(H):
            for j in range(W):
                z = logits[b, 0, :, i, j].tolist()
                total -= z[target[b, i, j]] - math.log(sum(math.exp(v) for v in z))
    assert seg.item() == pytest.approx(total / B, rel=1e-5)
    assert kl_mean.item() == pytest.approx(1.3)
    assert loss.item() == pytest.approx(total / B + 2.5 * 1.3, rel=1e-5)


def test_elbo_ignores_void_pixels_when_asked():
    logits = torch.randn(1, 1, 3, 2, 2)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    labels = torch.tensor([[[[0, 1], [1, 1]]]])  # (1, 1, 2, 2): pixel (0, 0) is void
    out = dict(logits=logits, target=target, kl=torch.zeros(1))
    full = ELBOLoss()(out, labels, torch.ones(1, 1))[1]
    masked = ELBOLoss(ignore_void=True)(out, labels, torch.ones(1, 1))[1]
    void_ce = -logits[0, 0, :, 0, 0].log_softmax(0)[0]
    torch.testing.assert_close(masked, full - void_ce)


def test_loss_needs_a_training_output():
    with pytest.raises(ValueError, match="training-mode"):
        ELBOLoss()(dict(logits=torch.zeros(1, 1, 2, 2, 2)), torch.zeros(1, 1, 2, 2).long(), None)


def test_fcomb_equals_convolving_the_concatenation():
    torch.manual_seed(0)
    fcomb = Fcomb(num_features=4, latent_dim=3, num_classes=5)
    u_d, z = torch.randn(2, 4, 6, 7), torch.randn(2, 3, 3)
    expected = []
    for n in range(3):
        h = torch.cat([u_d, z[:, n, :, None, None].expand(2, 3, 6, 7)], 1)  # (B, F0 + L, H, W)
        for conv in fcomb.layers:
            h = torch.relu(conv(h))
        expected.append(fcomb.last_layer(h))
    torch.testing.assert_close(fcomb(u_d, z), torch.stack(expected, 1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("softmax", [True, False])
def test_masked_pred_outputs_class_zero_on_void(softmax):
    model = tiny(num_classes=3, softmax=softmax, masked_pred=True).eval()
    x, labels, _ = batch(C=3)
    labels[:, 0, :4] = 0
    with torch.no_grad():
        pred = model(x, label=labels)["pred"]  # (B, N, C, H, W)
    assert (pred[:, :, 0, :4] == 1).all() and (pred[:, :, 1:, :4] == 0).all()


@pytest.mark.parametrize("softmax", [True, False])
def test_every_parameter_gets_a_finite_gradient(softmax):
    torch.manual_seed(0)
    model = tiny(num_classes=3, softmax=softmax)
    x, labels, probs = batch(C=3)
    loss, _, _ = ELBOLoss(beta=1.0)(model(x, label=labels, label_probs=probs), labels, probs)
    loss.backward()
    assert_finite_gradients(model)


def test_checkpoint_round_trip(tmp_path):
    assert_checkpoint_round_trip(tiny, *batch(), tmp_path / "prob_unet.pth")
