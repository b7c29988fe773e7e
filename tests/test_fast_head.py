"""The fast head (folded matrix products, channels-last backbone) equals the plain formulation."""

import copy
import logging

import pytest
import torch

import models.fast_head as fast_head_module
from models import MoSE
from utils.loss.ot_loss import OTLoss


def pair(**overrides):
    kwargs = dict(input_channels=2, num_classes=3, num_filters=[8, 16, 16], latent_dim=2,
                  num_expert=4, sample_per_mode=2, softmax=True, masked_pred=False)
    kwargs.update(overrides)
    torch.manual_seed(0)
    plain = MoSE(**kwargs, fast_head=False, channels_last=False)
    fast = copy.deepcopy(plain)
    fast.fast_head, fast.channels_last = True, True
    return plain, fast


def run_step(model, x, y, cost_fn):
    torch.manual_seed(1)  # same latents for both models
    out = model(x, y)
    v = torch.full((x.shape[0], y.shape[1]), 1.0 / y.shape[1])
    loss, _, _ = OTLoss(cost_fn, beta=1.0, gamma0=0.5)(y, out["pred"], out["weights"], v, (4, 2))
    loss.backward()
    return out["pred"].detach(), loss.detach()


@pytest.mark.parametrize("layout", ["maps", "rows"])
@pytest.mark.parametrize("softmax,masked,cost_fn", [(True, False, "iou"), (False, True, "ce")])
def test_training_step_outputs_gradients_and_running_stats_agree(softmax, masked, cost_fn, layout,
                                                                 monkeypatch):
    """Both training layouts: maps (float32 on a CPU) and rows (bf16, GPUs, compiled)."""
    if layout == "rows":
        monkeypatch.setattr(fast_head_module, "maps_layout", lambda u_d, compiled: False)
    plain, fast = pair(softmax=softmax, masked_pred=masked)
    x = torch.randn(2, 2, 16, 20)
    y = torch.randint(0, 3, (2, 4, 16, 20))
    pred_p, loss_p = run_step(plain.train(), x, y, cost_fn)
    pred_f, loss_f = run_step(fast.train(), x, y, cost_fn)
    # 1e-5 relative to the output's scale (float32 reassociation; float64 agrees to 1e-13)
    torch.testing.assert_close(pred_f, pred_p, rtol=1e-5, atol=1e-5 * pred_p.abs().max())
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-7)
    # Biases followed by a BatchNorm have a zero true gradient (rounding noise only), so the
    # absolute tolerance is relative to the largest gradient of the model.
    scale = max(p.grad.abs().max() for p in plain.parameters())
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-5 * scale, msg=name)
    for (name, a), b in zip(plain.named_buffers(), fast.buffers()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("eval_sample_num", [None, 5])
def test_eval_outputs_agree(eval_sample_num):
    plain, fast = pair(eval_sample_num=eval_sample_num)
    x = torch.randn(2, 2, 16, 16)
    for model in (plain, fast):  # non-trivial running statistics
        model.train()
        with torch.no_grad():
            model(x)
        model.eval()
    with torch.no_grad():
        a = plain(x, generator=torch.Generator().manual_seed(0))
        b = fast(x, generator=torch.Generator().manual_seed(0))
    for key in ("pred", "weights", "expert_probs"):  # float32 sums in another order: another
        # CPU (or thread count) differed by 1.4e-5 on values of 0.35
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)


def test_compiled_head_kernels_agree_with_eager():
    """The torch.compile'd batch-norm kernels give the plain formulation's numbers too."""
    plain, fast = pair()
    fast.compile_head = True
    x = torch.randn(2, 2, 16, 20)
    y = torch.randint(0, 3, (2, 4, 16, 20))
    pred_p, loss_p = run_step(plain.train(), x, y, "iou")
    pred_f, loss_f = run_step(fast.train(), x, y, "iou")
    torch.testing.assert_close(pred_f, pred_p, rtol=1e-5, atol=1e-5 * pred_p.abs().max())
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-7)
    scale = max(p.grad.abs().max() for p in plain.parameters())
    for (name, p), q in zip(plain.named_parameters(), fast.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-5 * scale, msg=name)


def test_compile_failure_falls_back_to_eager(monkeypatch, caplog):
    from models import fast_head as fh

    def broken(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler")
        return fail

    monkeypatch.setattr(fh, "_COMPILED", {})
    monkeypatch.setattr(fh.torch, "compile", broken)
    plain, fast = pair()
    fast.compile_head = True
    x = torch.randn(2, 2, 16, 16)
    y = torch.randint(0, 3, (2, 4, 16, 16))
    log = logging.getLogger("mose")  # does not propagate once a run has set up logging
    log.addHandler(caplog.handler)
    propagate, log.propagate = log.propagate, False  # each record once, whatever ran before
    try:
        with caplog.at_level("WARNING", logger="mose"):
            pred_f, _ = run_step(fast.train(), x, y, "iou")
            run_step(fast.train(), x, y, "iou")
    finally:
        log.removeHandler(caplog.handler)
        log.propagate = propagate
    pred_p, _ = run_step(plain.train(), x, y, "iou")
    torch.testing.assert_close(pred_f, pred_p, rtol=1e-5, atol=1e-5 * pred_p.abs().max())
    assert sum("torch.compile" in r.getMessage() for r in caplog.records) == 1


def test_bf16_linear_relu_is_fused_and_falls_back(monkeypatch, caplog):
    from models import fast_head as fh

    torch.manual_seed(0)
    x = torch.randn(300, 8).bfloat16()
    w, b = torch.randn(5, 8), torch.randn(5)
    want = torch.relu(torch.nn.functional.linear(x.float(), w, b))
    got = fh.linear_relu(x, w, b)
    assert got.dtype == torch.bfloat16 and got.shape == (300, 5)
    torch.testing.assert_close(got.float(), want, rtol=2e-2, atol=5e-2)
    x32 = x.float()  # float32 keeps the plain ops, bit for bit
    assert torch.equal(fh.linear_relu(x32, w, b), torch.relu(torch.nn.functional.linear(x32, w, b)))

    def missing(*args):
        raise RuntimeError("no oneDNN")

    monkeypatch.setattr(fh, "_FUSED", {})
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", missing, raising=False)
    torch.testing.assert_close(fh.linear_relu(x, w, b).float(), want, rtol=2e-2, atol=5e-2)
    assert fh._FUSED == {"failed": True}


def test_bn_kernels_keep_the_input_dtype_and_compute_in_float32():
    from models import fast_head as fh

    torch.manual_seed(0)
    x = (torch.randn(500, 4) * 0.01 + 100.0)  # tiny spread on a large mean
    w, b = torch.rand(4) + 0.5, torch.randn(4)
    y32, mean32, var32, _ = fh.bn_relu_forward(x, w, b, 1e-3)
    y16, mean16, var16, invstd = fh.bn_relu_forward(x.bfloat16(), w, b, 1e-3)
    assert y32.dtype == torch.float32 and y16.dtype == torch.bfloat16
    xb = x.bfloat16().float()  # statistics of the rounded input, computed in float32
    torch.testing.assert_close(mean16, xb.mean(0), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(var16, xb.var(0, unbiased=False), rtol=1e-3, atol=1e-9)
    g = torch.randn(500, 4)
    grads = fh.bn_relu_backward(g.bfloat16(), y16, x.bfloat16(), mean16, w * invstd, invstd,
                                True)
    assert grads[0].dtype == torch.bfloat16 and grads[1].dtype == torch.float32
    lean = fh.bn_relu_backward_lean(g.bfloat16(), y16, x.bfloat16(), mean16, w * invstd,
                                    invstd, True, rows=64)
    assert lean[0].dtype == torch.bfloat16
    torch.testing.assert_close(lean[0].float(), grads[0].float(), rtol=2e-2, atol=1e-2)


def test_eval_under_bf16_autocast_matches_the_plain_head():
    plain, fast = pair(num_filters=[8, 16], sample_per_mode=3)
    plain.amp = fast.amp = True
    x = torch.randn(3, 2, 16, 16)
    plain.eval(), fast.eval()
    with torch.no_grad():
        a = plain(x, generator=torch.Generator().manual_seed(1))["pred"]
        b = fast(x, generator=torch.Generator().manual_seed(1))["pred"]
        one = fast(x[1:2], generator=torch.Generator().manual_seed(1))
    assert a.shape == b.shape == (3, 12, 3, 16, 16)
    assert (a - b).abs().max() < 0.05  # probabilities; bf16 rounding of both paths
    assert one["pred"].shape == (1, 12, 3, 16, 16)


def test_maps_layout_is_the_float32_cpu_training_path():
    u = torch.zeros(1, 8, 4, 4)
    assert fast_head_module.maps_layout(u, compiled=False)
    assert not fast_head_module.maps_layout(u, compiled=True)
    assert not fast_head_module.maps_layout(u.bfloat16(), compiled=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fast_head_module.maps_layout(u, compiled=False)
