"""Shared helpers for the tests: paths to the reference files and small model builders."""

from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
ORACLE = DATA / "oracle_public.npz"
FORWARD_WEIGHTS = DATA / "forward_lidc_state_dict.pth"

# The small model whose weights are in forward_lidc_state_dict.pth (docs/design.md, 'Tolerances
# of the parity tests').
FORWARD_LIDC_KWARGS = dict(input_channels=1, num_classes=2, num_filters=[8, 16, 32, 32, 32, 32, 32],
                           latent_dim=1, num_expert=4, sample_per_mode=2, softmax=True,
                           masked_pred=False)
PAPER_FILTERS = [32, 64, 128, 192, 192, 192, 192]
LIDC_PAPER_KWARGS = dict(input_channels=1, num_classes=2, num_filters=PAPER_FILTERS, latent_dim=1,
                         num_expert=4, sample_per_mode=4, softmax=True, masked_pred=False)
CITYSCAPES_PAPER_KWARGS = dict(input_channels=4, num_classes=25, num_filters=PAPER_FILTERS,
                               latent_dim=5, num_expert=35, sample_per_mode=1, softmax=False,
                               masked_pred=True)


def oracle() -> dict:
    """The public reference cases as a dict of numpy arrays."""
    with np.load(ORACLE) as f:
        return {k: f[k] for k in f.files}


def read_key_table(name: str) -> dict:
    """Key → shape tuple from a `state_dict_<name>.tsv` reference table, `module.` removed."""
    table = {}
    for line in (DATA / f"state_dict_{name}.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, _ = line.split("\t")
        table[key.removeprefix("module.")] = (
            () if shape == "scalar" else tuple(int(s) for s in shape.split("x")))
    return table


def trainable_count_from_header(name: str) -> int:
    """The parameter count stated in the reference table's header."""
    for line in (DATA / f"state_dict_{name}.tsv").read_text().splitlines():
        if line.startswith("# trainable parameters:"):
            return int(line.split(":")[1])
    raise AssertionError("no parameter count in header")


def assert_finite_gradients(model, nonzero: bool = True) -> None:
    """Every parameter of `model` has a finite (and, with `nonzero`, non-zero) gradient."""
    import torch

    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if nonzero:
            assert p.grad.abs().sum() > 0, name


def assert_checkpoint_round_trip(make, x, labels, probs, path) -> None:
    """A trained-mode forward, save, load strictly into a fresh `make()`: same eval outputs."""
    import torch

    torch.manual_seed(0)
    model = make()
    model(x, label=labels, label_probs=probs)  # move the batch-norm running statistics
    torch.save(model.state_dict(), path)
    torch.manual_seed(1)
    fresh = make()
    fresh.load_state_dict(torch.load(path), strict=True)
    model.eval(), fresh.eval()
    with torch.no_grad():
        a = model(x, generator=torch.Generator().manual_seed(5))["pred"]
        b = fresh(x, generator=torch.Generator().manual_seed(5))["pred"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def random_batch(B: int = 3, M: int = 4, C: int = 2, H: int = 12, W: int = 10, seed: int = 0):
    """A seeded one-channel batch: x (B, 1, H, W), labels (B, M, H, W), uniform weights (B, M)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, 1, H, W, generator=g)
    labels = torch.randint(0, C, (B, M, H, W), generator=g)
    return x, labels, torch.full((B, M), 1.0 / M)
