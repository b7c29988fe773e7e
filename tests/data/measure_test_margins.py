"""Measure what the tolerances and thresholds of the suite are set against; writes
tests/data/test_margins.json (with the commit, software, machine and command).

- learning (tests/test_learning.py): per method, over seeds 0-4, the smallest loss factor
  (first 5 steps' mean loss / last 5 steps') and the largest training-set GED reached, and the
  same figures of seed 0 with the gradient cut (the predictions detached before the loss);
- bf16 (tests/test_fast_head.py), over seeds 0-4: the fused linear+ReLU's deviation from
  float32 in units of its rounding scale, the eval probabilities' deviation from the float32
  plain head, and a bf16 training step's loss and gradient deviations from float32.

    python -m tests.data.measure_test_margins   # from the repository root
"""

import json
from pathlib import Path

import torch

from benchmarks.provenance import provenance
from tests import test_fast_head, test_learning

SEEDS = range(5)


def learning() -> dict:
    """Per method: the smallest loss factor and the largest GED over the seeds, and the figures
    of seed 0 with the gradient cut."""
    figures = {}
    for method in test_learning.STEPS:
        runs = [test_learning.train(method, seed=seed) for seed in SEEDS]
        first, last, ged = test_learning.train(method, cut_gradient=True)
        figures[method] = dict(
            steps=test_learning.STEPS[method], seeds=list(SEEDS),
            min_loss_factor=float(min(f / l for f, l, _ in runs)),
            max_ged=float(max(g for _, _, g in runs)),
            gradient_cut=dict(loss_factor=float(first / last), ged=float(ged)))
    return figures


def bf16() -> dict:
    """The largest deviations of the bf16 paths from float32 over the seeds."""
    amp = [test_fast_head.amp_deviation(seed) for seed in SEEDS]
    return dict(
        seeds=list(SEEDS),
        linear_relu_in_rounding_units=max(test_fast_head.linear_relu_deviation(s) for s in SEEDS),
        eval_probabilities=max(test_fast_head.bf16_eval_deviation(s) for s in SEEDS),
        amp_step_loss_relative=max(loss for loss, _ in amp),
        amp_step_gradient_relative_to_largest=max(grad for _, grad in amp),
        tolerances=dict(linear_relu_in_rounding_units=test_fast_head.LINEAR_RELU_BOUND,
                        eval_probabilities=test_fast_head.EVAL_PROBABILITIES,
                        amp_step_loss_relative=test_fast_head.AMP_LOSS,
                        amp_step_gradient_relative_to_largest=test_fast_head.AMP_GRADIENTS))


def main() -> None:
    threads = torch.get_num_threads()
    record = dict(provenance=provenance(), learning=learning())
    torch.set_num_threads(threads)  # the learning runs use one thread
    record["bf16"] = bf16()
    record["learning_thresholds"] = dict(loss_factor=test_learning.LOSS_FACTOR,
                                         max_ged=test_learning.MAX_GED)
    out = Path(__file__).resolve().parent / "test_margins.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
