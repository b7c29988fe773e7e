"""The head of MoSE as matrix products over pixels: same parameters and mathematics, less memory.

The plain head (models/head.py) forms N modulated copies of the decoder feature and runs
1×1 convolutions on B·N maps; on a CPU that is memory-bound. Here:

- the per-sample shift/scale and the two consecutive 1×1 convolutions without a
  nonlinearity between them (`fuse.last_layer`, then the first head convolution) fold into one
  per-sample (F0 × F0) weight and bias, applied to the decoder feature by one batched matrix
  product — the (B, N, F0, H, W) and (B·N, F0 + L, H, W) tensors are never formed;
- training in float32 on a CPU keeps the plain head's channel-major layout for the rest:
  the product writes (B·N, F0, H·W) maps directly, the BatchNorm2d modules run on them, and the
  remaining 1×1 convolutions are batched products with the weight expanded over the maps
  (`maps_layout`; faster per step than rows on a CPU: docs/performance.md);
- otherwise (evaluation, bf16, GPUs, compiled kernels) the remaining 1×1 convolutions are
  `F.linear` on a (rows, channels) matrix whose rows are the pixels of every sample (order:
  image, pixel, sample), with batch normalisation over rows, which equals BatchNorm2d over
  (B·N, C, H, W) and updates the same running statistics.
"""

import logging
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger("mose")


def conv_weight(conv: nn.Conv2d) -> torch.Tensor:
    """(C_out, C_in) matrix of a 1×1 convolution."""
    return conv.weight[:, :, 0, 0]


def bn_relu_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float):
    """relu(BatchNorm(x)) with batch statistics over the rows of x (R, C).

    Statistics in two steps — a first mean m0, then the mean m1 of the centred values x − m0
    (exact by Sterbenz' lemma) — so mean and variance stay accurate when a channel's spread is
    tiny against its mean. (PyTorch's kernel for this layout, and a plain float32 mean, lose
    digits there that the reference's numbers keep.)

    Under bf16 autocast x is bfloat16: the statistics are computed in float32 and y is
    returned in x's dtype (compiled, the casts fuse into the loops; for float32 they are no-ops).

    Returns:
        y (R, C), the batch mean (C,), the biased variance (C,) and 1/sqrt(var + eps) (C,).
    """
    dtype, x = x.dtype, x.float()
    m0 = x.mean(0)  # (C,)
    centred = x - m0  # (R, C)
    m1 = centred.mean(0)  # (C,) small correction of the mean
    var = (centred.square().mean(0) - m1 * m1).clamp_min(0)  # (C,) biased
    invstd = torch.rsqrt(var + eps)  # (C,)
    scale = weight * invstd  # (C,)
    y = torch.addcmul(bias - m1 * scale, centred, scale).relu_()  # (R, C)
    return y.to(dtype), m0 + m1, var, invstd


def bn_relu_backward(grad_y: torch.Tensor, y: torch.Tensor, x: torch.Tensor, mean: torch.Tensor,
                     scale: torch.Tensor, invstd: torch.Tensor, training: bool):
    """Gradients of `bn_relu_forward` w.r.t. x, the BatchNorm weight and bias.

    Args:
        grad_y, y, x: (R, C); mean, scale (= weight·invstd), invstd: (C,).
        training: the statistics were the batch's (they depend on x).

    Returns:
        grad_x (R, C) in x's dtype, grad_weight (C,), grad_bias (C,).
    """
    dtype, x = x.dtype, x.float()
    g = torch.where(y > 0, grad_y.float(), 0.0)  # (R, C), through the ReLU
    centred = x - mean  # (R, C)
    sum_g = g.sum(0)  # (C,)
    sum_gc = (g * centred).sum(0)  # (C,)
    if training:  # the batch statistics depend on x
        k = -scale * invstd * invstd * sum_gc / x.shape[0]  # (C,) coefficient of (x − mean)
        grad_x = torch.addcmul(-scale * sum_g / x.shape[0], g, scale)  # (R, C)
        grad_x.addcmul_(centred, k)
    else:
        grad_x = g * scale  # (R, C)
    return grad_x.to(dtype), sum_gc * invstd, sum_g


def bn_relu_backward_lean(grad_y: torch.Tensor, y: torch.Tensor, x: torch.Tensor,
                          mean: torch.Tensor, scale: torch.Tensor, invstd: torch.Tensor,
                          training: bool, rows: int = 65536):
    """`bn_relu_backward` with x − mean formed a block of rows at a time (eager use).

    Its full-size temporaries are only g and the result: the largest head tensors (128 MiB at
    batch 4 on LIDC) are not duplicated, so peak memory stays that of a plain BatchNorm.
    """
    if not training:
        return bn_relu_backward(grad_y, y, x, mean, scale, invstd, training)
    n = x.shape[0]
    g = torch.ops.aten.threshold_backward(grad_y, y, 0.0)  # (R, C), through the ReLU
    sum_g = g.sum(0)  # (C,)
    sum_gc = sum((g[i:i + rows] * (x[i:i + rows] - mean)).sum(0) for i in range(0, n, rows))
    k = -scale * invstd * invstd * sum_gc / n  # (C,) coefficient of (x − mean)
    grad_x = torch.addcmul(-scale * sum_g / n, g, scale)  # (R, C)
    for i in range(0, n, rows):
        grad_x[i:i + rows].addcmul_(x[i:i + rows] - mean, k)
    return grad_x.to(x.dtype), sum_gc * invstd, sum_g


_COMPILED: dict = {}  # the compiled kernels, created at first use; "failed" once they fail


def kernels(compiled: bool):
    """(forward, backward) row BatchNorm kernels: eager, or compiled by `torch.compile`.

    Compiled (inductor), each kernel runs as two or three fused loops over the rows instead of
    about a dozen passes. Compilation happens at the first training step (seconds; inductor
    caches it across runs). Where it fails (no C++ compiler, an unsupported platform), one
    warning is logged and the eager kernels are used from then on.
    """
    if not compiled or _COMPILED.get("failed"):
        return bn_relu_forward, bn_relu_backward_lean
    if not _COMPILED:
        _COMPILED.update(forward=_fallback(torch.compile(bn_relu_forward), bn_relu_forward),
                         backward=_fallback(torch.compile(bn_relu_backward),
                                            bn_relu_backward_lean))
    return _COMPILED["forward"], _COMPILED["backward"]


def _fallback(compiled, eager):
    """`compiled`, switching every kernel to eager for good if a call of it raises."""

    def call(*args):
        if _COMPILED.get("failed"):
            return eager(*args)
        try:
            return compiled(*args)
        except Exception as err:  # noqa: BLE001  torch.compile raises many kinds
            logger.warning("fast head: torch.compile of the BatchNorm kernels failed "
                           f"({type(err).__name__}: {str(err)[:200]}); using the eager kernels")
            _COMPILED["failed"] = True
            return eager(*args)

    return call


class BatchNormReLURows(torch.autograd.Function):
    """relu(BatchNorm(x)) on a (rows, C) matrix, statistics over rows, with a hand-written backward.

    The forward and backward are `bn_relu_forward` / `bn_relu_backward`, compiled if
    `compiled` (`kernels`); the backward saves only the input and the output.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, training,
                compiled=False):
        n = x.shape[0]
        ctx.kernels = kernels(compiled)
        if training:
            y, mean, var, invstd = ctx.kernels[0](x, weight, bias, eps)
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
                running_var.mul_(1 - momentum).add_(var * n / max(n - 1, 1), alpha=momentum)
        else:
            mean, invstd = running_mean, torch.rsqrt(running_var + eps)
            y = torch.addcmul(bias - mean * weight * invstd, x, weight * invstd).relu_()
        ctx.save_for_backward(x, y, mean, weight * invstd, invstd)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, y, mean, scale, invstd = ctx.saved_tensors
        grads = ctx.kernels[1](grad_y.contiguous(), y, x, mean, scale, invstd, ctx.training)
        return (*grads, None, None, None, None, None, None)


def batch_norm_relu_rows(x: torch.Tensor, bn: nn.BatchNorm2d, training: bool,
                         compiled: bool = False) -> torch.Tensor:
    """relu(bn(x)) for a (rows, C) matrix with the module's parameters and running statistics.

    Args:
        x: (R, C) pre-normalisation activations.
        bn: the BatchNorm2d module whose parameters and buffers are used (and updated).
        training: use (and update) batch statistics instead of the running ones.
        compiled: use the `torch.compile`d kernels (`kernels`).

    Returns:
        (R, C) activations.
    """
    if training:
        bn.num_batches_tracked.add_(1)
    return BatchNormReLURows.apply(x, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                   bn.momentum, bn.eps, training, compiled)


def eval_affine(bn: nn.BatchNorm2d):
    """Per-channel (scale, shift) of an eval-mode BatchNorm: bn(x) = scale·x + shift."""
    scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)  # (C,)
    return scale, bn.bias - bn.running_mean * scale


def folded_linear(conv: nn.Conv2d, bn: nn.BatchNorm2d):
    """Weight and bias of an eval-mode BatchNorm applied after a 1×1 convolution."""
    scale, shift = eval_affine(bn)
    return conv_weight(conv) * scale[:, None], conv.bias * scale + shift


def sample_maps(z: torch.Tensor, fuse: nn.Module, conv0: nn.Conv2d,
                bn0: Optional[nn.BatchNorm2d] = None):
    """Per-sample linear map of noise injection, `fuse.last_layer` and the first head convolution.

    conv0(W1·((u + r_n)·s_n) + b1) = A_n·u + c_n with A_n = W0·W1·diag(s_n) and
    c_n = A_n·r_n + W0·b1 + b0 (with `bn0`, its eval-mode affine map is folded in as well).

    Args:
        z: (B, N, L) latents.

    Returns:
        A_n (B, N, F0_out, F0_in) and c_n (B, N, F0_out).
    """
    r = fuse.residual(z)  # (B, N, F0)
    s = fuse.scale(z) + 1e-5  # (B, N, F0)
    w01 = conv_weight(conv0) @ conv_weight(fuse.last_layer)  # (F0, F0)
    bias = conv_weight(conv0) @ fuse.last_layer.bias + conv0.bias  # (F0,)
    if bn0 is not None:
        scale, shift = eval_affine(bn0)
        w01, bias = w01 * scale[:, None], bias * scale + shift
    a_n = w01[None, None] * s[:, :, None, :]  # (B, N, F0_out, F0_in)
    c_n = (a_n @ r[..., None])[..., 0] + bias  # (B, N, F0)
    return a_n, c_n


def first_layer(u_d: torch.Tensor, z: torch.Tensor, fuse: nn.Module, conv0: nn.Conv2d,
                bn0: Optional[nn.BatchNorm2d] = None, relu: bool = False) -> torch.Tensor:
    """Noise injection, `fuse.last_layer` and the first head convolution in one product, as rows.

    Args:
        u_d: (B, F0, H, W) decoder feature.
        z: (B, N, L) latents.
        fuse: the NoiseInjection module (residual, scale, last_layer).
        conv0: the first head convolution (F0 + L → F0).
        bn0: if given, its eval-mode affine map is folded in as well.
        relu: apply the ReLU that follows (eval mode).

    Returns:
        (B·H·W·N, F0) rows (pre-normalisation, or normalised if `bn0`, activated if `relu`),
        ordered (image, pixel, sample).
    """
    B, F0, H, W = u_d.shape
    N = z.shape[1]
    a_n, c_n = sample_maps(z, fuse, conv0, bn0)  # (B, N, F0, F0), (B, N, F0)
    pixels = u_d.permute(0, 2, 3, 1).reshape(B, H * W, F0)  # (B, H·W, F0), free if channels_last
    a_n, c_n = a_n.reshape(B, N * F0, F0), c_n.reshape(B, N * F0)  # per image: one linear map
    if relu and B == 1 and pixels.dtype == torch.bfloat16:  # one fused call (`linear_relu`)
        return linear_relu(pixels[0], a_n[0], c_n[0]).reshape(H * W * N, F0)  # (H·W·N, F0)
    out = torch.baddbmm(c_n[:, None], pixels, a_n.transpose(1, 2))  # (B, H·W, N·F0)
    if relu:
        out.relu_()
    return out.reshape(B * H * W * N, F0)  # (B·H·W·N, F0)


def first_layer_maps(u_d: torch.Tensor, z: torch.Tensor, fuse: nn.Module,
                     conv0: nn.Conv2d) -> torch.Tensor:
    """`first_layer` (pre-normalisation) as channel-major maps of every sample.

    Returns:
        (B·N, F0, H·W): the plain head's (B·N, F0, H, W) layout, image-major.
    """
    B, F0, H, W = u_d.shape
    N = z.shape[1]
    a_n, c_n = sample_maps(z, fuse, conv0)  # (B, N, F0, F0), (B, N, F0)
    maps = u_d.reshape(B, F0, H * W)  # (B, F0, H·W); a small copy if channels_last
    out = torch.baddbmm(c_n.reshape(B, N * F0, 1), a_n.reshape(B, N * F0, F0), maps)
    return out.view(B * N, F0, H * W)  # (B·N, F0, H·W)


def conv1x1_maps(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """A 1×1 convolution of (G, C_in, P) maps as one batched product: (G, C_out, P).

    The weight is expanded over G without a copy; on a CPU this is about twice as fast as
    oneDNN's 1×1 convolution or `F.linear` on (rows, C) for the head's few channels.
    """
    G = x.shape[0]
    w = conv_weight(conv)  # (C_out, C_in)
    return torch.baddbmm(conv.bias[None, :, None], w.expand(G, *w.shape), x)  # (G, C_out, P)


def linear_relu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """relu(x·Wᵀ + b) for (R, C_in) rows; one fused oneDNN call for bfloat16 rows on a CPU.

    Under bf16 autocast the unfused ReLU pass costs as much as the product (measured: 44 ms
    unfused vs 27 ms fused for the LIDC head's 1M × 32 rows); float32 gains nothing from the
    fusion and keeps the plain ops (and so its rounding).
    """
    weight, bias = weight.to(x.dtype), bias.to(x.dtype)  # no-ops for float32
    if x.dtype == torch.bfloat16 and x.device.type == "cpu" and not _FUSED.get("failed"):
        try:
            return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "relu", [], "")
        except (RuntimeError, AttributeError) as err:  # a build without oneDNN
            logger.warning(f"fast head: fused bf16 linear+ReLU unavailable ({err}); unfused")
            _FUSED["failed"] = True
    return F.relu(F.linear(x, weight, bias), inplace=True)


_FUSED: dict = {}  # "failed" once the fused oneDNN call is unavailable


def fast_head(u_d: torch.Tensor, z: torch.Tensor, fuse: nn.Module, layers: nn.Module,
              last_layer: nn.Conv2d, training: bool, compiled: bool = False) -> torch.Tensor:
    """Logits of every sample, equal to `MoSE.decode` with the plain modules.

    Args:
        u_d: (B, F0, H, W) decoder feature.
        z: (B, N, L) latents.
        fuse, layers, last_layer: the model's head modules (their parameters are used).
        training: batch statistics (and running-stat updates) instead of running statistics.
        compiled: training-mode batch norms with the `torch.compile`d kernels (`kernels`).

    Returns:
        (B, N, C, H, W) logits (a permuted view, except for training on maps).
    """
    B, _, H, W = u_d.shape
    N = z.shape[1]
    blocks = [blk.convolution for blk in layers.convolution]  # [(conv, bn, relu)] × 3
    if training and maps_layout(u_d, compiled):
        x = first_layer_maps(u_d, z, fuse, blocks[0][0])  # (B·N, F0, H·W)
        for i, (conv, bn, _) in enumerate(blocks):
            if i > 0:
                x = conv1x1_maps(x, conv)  # (B·N, F0, H·W)
            x = F.relu(bn(x.view(B * N, -1, H, W)), inplace=True).view(B * N, -1, H * W)
        x = conv1x1_maps(x, last_layer)  # (B·N, C, H·W)
        return x.view(B, N, -1, H, W)  # (B, N, C, H, W)
    if training:
        x = first_layer(u_d, z, fuse, blocks[0][0])  # (R, F0), R = B·H·W·N
        x = batch_norm_relu_rows(x, blocks[0][1], training, compiled)
        for conv, bn, _ in blocks[1:]:
            x = F.linear(x, conv_weight(conv), conv.bias)  # (R, F0)
            x = batch_norm_relu_rows(x, bn, training, compiled)
        x = F.linear(x, conv_weight(last_layer), last_layer.bias)  # (R, C)
    elif B > 1 and u_d.dtype == torch.bfloat16 and u_d.device.type == "cpu":
        # bf16 autocast on a CPU: image by image, so every layer is one fused oneDNN call
        return torch.cat([fast_head(u_d[b:b + 1], z[b:b + 1], fuse, layers, last_layer, False)
                          for b in range(B)])  # (B, N, C, H, W)
    else:
        x = eval_rows(u_d, z, fuse, blocks, last_layer)  # (R, C)
    C = x.shape[1]
    return x.view(B, H, W, N, C).permute(0, 3, 4, 1, 2)  # (B, N, C, H, W)


def maps_layout(u_d: torch.Tensor, compiled: bool) -> bool:
    """Whether training uses channel-major maps (`first_layer_maps`) instead of rows.

    Maps with the BatchNorm2d modules themselves (PyTorch's kernel for NCHW, the plain head's)
    and batched 1×1 products: a float32 training step on a CPU is faster than with rows
    (`research/head_layout.py` measures both). Rows stay
    for the compiled kernels, for bf16 (their statistics in float32) and on GPUs, where only
    the rows were measured.
    """
    return (not compiled and u_d.device.type == "cpu" and u_d.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu"))


def eval_rows(u_d: torch.Tensor, z: torch.Tensor, fuse: nn.Module, blocks: list,
              last_layer: nn.Conv2d) -> torch.Tensor:
    """Eval-mode head logits as (B·H·W·N, C) rows: every BatchNorm (running statistics) is
    folded into the linear map before it; bf16 rows of one image on a CPU use fused
    linear+ReLU calls (`linear_relu`)."""
    x = first_layer(u_d, z, fuse, blocks[0][0], blocks[0][1], relu=True)  # (R, F0)
    for conv, bn, _ in blocks[1:]:
        x = linear_relu(x, *folded_linear(conv, bn))  # (R, F0)
    return F.linear(x, conv_weight(last_layer), last_layer.bias)  # (R, C)
