"""The streaming ECE against the authors' code: every `ece_oracle_*.npz` in tests/data holds,
per case (`ece_<case>_*`), predicted probabilities `pred` (B, N, C, H, W), sample weights `prob`
(B, N), annotations `masks` (B, M, H, W), annotation weights `pg` (B, M), the evaluated classes
`label_range` and `value`, the authors' ECE (10 bins, a fraction)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from tests import independent
from utils.evaluation.metrics import StreamingECE

DATA = Path(__file__).resolve().parent / "data"


def cases() -> list:
    """(file, case) of every ECE reference case."""
    found = []
    for path in sorted(DATA.glob("ece_oracle_*.npz")):
        with np.load(path) as f:
            found += [(path, key[4:-6]) for key in f.files
                      if key.startswith("ece_") and key.endswith("_value")]
    return found


def load(path: Path, case: str) -> dict:
    with np.load(path) as f:
        return {key[len(f"ece_{case}_"):]: f[key] for key in f.files
                if key.startswith(f"ece_{case}_")}


def test_the_public_cases_are_found():
    assert {case for _, case in cases()} >= {"lidc", "city"}


@pytest.mark.parametrize("path,case", cases(), ids=lambda v: v if isinstance(v, str) else v.stem)
def test_streaming_ece_equals_the_authors(path, case):
    ref = load(path, case)
    pred, prob = torch.from_numpy(ref["pred"]), torch.from_numpy(ref["prob"])
    masks, pg = torch.from_numpy(ref["masks"]), torch.from_numpy(ref["pg"])
    num_classes, ids = pred.shape[2], ref["label_range"].tolist()
    whole = StreamingECE(num_classes, ids)
    whole.update(pred, prob, masks, pg)
    streamed = StreamingECE(num_classes, ids)
    for b in range(pred.shape[0]):  # one image at a time: the same sums
        streamed.update(pred[b:b + 1], prob[b:b + 1], masks[b:b + 1], pg[b:b + 1])
    # float32 marginals binned, sums in float64: agreement to float32 rounding of the inputs
    assert whole.compute() == pytest.approx(float(ref["value"]), rel=1e-5)
    assert streamed.compute() == pytest.approx(float(ref["value"]), rel=1e-5)
    # the tests' own ECE (tests/independent.py) agrees too, so it can judge end-to-end runs
    brute = independent.ece([(ref["pred"], ref["prob"], ref["masks"], ref["pg"])], num_classes,
                            ids)
    assert brute == pytest.approx(float(ref["value"]), rel=1e-5)
