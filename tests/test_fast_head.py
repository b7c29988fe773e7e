"""The fast head (folded matrix products, channels-last backbone) equals the plain formulation."""

import copy
import os
import shutil

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


def compiler_missing() -> str:
    """Why torch.compile cannot build CPU kernels here ('' if a C++ compiler is found)."""
    names = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    if any(name and shutil.which(name) for name in names):
        return ""
    return "no C++ compiler (CXX, g++, c++, clang++): torch.compile cannot build CPU kernels"


@pytest.fixture
def fresh_compile(monkeypatch):
    """torch.compile of the head kernels done afresh in this test; yields the names of the
    compiled kernels whose calls returned (through the compiled code, not the eager fallback)."""
    import torch._dynamo

    reason = compiler_missing()
    if reason:
        pytest.skip(reason)
    returned, compile_ = [], torch.compile

    def spy(fn, **kwargs):
        compiled = compile_(fn, **kwargs)

        def call(*args):
            out = compiled(*args)  # an exception here makes the head fall back to eager
            returned.append(fn.__name__)
            return out

        return call

    torch._dynamo.reset()  # nothing compiled before this test is reused
    monkeypatch.setattr(fast_head_module, "_COMPILED", {})
    monkeypatch.setattr(torch, "compile", spy)
    yield returned
    torch._dynamo.reset()


def test_compiled_head_kernels_agree_with_eager(fresh_compile):
    """The torch.compile'd batch-norm kernels give the plain formulation's numbers too."""
    from torch._dynamo.utils import counters

    plain, fast = pair()
    fast.compile_head = True
    x = torch.randn(2, 2, 16, 20)
    y = torch.randint(0, 3, (2, 4, 16, 20))
    frames = counters["frames"]["ok"]
    pred_p, loss_p = run_step(plain.train(), x, y, "iou")
    pred_f, loss_f = run_step(fast.train(), x, y, "iou")
    # compilation happened: dynamo compiled frames and both kernels returned from them
    assert not fast_head_module._COMPILED.get("failed")
    assert {"bn_relu_forward", "bn_relu_backward"} <= set(fresh_compile)
    assert counters["frames"]["ok"] >= frames + 2
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
    with caplog.at_level("WARNING", logger="mose"):  # the conftest leaves "mose" propagating
        pred_f, _ = run_step(fast.train(), x, y, "iou")
        run_step(fast.train(), x, y, "iou")
    pred_p, _ = run_step(plain.train(), x, y, "iou")
    torch.testing.assert_close(pred_f, pred_p, rtol=1e-5, atol=1e-5 * pred_p.abs().max())
    assert sum("torch.compile" in r.getMessage() for r in caplog.records) == 1


BF16_U = 2.0 ** -8  # bfloat16's unit roundoff (8 significant bits)
# bf16 against float32: each tolerance is at least four times the largest deviation that
# tests/data/measure_test_margins.py measures over five seeds (tests/data/test_margins.json)
LINEAR_RELU_BOUND = 5.0  # × u·(|x|·|W|ᵀ + |b|), per element (rounding W, b and y: about 2)
EVAL_PROBABILITIES = BF16_U  # absolute, on the probabilities
AMP_LOSS = 1e-2  # relative, on the OT loss of a training step
AMP_GRADIENTS = 0.2  # max |g_bf16 − g_float32| relative to the largest float32 gradient


@pytest.fixture
def fused_calls(monkeypatch):
    """The (rows, activation) of every call of oneDNN's fused linear+pointwise op."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN: the fused bf16 linear+ReLU is not used")
    calls, real = [], torch.ops.mkldnn._linear_pointwise
    try:  # oneDNN may lack the bf16 kernel on a CPU without bf16 instructions (AVX2 only)
        real(torch.ones(2, 3).bfloat16(), torch.ones(4, 3).bfloat16(),
             torch.zeros(4).bfloat16(), "relu", [], "")
    except RuntimeError as err:
        pytest.skip(f"oneDNN's fused bf16 linear+ReLU does not run on this CPU ({err})"[:200])
    monkeypatch.setattr(fast_head_module, "_FUSED", {})

    def spy(x, *args):
        calls.append((x.shape[0], args[2]))
        return real(x, *args)

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", spy)
    return calls


def linear_relu_deviation(seed: int) -> float:
    """max over elements of |bf16 linear_relu − float32| / (u·(|x|·|W|ᵀ + |b|)), the float32
    result computed from the same bf16 input with the float32 weights."""
    torch.manual_seed(seed)
    x = torch.randn(300, 8).bfloat16()
    w, b = torch.randn(5, 8), torch.randn(5)
    want = torch.relu(torch.nn.functional.linear(x.float(), w, b))
    got = fast_head_module.linear_relu(x, w, b)
    assert got.dtype == torch.bfloat16 and got.shape == (300, 5)
    bound = BF16_U * (x.float().abs() @ w.abs().T + b.abs())  # (300, 5) rounding scale
    return float(((got.float() - want).abs() / bound).max())


def test_bf16_linear_relu_is_fused_and_falls_back(monkeypatch, caplog, fused_calls):
    from models import fast_head as fh

    assert linear_relu_deviation(0) <= LINEAR_RELU_BOUND
    assert fused_calls == [(300, "relu")]  # the fused op computed it
    torch.manual_seed(0)
    x, w, b = torch.randn(300, 8).bfloat16(), torch.randn(5, 8), torch.randn(5)
    want = torch.relu(torch.nn.functional.linear(x.float(), w, b))
    x32 = x.float()  # float32 keeps the plain ops, bit for bit
    assert torch.equal(fh.linear_relu(x32, w, b), torch.relu(torch.nn.functional.linear(x32, w, b)))
    assert len(fused_calls) == 1

    def missing(*args):
        raise RuntimeError("no oneDNN")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", missing, raising=False)
    with caplog.at_level("WARNING", logger="mose"):
        fallback = fh.linear_relu(x, w, b).float()
    bound = BF16_U * (x.float().abs() @ w.abs().T + b.abs())
    assert ((fallback - want).abs() / bound).max() <= LINEAR_RELU_BOUND
    assert fh._FUSED == {"failed": True} and "unfused" in caplog.text


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


def bf16_eval_deviation(seed: int) -> float:
    """max |p_bf16 − p_float32| over the probabilities of the fast head under bf16 autocast
    and the plain head in float32, eval mode, three images."""
    plain, fast = pair(num_filters=[8, 16], sample_per_mode=3)
    fast.amp = True
    torch.manual_seed(seed)
    x = torch.randn(3, 2, 16, 16)
    plain.eval(), fast.eval()
    with torch.no_grad():
        a = plain(x, generator=torch.Generator().manual_seed(1))["pred"]
        b = fast(x, generator=torch.Generator().manual_seed(1))["pred"]
    assert a.dtype == b.dtype == torch.float32 and a.shape == b.shape == (3, 12, 3, 16, 16)
    return float((a - b).abs().max())


def test_eval_under_bf16_autocast_follows_float32_with_fused_layers(fused_calls):
    assert bf16_eval_deviation(0) <= EVAL_PROBABILITIES
    # image by image, every hidden layer of the head is one fused call: the first on the H·W
    # pixels (all N samples' maps at once), the next two on the H·W·N rows
    assert fused_calls == [(16 * 16, "relu"), (16 * 16 * 12, "relu"), (16 * 16 * 12, "relu")] * 3
    plain, fast = pair(num_filters=[8, 16], sample_per_mode=3)
    fast.amp = True
    with torch.no_grad():
        one = fast.eval()(torch.randn(1, 2, 16, 16))
    assert one["pred"].shape == (1, 12, 3, 16, 16)


def amp_step(amp: bool, seed: int) -> tuple:
    """One training step of a model built from the default config with `amp`: the loss, the
    gradients and the dtype of the decoder feature."""
    from utils.build import build_loss, build_model
    from utils.config.config import load_config
    from utils.loss import objective

    cfg = load_config(None, ["num_filters=[8, 16, 16]", "latent_dim=1", "num_expert=2",
                             "sample_per_mode=2", f"amp={amp}"])
    torch.manual_seed(0)
    model = build_model(cfg).train()
    seen = []
    model.backbone.register_forward_hook(lambda m, i, out: seen.append(out[1].dtype))
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(4, 1, 16, 16, generator=g), torch.randint(0, 2, (4, 4, 16, 16), generator=g)
    v = torch.full((4, 4), 0.25)
    out = model(x, label=y, generator=torch.Generator().manual_seed(1), label_probs=v)
    loss = objective(build_loss(cfg))(out, y, v)[0]
    loss.backward()
    return float(loss.detach()), {n: p.grad for n, p in model.named_parameters()}, seen[0]


def amp_deviation(seed: int) -> tuple:
    """(relative loss deviation, max gradient deviation / largest gradient) of a bf16 training
    step against float32; asserts that the bf16 step ran in bf16 with finite gradients."""
    loss32, grads32, dtype32 = amp_step(False, seed)
    loss16, grads16, dtype16 = amp_step(True, seed)
    assert (dtype32, dtype16) == (torch.float32, torch.bfloat16)
    assert all(torch.isfinite(g).all() for g in grads16.values())
    scale = max(g.abs().max() for g in grads32.values())
    worst = max((grads16[n] - g).abs().max() for n, g in grads32.items())
    return abs(loss16 - loss32) / loss32, float(worst / scale)


def test_a_bf16_training_step_through_the_config_follows_float32():
    # train-mode batch norm over a 4-image batch amplifies bf16 rounding: a loose tolerance
    loss_deviation, gradient_deviation = amp_deviation(0)
    assert loss_deviation <= AMP_LOSS and gradient_deviation <= AMP_GRADIENTS


def test_maps_layout_is_the_float32_cpu_training_path():
    u = torch.zeros(1, 8, 4, 4)
    assert fast_head_module.maps_layout(u, compiled=False)
    assert not fast_head_module.maps_layout(u, compiled=True)
    assert not fast_head_module.maps_layout(u.bfloat16(), compiled=False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fast_head_module.maps_layout(u, compiled=False)
