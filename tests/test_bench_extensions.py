"""The bookkeeping of benchmarks/bench_extensions.py: interleaving, per-round ratios, the demo's
γ schedule weights and the resident-memory peak of a step (nothing here is timed)."""

import sys

import pytest
import torch

from benchmarks.bench_extensions import interleave, ratios, schedule_weights, spread, step_peak_mb
from utils.config.config import load_config


def test_interleave_warms_up_once_then_runs_every_step_per_round_in_turned_order():
    calls = []
    steps = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleave(steps, rounds=3, per_round=2)
    assert calls == list("abc") + list("aabbcc") + list("bbccaa") + list("ccaabb")
    assert {n: (len(t["cpu"]), len(t["wall"])) for n, t in times.items()} == \
        dict(a=(3, 3), b=(3, 3), c=(3, 3))
    assert all(t["forward"] == [0.0] * 3 for t in times.values())


def test_interleave_averages_what_a_step_reports_as_its_forward():
    reported = iter([1.0, 3.0, 5.0, 7.0, 9.0])  # warm-up, then two rounds of two
    times = interleave({"a": lambda: next(reported)}, rounds=2, per_round=2)
    assert times["a"]["forward"] == [4.0, 8.0]


def test_ratios_are_taken_within_each_round():
    # a slow second round raises both: the per-round ratio stays 2
    assert ratios([2.0, 20.0, 4.0], [1.0, 10.0, 2.0]) == dict(median=2.0, min=2.0, max=2.0,
                                                              of_fastest=2.0)
    # of_fastest: the fastest round of each, whichever rounds they are
    assert ratios([1.0, 3.0, 2.0], [2.0, 1.0, 1.0]) == dict(median=2.0, min=0.5, max=3.0,
                                                            of_fastest=1.0)


def test_spread_scales_and_keeps_every_round():
    assert spread([0.003, 0.001, 0.002], 1e3, 1) == dict(median=2.0, min=1.0, max=3.0,
                                                          rounds=[3.0, 1.0, 2.0])


def test_schedule_weights_follow_the_demo_milestones():
    cfg = load_config("experiments/synthetic_lidc.py")
    # γ = 1/16, then 1/8 after epoch 2, then 1 after epoch 6 of 16
    assert schedule_weights(cfg) == {"gamma_1/8": 6 / 16, "gamma_1": 10 / 16}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_step_peak_counts_the_memory_a_step_touches():
    peak = step_peak_mb(lambda: torch.ones(16 * 2**20).sum())  # 64 MiB written, then freed
    if peak is None:
        pytest.skip("no glibc malloc_trim or /proc/self/clear_refs here")
    assert 60 <= peak < 200
