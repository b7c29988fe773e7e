"""Sample-count sweep: bootstrap intervals, compact sizes, prefixes of one set of draws."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from models import MoSE
from utils.config.config import Config
from utils.evaluation.metrics import ged_miou
from utils.evaluation.sweep import (
    SWEEP_COUNTS,
    bootstrap_ci,
    compact_sizes,
    sample_count_sweep,
    sampling,
)
from utils.labels import hard_labels
from utils.runtime.seed import make_generator

CFG = Config(n_classes=2, eval_class_ids=[1], masked_pred=False, eval_seed=0,
             empty_distance="zero", matching="hungarian")


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 200, 2000):
        ci = bootstrap_ci(rng.normal(0.3, 0.1, n), seed=0)
        assert ci["ci_low"] < ci["mean"] < ci["ci_high"] and ci["num_images"] == n
        widths.append(ci["ci_high"] - ci["ci_low"])
    assert widths[0] > widths[1] > widths[2]
    # a normal mean's 95% interval is about 2 * 1.96 * sigma / sqrt(n) wide
    assert widths[2] == pytest.approx(2 * 1.96 * 0.1 / np.sqrt(2000), rel=0.15)


def test_bootstrap_ci_is_repeatable_and_skips_nan():
    x = np.array([0.1, 0.5, np.nan, 0.3, 0.9])
    a, b = bootstrap_ci(x, seed=3), bootstrap_ci(x, seed=3)
    assert a == b and a["num_images"] == 4 and a["mean"] == pytest.approx(0.45)
    assert np.isnan(bootstrap_ci([np.nan])["mean"]) and bootstrap_ci([])["num_images"] == 0
    constant = bootstrap_ci(np.full(10, 0.2))
    assert constant["ci_low"] == pytest.approx(0.2) and constant["ci_high"] == pytest.approx(0.2)


def test_compact_sizes_match_counts_where_k_divides_them():
    assert compact_sizes(SWEEP_COUNTS, 4) == [1, 4, 8, 25]  # N = 4, 16, 32, 100
    assert compact_sizes(SWEEP_COUNTS, 35) == [1, 3]  # N = 35, 105: nearest multiples


def _tiny():
    torch.manual_seed(0)
    model = MoSE(input_channels=1, num_classes=2, num_filters=[4, 8], latent_dim=1, num_expert=4,
                 sample_per_mode=2, softmax=True, masked_pred=False).eval()
    g = torch.Generator().manual_seed(1)
    items = [(torch.randn(1, 12, 12, generator=g), torch.randint(0, 2, (4, 12, 12), generator=g),
              torch.full((4,), 0.25)) for _ in range(4)]
    return model, DataLoader(items, batch_size=4)


def test_sweep_every_count_has_mean_and_ci_and_uses_prefixes_of_one_draw():
    model, loader = _tiny()
    counts = [1, 4, 16]
    out = sample_count_sweep(model, loader, CFG, torch.device("cpu"), make_generator(0),
                             counts, n_resamples=200)
    assert [e["num_samples"] for e in out["standard"]] == counts
    assert [(e["sample_per_mode"], e["num_samples"], e["matched"]) for e in out["compact"]] == \
        [(1, 4, True), (4, 16, True)]
    for entry in out["standard"] + out["compact"]:
        for metric in ("ged", "miou"):
            ci = entry[metric]
            assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"] and ci["num_images"] == 4
    assert (model.eval_sample_num, model.sample_per_mode) == (None, 2)  # restored
    # the same generator seed draws the same 16 standard samples: every count is a prefix
    x, labels, label_probs = next(iter(loader))
    with sampling(model, 16):
        samples = hard_labels(model(x, generator=make_generator(0))["pred"])  # (4, 16, H, W)
    for entry in out["standard"]:
        n = entry["num_samples"]
        ged, miou = ged_miou(samples[:, :n], labels, gt_weights=label_probs)
        assert entry["ged"]["mean"] == pytest.approx(ged.mean().item(), rel=1e-12)
        assert entry["miou"]["mean"] == pytest.approx(miou.mean().item(), rel=1e-12)
