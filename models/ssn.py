"""Stochastic Segmentation Networks (Monteiro et al., NeurIPS 2020) on MoSE's U-Net backbone.

The logits of a whole image, flattened to D = C·H·W values, follow one low-rank multivariate
normal: mean mu(x), covariance P(x) P(x)^T + diag(d(x)) with a rank-R factor P. All three come
from 1x1 convolutions of the decoder feature, so the covariance couples every pixel and class.
A sample is mu + P eps_R + sqrt(d) * eps_D (eps standard normal), exactly
`torch.distributions.LowRankMultivariateNormal.rsample`. Training draws S logit samples
(reparameterised) for the Monte-Carlo log-likelihood of one annotation per image
(`utils/loss/ssn_nll.py`); evaluation draws N samples with weight 1/N each.

The LIDC setting follows the code the SSN paper's LIDC results came from
(github.com/MiguelMonteiro/PHiSeg-code, phiseg/model_zoo/likelihoods.py `proposed`, linked from
the README of github.com/biomedia-mira/stochastic_segmentation_networks): the U-Net decoder
feature, 3 x [1x1 conv -> batch norm -> ReLU] ("recomb", F0 channels), then 1x1 convolutions to
the mean (C), the log of the diagonal (C) and the factor (C·R); diagonal = exp(.) + 1e-5.
"""

from typing import Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.distributions import LowRankMultivariateNormal

from models.mose import mask_void
from models.prob_unet import DEFAULT_EVAL_SAMPLES, draw_annotation
from models.unet import BN_EPS, BN_MOMENTUM, Unet


def low_rank_sample(mean: torch.Tensor, cov_factor: torch.Tensor, cov_diag: torch.Tensor,
                    n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """Reparameterised samples of a batch of low-rank multivariate normals.

    Draws the noise in the order and shapes of `LowRankMultivariateNormal.rsample((n,))`
    (factor noise (n, B, R), then diagonal noise (n, B, D)), so with the same seed the samples
    are the same numbers.

    Args:
        mean: (B, D).
        cov_factor: (B, D, R).
        cov_diag: (B, D) positive.
        n: samples per distribution.
        generator: generator for the noise.

    Returns:
        (B, n, D) samples.
    """
    B, D, R = cov_factor.shape
    kw = dict(generator=generator, device=mean.device, dtype=mean.dtype)
    eps_r = torch.randn((n, B, R), **kw)  # (n, B, R)
    eps_d = torch.randn((n, B, D), **kw)  # (n, B, D)
    low_rank = torch.einsum("bdr,nbr->bnd", cov_factor, eps_r)  # (B, n, D)
    return mean[:, None] + low_rank + cov_diag.sqrt()[:, None] * eps_d.transpose(0, 1)  # (B, n, D)


class SSN(nn.Module):
    """Stochastic Segmentation Network returning MoSE's output dict.

    Args:
        input_channels: channels of the input image.
        num_classes: C (2 for LIDC: the paper's loss needs an explicit background class).
        num_filters: U-Net channels per level.
        rank: R, rank of the covariance factor (10 in the paper).
        mc_samples: S, logit samples per image for the training loss (20 in the paper).
        softmax: return probabilities in `pred` instead of logits.
        masked_pred: where annotation 0 is void (label 0), output class 0 for all samples.
        eval_sample_num: N samples in eval mode; None: 16. Stored as the N actually drawn.
        epsilon: added to the diagonal (1e-5 in the paper's code).
        num_1x1_convs: depth of the 1x1 "recomb" block before the three heads (3 in the code).
        channels_last: run the backbone channels-last.
        amp: bf16 autocast for the convolutions; the distribution and samples stay float32.
    """

    def __init__(self, input_channels: int, num_classes: int, num_filters: Sequence[int],
                 rank: int = 10, mc_samples: int = 20, softmax: bool = True,
                 masked_pred: bool = False, eval_sample_num: Optional[int] = None,
                 epsilon: float = 1e-5, num_1x1_convs: int = 3, channels_last: bool = False,
                 amp: bool = False):
        super().__init__()
        if rank < 1 or mc_samples < 1:
            raise ValueError(f"rank and mc_samples must be >= 1, got {rank} and {mc_samples}")
        F0 = num_filters[0]
        self.backbone = Unet(input_channels, num_filters)
        layers = []
        for _ in range(num_1x1_convs):
            layers += [nn.Conv2d(F0, F0, 1), nn.BatchNorm2d(F0, eps=BN_EPS, momentum=BN_MOMENTUM),
                       nn.ReLU(inplace=True)]
        self.recomb = nn.Sequential(*layers)
        self.mean_l = nn.Conv2d(F0, num_classes, 1)
        self.log_cov_diag_l = nn.Conv2d(F0, num_classes, 1)
        self.cov_factor_l = nn.Conv2d(F0, num_classes * rank, 1)
        self.num_classes = num_classes
        self.rank = rank
        self.mc_samples = mc_samples
        self.softmax = softmax
        self.masked_pred = masked_pred
        self.eval_sample_num = DEFAULT_EVAL_SAMPLES if eval_sample_num is None else eval_sample_num
        self.epsilon = epsilon
        self.channels_last = channels_last
        self.amp = amp

    def distribution_params(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Mean, covariance factor and diagonal of the logit distribution.

        Args:
            x: (B, C_in, H, W) image.

        Returns:
            mean (B, D), cov_factor (B, D, R), cov_diag (B, D), D = C·H·W in (C, H, W) order.
        """
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            _, u_d = self.backbone(x)  # (B, F0, H, W)
            h = self.recomb(u_d)  # (B, F0, H, W)
            mean, log_diag, factor = self.mean_l(h), self.log_cov_diag_l(h), self.cov_factor_l(h)
        B = x.shape[0]
        mean = mean.float().reshape(B, -1)  # (B, D)
        cov_diag = log_diag.float().reshape(B, -1).exp() + self.epsilon  # (B, D)
        cov_factor = factor.float().reshape(B, self.rank, -1).transpose(1, 2)  # (B, D, R)
        return mean, cov_factor, cov_diag

    def distribution(self, x: torch.Tensor) -> LowRankMultivariateNormal:
        """The predictive distribution over flattened logits (batch shape (B,), event (D,))."""
        mean, cov_factor, cov_diag = self.distribution_params(x)
        return LowRankMultivariateNormal(mean, cov_factor, cov_diag)

    def forward(self, x: torch.Tensor, label: Optional[torch.Tensor] = None,
                generator: Optional[torch.Generator] = None,
                label_probs: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """Training (with `label`): S = `mc_samples` samples; otherwise N = `eval_sample_num`.

        Args:
            x: (B, C_in, H, W) image.
            label: (B, M, H, W) int annotations; needed for training and for `masked_pred`.
            generator: generator for the annotation draw and the logit noise.
            label_probs: (B, M) probabilities of the annotations (None: uniform).

        Returns:
            dict with `pred` (B, N, C, H, W) probabilities if `softmax` else logits, `weights`
            (B, N) = 1/N, `logits` (B, N, C, H, W) samples before softmax and masking,
            `logit_mean` (B, C, H, W); in training also `target` (B, H, W), the drawn
            annotation, and `annotation` (B,) its index.
        """
        B, _, H, W = x.shape
        mean, cov_factor, cov_diag = self.distribution_params(x)
        extra = {}
        if self.training and label is not None:
            index, target = draw_annotation(label, label_probs, generator)
            extra = dict(target=target, annotation=index)
            n = self.mc_samples
        else:
            n = self.eval_sample_num or DEFAULT_EVAL_SAMPLES
        logits = low_rank_sample(mean, cov_factor, cov_diag, n, generator)  # (B, N, D)
        logits = logits.reshape(B, n, self.num_classes, H, W)  # (B, N, C, H, W)
        pred = torch.softmax(logits, dim=2) if self.softmax else logits
        if self.masked_pred and label is not None:
            pred = mask_void(pred, label)
        weights = logits.new_full((B, n), 1.0 / n)  # (B, N)
        logit_mean = mean.reshape(B, self.num_classes, H, W)  # (B, C, H, W)
        return dict(pred=pred, weights=weights, logits=logits, logit_mean=logit_mean, **extra)
