"""benchmarks/matmul_limit.py: flop counts follow the textbook formulas, the matmul rate is a
positive number, and the fractions of the limit bench_compare.py reports are img/s over the
limit. No timing is asserted."""

import math

import pytest
import torch
from torch import nn

import benchmarks.matmul_limit as ml
from utils.config.config import load_config

B, C_IN, C_OUT, H, W, K = 2, 3, 5, 8, 8, 3  # conv: batch, channels, size, kernel (no padding)
FEATURES = 7  # linear output


def small_model() -> nn.Module:
    """Conv (C_IN -> C_OUT, K×K, no padding) -> flatten -> Linear (-> FEATURES)."""
    torch.manual_seed(0)
    side = H - K + 1
    return nn.Sequential(nn.Conv2d(C_IN, C_OUT, K), nn.Flatten(),
                         nn.Linear(C_OUT * side * side, FEATURES))


def formula() -> tuple:
    """(conv flops, linear flops) of one forward: 2 per multiply-add, biases not counted."""
    side = H - K + 1
    conv = 2 * B * C_OUT * side * side * C_IN * K * K
    linear = 2 * B * (C_OUT * side * side) * FEATURES
    return conv, linear


def test_forward_flops_are_the_formula():
    model, x = small_model(), torch.randn(B, C_IN, H, W)  # (B, C_in, H, W)
    conv, linear = formula()
    with torch.no_grad():
        assert ml.count_flops(lambda: model(x)) == conv + linear


def test_backward_adds_a_weight_gradient_and_an_input_gradient_where_needed():
    model, x = small_model(), torch.randn(B, C_IN, H, W)  # the input needs no gradient
    conv, linear = formula()
    # conv: forward + weight gradient; linear: forward + weight and input gradients
    assert ml.count_flops(lambda: model(x).sum().backward()) == 2 * conv + 3 * linear


def test_matmul_rate_is_positive_and_finite():
    threads = torch.get_num_threads()
    rate = ml.matmul_gflops(torch.float32, threads=1, size=64, repeats=1)
    assert rate > 0 and math.isfinite(rate)
    assert torch.get_num_threads() == threads  # restored


def test_step_work_of_a_tiny_config():
    cfg = load_config(None, ["num_filters=[4, 8]"])
    train, evaluation = ml.train_flops_per_image(cfg, 2), ml.eval_flops_per_image(cfg, 2)
    assert train > evaluation > 0  # the backward roughly doubles the forward's work


def test_fractions_are_img_per_s_over_the_limit():
    result = {"matmul_gflops_fp32": 100.0, "matmul_gflops_bf16": 400.0,
              "train_gflop_per_image": 2.0, "eval_gflop_per_image": 0.5,
              "default_train_img_per_s": {"median": 10.0},
              "default_eval_img_per_s": {"median": 40.0}}
    got = ml.fractions(result, "default", bf16=True)
    assert got == pytest.approx({
        "default_train_fraction_of_limit": 0.2, "default_eval_fraction_of_limit": 0.2,
        "default_train_fraction_of_bf16_limit": 0.05, "default_eval_fraction_of_bf16_limit": 0.05})
    assert set(ml.fractions(result, "default", bf16=False)) == {
        "default_train_fraction_of_limit", "default_eval_fraction_of_limit"}
