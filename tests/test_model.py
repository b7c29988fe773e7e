"""MoSE model: shapes at several depths, priors, both representations, masking, gradients."""

import math

import pytest
import torch

from models import MoSE
from models.experts import binary_codes, sample_standard
from models.gating import dihedral_views
from models.mose import mask_void
from tests.helpers import assert_finite_gradients
from utils.loss.ot_loss import OTLoss


def tiny(**overrides) -> MoSE:
    kwargs = dict(input_channels=1, num_classes=2, num_filters=[4, 8, 8], latent_dim=1,
                  num_expert=4, sample_per_mode=2, softmax=True, masked_pred=False)
    kwargs.update(overrides)
    return MoSE(**kwargs)


@pytest.mark.parametrize("filters,size", [([4, 8], (16, 16)), ([32, 64, 128, 192], (32, 32)),
                                          ([4, 8, 8, 8], (25, 30)),
                                          ([4, 8, 8, 8, 8, 8, 8], (64, 64))])
def test_any_depth_builds_and_runs(filters, size):
    torch.manual_seed(0)
    model = tiny(num_filters=filters).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, *size))
    assert out["pred"].shape == (2, 8, 2, *size)
    assert out["weights"].shape == (2, 8)
    assert out["expert_probs"].shape == (2, 4)
    assert torch.isfinite(out["pred"]).all()
    torch.testing.assert_close(out["pred"].sum(2), torch.ones(2, 8, *size))


def test_too_few_experts_for_the_latent_dim_is_a_clear_error():
    with pytest.raises(ValueError, match="num_expert=4 is smaller than 2\\*\\*latent_dim=8"):
        tiny(latent_dim=3, num_expert=4)


def test_prior_initialisation():
    torch.manual_seed(0)
    model = tiny(latent_dim=2, num_expert=6)
    codes = torch.tensor([[0.0, 0], [0, 1], [1, 0], [1, 1]])
    torch.testing.assert_close(binary_codes(2), codes)
    torch.testing.assert_close(model.mu[:4].detach(), codes)
    assert ((model.mu[4:] >= 0) & (model.mu[4:] < 1)).all()
    torch.testing.assert_close(model.log_sigma.detach(), torch.full((6, 2), math.log(1 / 8)))


def test_compact_weights_are_expert_probs_over_S_expert_major():
    torch.manual_seed(0)
    model = tiny(num_expert=3, sample_per_mode=4).eval()
    out = model(torch.randn(2, 1, 16, 16))
    expected = (out["expert_probs"] / 4).repeat_interleave(4, dim=1)  # (B, N)
    torch.testing.assert_close(out["weights"], expected)
    torch.testing.assert_close(out["weights"].sum(1), torch.ones(2))


def test_compact_samples_come_from_their_expert():
    """With tiny sigma, sample k·S + s equals the head applied to mu_k."""
    torch.manual_seed(0)
    model = tiny(num_expert=2, sample_per_mode=3).train()  # batch statistics: a non-trivial head
    with torch.no_grad():
        model.log_sigma.fill_(-40.0)
        model.mu.copy_(torch.tensor([[0.0], [5.0]]))
        pred = model(torch.randn(1, 1, 16, 16))["pred"]  # (1, 6, 2, 16, 16)
    torch.testing.assert_close(pred[0, 0], pred[0, 2])
    torch.testing.assert_close(pred[0, 3], pred[0, 5])
    assert (pred[0, 0] - pred[0, 3]).abs().max() > 1e-3


def test_standard_representation_is_uniform_and_reproducible():
    torch.manual_seed(0)
    model = tiny(eval_sample_num=5).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        a = model(x, generator=torch.Generator().manual_seed(3))
        b = model(x, generator=torch.Generator().manual_seed(3))
    assert a["pred"].shape == (2, 5, 2, 16, 16)
    torch.testing.assert_close(a["weights"], torch.full((2, 5), 0.2))
    torch.testing.assert_close(a["pred"], b["pred"])
    model.train()
    assert model(x)["pred"].shape[1] == 8, "training always uses the compact representation"


def test_standard_sampling_frequencies_match_expert_probs():
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])
    mu, log_sigma = torch.zeros(4, 1), torch.zeros(4, 1)
    _, ids = sample_standard(mu, log_sigma, probs, 20_000, torch.Generator().manual_seed(0))
    freq = torch.stack([torch.bincount(ids[b], minlength=4) for b in range(2)]).float() / 20_000
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


@pytest.mark.parametrize("softmax", [True, False])
def test_masked_pred_outputs_class_zero_on_void(softmax):
    torch.manual_seed(0)
    model = tiny(num_classes=5, softmax=softmax, masked_pred=True).eval()
    label = torch.randint(1, 5, (2, 3, 16, 16))
    label[:, 0, :4] = 0  # void: the first annotation's label 0
    label[1, 0, 10, 3] = 0
    label[:, 1:, 5] = 0  # label 0 in the other annotations is not void
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        pred = model(x, label, generator=torch.Generator().manual_seed(0))["pred"]
        plain = model(x, generator=torch.Generator().manual_seed(0))["pred"]  # no label: no mask
    assert pred.shape == plain.shape == (2, 8, 5, 16, 16)
    expected = plain.clone()  # (B, N, C, H, W)
    for b, h, w in (label[:, 0] == 0).nonzero().tolist():  # every void pixel, one at a time
        expected[b, :, :, h, w] = torch.tensor([1.0, 0, 0, 0, 0])
    assert torch.equal(pred, expected)
    assert not torch.equal(plain, expected)  # the mask changed something


def test_mask_void_leaves_valid_pixels_untouched():
    pred = torch.rand(1, 2, 3, 2, 2)
    label = torch.ones(1, 1, 2, 2, dtype=torch.long)
    label[0, 0, 0, 0] = 0
    out = mask_void(pred, label)
    assert torch.equal(out[..., 1, 1], pred[..., 1, 1])
    assert torch.equal(out[0, :, :, 0, 0], torch.tensor([[1.0, 0, 0], [1.0, 0, 0]]))


@pytest.mark.parametrize("cost_fn,softmax,G0", [("iou", True, 1.0), ("ce", False, 0.5)])
def test_every_parameter_gets_a_finite_gradient(cost_fn, softmax, G0):
    torch.manual_seed(0)
    model = tiny(num_classes=3, softmax=softmax, latent_dim=2, num_expert=4).train()
    loss_fn = OTLoss(cost_fn, beta=1.0, gamma0=0.5, G0=G0)
    gt = torch.randint(0, 3, (2, 4, 16, 16))
    out = model(torch.randn(2, 1, 16, 16), gt)
    loss, _, _ = loss_fn(gt, out["pred"], out["weights"], torch.full((2, 4), 0.25), (4, 2))
    loss.backward()
    assert_finite_gradients(model, nonzero=False)
    assert model.mu.grad.abs().sum() > 0 and model.log_sigma.grad.abs().sum() > 0


def test_an_image_gate_reads_the_image_and_trains_with_the_loss():
    torch.manual_seed(0)
    model = tiny(latent_dim=2, gate_input="image").train()
    assert not any(k.startswith("gating.") and "encoder" not in k and "fc_layer" not in k
                   for k in model.state_dict())
    x, gt = torch.randn(2, 1, 16, 16), torch.randint(0, 2, (2, 4, 16, 16))
    out = model(x, gt)
    torch.testing.assert_close(out["expert_probs"], model.gating(x))  # the image's gate
    loss, _, _ = OTLoss(gamma0=1.0)(gt, out["pred"], out["weights"], torch.full((2, 4), 0.25),
                                    (4, 2))
    loss.backward()
    assert_finite_gradients(model, nonzero=False)
    assert model.gating.encoder[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="gate_input"):
        tiny(gate_input="decoder")
    with pytest.raises(ValueError, match="needs gate_input='image'"):
        tiny(gate_tta=True)


@pytest.mark.parametrize("size", [(12, 12), (12, 20)])
def test_dihedral_views_are_the_flips_and_quarter_turns(size):
    x = torch.randn(2, 1, *size)
    views = dihedral_views(x).view(-1, *x.shape)  # (V, B, C, H, W)
    square = size[0] == size[1]
    # brute force: every composition of flips and quarter turns that keeps the shape
    group = {tuple(v.flatten().tolist()) for k in range(4) for v in
             (torch.rot90(x, k, (2, 3)), torch.rot90(x.flip(3), k, (2, 3))) if v.shape == x.shape}
    assert len(views) == len(group) == (8 if square else 4)
    assert {tuple(v.flatten().tolist()) for v in views} == group
    torch.testing.assert_close(views[0], x)


def test_gate_tta_averages_the_views_in_eval_mode_only():
    torch.manual_seed(0)
    model = tiny(latent_dim=2, gate_input="image", gate_tta=True)
    gate, x = model.gating, torch.randn(3, 1, 16, 16)
    views = [torch.rot90(v, k, (2, 3)) for k in range(4) for v in (x, x.flip(2))]
    mean = torch.stack([torch.softmax(gate.logits(v), 1) for v in views]).mean(0)  # (B, K)
    torch.testing.assert_close(gate.eval()(x), mean)
    torch.testing.assert_close(gate(torch.rot90(x, 1, (2, 3)).flip(3)), mean)  # invariant
    torch.testing.assert_close(gate.train()(x), torch.softmax(gate.logits(x), 1))
    model.eval()
    torch.testing.assert_close(model(x)["expert_probs"], mean)


def test_amp_returns_float32_close_to_fp32():
    torch.manual_seed(0)
    model = tiny(fast_head=True, channels_last=True).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        ref = model(x, generator=torch.Generator().manual_seed(0))
        model.amp = True
        out = model(x, generator=torch.Generator().manual_seed(0))
    for key in ("pred", "weights", "expert_probs"):
        assert out[key].dtype == torch.float32
    torch.testing.assert_close(out["pred"], ref["pred"], atol=0.05, rtol=0)
