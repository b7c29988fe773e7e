"""Training objective of the Probabilistic U-Net (Kohl et al., NeurIPS 2018): the negative ELBO.

loss = mean_b [ Σ_pixels CE(logits_b(z_q), y_b) + β · KL(q(z | x_b, y_b) ‖ p(z | x_b)) ]

with z_q one posterior sample and y_b the annotation drawn for image b (the model draws both).
The cross-entropy is summed over pixels and averaged over the batch, the KL is analytic, summed
over the latent dimensions and averaged over the batch: Kohl et al.'s `ProbUNet.elbo` with
`ce_loss(...)['sum']` (github.com/SimonKohl/probabilistic_unet, model/probabilistic_unet.py and
utils/training_utils.py).
"""

from typing import Dict, Tuple

import torch
import torch.nn.functional as F


def pixel_nll(logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor,
              ignore_void: bool) -> torch.Tensor:
    """Per-sample cross-entropy summed over pixels.

    Args:
        logits: (B, N, C, H, W).
        target: (B, H, W) int annotation.
        labels: (B, M, H, W) all annotations (void = label 0 in annotation 0).
        ignore_void: leave out the pixels where annotation 0 is void (Cityscapes' masked_pred).

    Returns:
        (B, N) negative log-likelihood of the target under each sample.
    """
    B, N, C, H, W = logits.shape
    targets = target[:, None].expand(B, N, H, W)  # (B, N, H, W)
    ce = F.cross_entropy(logits.reshape(B * N, C, H, W), targets.reshape(B * N, H, W),
                         reduction="none").reshape(B, N, H, W)  # (B, N, H, W)
    if ignore_void:
        ce = ce * (labels[:, :1] != 0)  # (B, N, H, W)
    return ce.sum(dim=(2, 3))  # (B, N)


class ELBOLoss:
    """Negative ELBO of the Probabilistic U-Net.

    Args:
        beta: weight β of the KL term (1 in Kohl et al.).
        ignore_void: leave void pixels (annotation 0 equal to 0) out of the cross-entropy.
    """

    def __init__(self, beta: float = 1.0, ignore_void: bool = False):
        self.beta = beta
        self.ignore_void = ignore_void

    def __call__(self, out: Dict[str, torch.Tensor], labels: torch.Tensor,
                 label_probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Compute the loss from a training-mode forward.

        Args:
            out: `ProbUnet` output with `logits` (B, 1, C, H, W), `target` (B, H, W), `kl` (B,).
            labels: (B, M, H, W) int annotations.
            label_probs: (B, M); unused (the model drew the annotation with them).

        Returns:
            (loss, seg, kl) scalars; loss = seg + β·kl.
        """
        if "kl" not in out or "target" not in out:
            raise ValueError("ELBOLoss needs a training-mode ProbUnet output (model.train() and "
                             "labels passed to the forward)")
        seg = pixel_nll(out["logits"], out["target"], labels, self.ignore_void).mean()
        kl = out["kl"].mean()
        return seg + self.beta * kl, seg, kl
