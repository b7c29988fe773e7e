"""One training step against the authors' code: every `grad_oracle_*.npz` in tests/data holds,
for a small MoSE, the authors' weights (`sd/<key>`, with log_sigma = −20 so that every latent is
its expert's mean in both codes), a batch (`x`, `labels`, `label_probs`), γ (`gamma`), their seg
loss (`seg`, batch mean) and the gradient of every parameter (`grad/<name>`) after one forward in
train mode, the OT loss ('iou', β = 1) and `loss.nanmean().backward()`."""

from pathlib import Path

import numpy as np
import pytest
import torch

from models import MoSE
from utils.loss.ot_loss import OTLoss
from utils.runtime.checkpoint import load_model_weights

DATA = Path(__file__).resolve().parent / "data"
CASES = sorted(DATA.glob("grad_oracle_*.npz"))
# tolerance per parameter: max |ours − theirs| ≤ rtol · max |theirs|
RTOL = {"plain": 1e-4, "fast": 2e-3}
# A parameter whose true gradient is zero or negligible is compared in absolute terms instead
# (both gradients below this fraction of the largest gradient of the model): a bias followed
# by a training-mode batch norm, whose batch mean removes it (a convolution's bias, and
# `fuse.last_layer`'s through the linear first head convolution), and `log_sigma` at −20,
# whose gradient is σ·ε·∂L/∂z with σ = e^−20. What float32 code returns there is rounding noise
# of the other gradients, different in every implementation. Which parameters these are is
# decided by the same step in float64, independently of the reference values.
NEGLIGIBLE = 1e-7  # float64 gradient relative to the largest: zero up to float64 rounding
NOISE = 1e-3  # float32 noise bound, relative to the largest reference gradient


def load_case(path: Path) -> dict:
    with np.load(path) as f:
        return {key: f[key] for key in f.files}


def model_of(ref: dict, fast: bool) -> MoSE:
    """The reference's MoSE with its weights; sizes read from the weights themselves."""
    sd = {key[3:]: torch.from_numpy(v) for key, v in ref.items() if key.startswith("sd/")}
    K, L = sd["mu"].shape
    model = MoSE(input_channels=sd["backbone.contracting_path.0.layers.0.weight"].shape[1],
                 num_classes=sd["last_layer.weight"].shape[0],
                 num_filters=ref["num_filters"].tolist(), latent_dim=L, num_expert=K,
                 sample_per_mode=int(ref.get("sample_per_mode", 4)), softmax=True,
                 masked_pred=False, fast_head=fast, channels_last=fast)
    load_model_weights(model, sd)
    return model.train()


def training_step(model: MoSE, ref: dict, dtype=torch.float32):
    """Forward, OT loss and backward as the reference did; returns the seg loss and gradients."""
    model.to(dtype)
    x = torch.from_numpy(ref["x"]).to(dtype)
    labels, probs = torch.from_numpy(ref["labels"]), torch.from_numpy(ref["label_probs"])
    out = model(x, labels)
    loss_fn = OTLoss("iou", beta=1.0, gamma0=float(ref["gamma"]))
    loss, seg, _ = loss_fn(labels, out["pred"], out["weights"], probs.to(dtype),
                           sample_shape=(model.num_expert, model.sample_per_mode))
    loss.nanmean().backward()
    grads = {name: p.grad.double().numpy() for name, p in model.named_parameters()}
    return float(seg.detach()), grads


def negligible_gradients(ref: dict) -> set:
    """Names of the parameters whose gradient, computed in float64, is negligible."""
    torch.manual_seed(0)
    _, grads = training_step(model_of(ref, fast=False), ref, torch.float64)
    scale = max(np.abs(g).max() for g in grads.values())
    return {name for name, g in grads.items() if np.abs(g).max() <= NEGLIGIBLE * scale}


@pytest.fixture(scope="module", params=CASES, ids=lambda p: p.stem)
def case(request):
    ref = load_case(request.param)
    return ref, negligible_gradients(ref)


def test_the_public_cases_are_found():
    assert {p.name for p in CASES} >= {"grad_oracle_public_g0.0625.npz",
                                       "grad_oracle_public_g1.npz"}


def test_the_negligible_gradients_are_the_biases_before_a_batch_norm_and_log_sigma(case):
    # the float64 rule finds what the architecture says, and nothing else
    ref, negligible = case
    before_bn = {name for name in negligible if name.endswith(".bias")}
    assert negligible == before_bn | {"log_sigma"}
    assert "fuse.last_layer.bias" in negligible
    assert all(name.startswith(("backbone.", "layers.", "fuse.last_layer")) for name in before_bn)


@pytest.mark.parametrize("formulation", ["plain", "fast"])
def test_seg_loss_and_every_gradient_equal_the_authors(case, formulation):
    ref, negligible = case
    torch.manual_seed(0)  # the latents are the means (σ = e^−20): any seed gives them
    seg, grads = training_step(model_of(ref, fast=formulation == "fast"), ref)
    assert seg == pytest.approx(float(ref["seg"]), abs=1e-5)
    reference = {key[5:]: v.astype(np.float64) for key, v in ref.items()
                 if key.startswith("grad/")}
    assert set(grads) == set(reference)
    scale = max(np.abs(g).max() for g in reference.values())
    for name, theirs in reference.items():
        ours = grads[name]
        if name in negligible:
            assert np.abs(ours).max() <= NOISE * scale, name
            assert np.abs(theirs).max() <= NOISE * scale, name
            continue
        error = np.abs(ours - theirs).max() / np.abs(theirs).max()
        assert error <= RTOL[formulation], f"{name}: relative error {error:.2e}"
