"""The tests' own brute-force metrics (tests/independent.py), which judge the end-to-end runs,
against the authors' numbers and against the project's metrics on cases with every convention
(weights, zero-weight annotations, classes absent from both maps)."""

import numpy as np
import pytest
import torch

from tests import independent
from tests.helpers import oracle
from utils.evaluation.metrics import ged_miou


def test_brute_force_ged_and_miou_equal_the_authors():
    ref = oracle()
    samples, gts = ref["lidc16_samples"], ref["lidc16_gts"]
    u, v = np.full(16, 1 / 16), np.full(4, 1 / 4)
    geds = [independent.ged(s, g, u, v, 2, [1]) for s, g in zip(samples, gts)]
    mious = [independent.miou(s, g, u, v, 2, [1]) for s, g in zip(samples, gts)]
    assert np.mean(geds) == pytest.approx(float(ref["lidc16_ged"]), rel=1e-5)
    assert np.mean(mious) == pytest.approx(float(ref["lidc16_miou"]), rel=1e-5)


# image 0 has no evaluated class anywhere: its M-IoU is undefined on both sides, the project
# reaching NaN through POT on an all-NaN cost (which warns)
@pytest.mark.filterwarnings("ignore:Problem unbounded:UserWarning")
@pytest.mark.parametrize("num_classes,ids", [(2, [1]), (4, [1, 3])])
def test_brute_force_equals_the_project_with_weights_and_absent_classes(num_classes, ids):
    g = torch.Generator().manual_seed(0)
    B, N, M = 6, 6, 3
    samples = torch.randint(0, num_classes, (B, N, 5, 4), generator=g)
    gts = torch.randint(0, num_classes, (B, M, 5, 4), generator=g)
    samples[0], gts[0] = 0, 0  # nothing evaluated anywhere: 0 (binary) or undefined
    samples[1, :2] = 0
    u = torch.softmax(torch.randn(B, N, generator=g), 1).double()
    v = torch.tensor([[0.5, 0.3, 0.2]] * B, dtype=torch.float64)
    v[2] = torch.tensor([0.6, 0.4, 0.0])  # a zero-weight (padding) annotation
    ged, miou = ged_miou(samples, gts, u, v, num_classes=num_classes, eval_class_ids=ids)
    for b in range(B):
        args = (samples[b].numpy(), gts[b].numpy(), u[b].numpy(), v[b].numpy(), num_classes,
                ids)
        want_ged, want_miou = independent.ged(*args), independent.miou(*args)
        np.testing.assert_allclose(ged[b].item(), want_ged, rtol=0, atol=1e-7)
        np.testing.assert_allclose(miou[b].item(), want_miou, rtol=0, atol=1e-7)
    assert np.isnan(ged[0].item()) == (num_classes > 2)  # the case is exercised
