"""The fast head (folded matrix products, channels-last backbone) equals the plain formulation."""

import copy
import logging

import pytest
import torch

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


@pytest.mark.parametrize("softmax,masked,cost_fn", [(True, False, "iou"), (False, True, "ce")])
def test_training_step_outputs_gradients_and_running_stats_agree(softmax, masked, cost_fn):
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
    for key in ("pred", "weights", "expert_probs"):
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


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
    try:
        with caplog.at_level("WARNING", logger="mose"):
            pred_f, _ = run_step(fast.train(), x, y, "iou")
            run_step(fast.train(), x, y, "iou")
    finally:
        log.removeHandler(caplog.handler)
    pred_p, _ = run_step(plain.train(), x, y, "iou")
    torch.testing.assert_close(pred_f, pred_p, rtol=1e-5, atol=1e-5 * pred_p.abs().max())
    assert sum("torch.compile" in r.getMessage() for r in caplog.records) == 1
