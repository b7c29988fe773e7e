"""Training objective of Stochastic Segmentation Networks (Monteiro et al., NeurIPS 2020).

The Monte-Carlo estimate of the negative log-likelihood of the annotation y_b under the logit
distribution, with S reparameterised logit samples η_s (drawn by the model):

loss = -mean_b [ logsumexp_s Σ_pixels log softmax(η_{b,s})[y_b] - log S ]

as the code of the paper's LIDC results (github.com/MiguelMonteiro/PHiSeg-code,
phiseg/phiseg_model.py `add_proposed_loss`: plain `rsample`, 20 samples; the BraTS code in
github.com/biomedia-mira/stochastic_segmentation_networks, ssn/trainer/losses.py, adds antithetic
pairs, which we do not). One annotation is drawn per image and step, as that code's LIDC batches
(PHiSeg-code data/batch_provider.py `_select_random_label`).
"""

import math
from typing import Dict, Tuple

import torch

from utils.loss.elbo import pixel_nll


class SSNLoss:
    """Monte-Carlo negative log-likelihood of SSN.

    Args:
        ignore_void: leave void pixels (annotation 0 equal to 0) out of the likelihood.
    """

    def __init__(self, ignore_void: bool = False):
        self.ignore_void = ignore_void

    def __call__(self, out: Dict[str, torch.Tensor], labels: torch.Tensor,
                 label_probs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Compute the loss from a training-mode forward.

        Args:
            out: `SSN` output with `logits` (B, S, C, H, W) samples and `target` (B, H, W).
            labels: (B, M, H, W) int annotations.
            label_probs: (B, M); unused (the model drew the annotation with them).

        Returns:
            (loss, seg, kl) scalars: seg = loss = the NLL; kl = 0 (no latent prior).
        """
        if "target" not in out:
            raise ValueError("SSNLoss needs a training-mode SSN output (model.train() and labels "
                             "passed to the forward)")
        log_lik = -pixel_nll(out["logits"], out["target"], labels, self.ignore_void)  # (B, S)
        S = log_lik.shape[1]
        nll = -(torch.logsumexp(log_lik, dim=1) - math.log(S)).mean()
        return nll, nll, torch.zeros_like(nll)
