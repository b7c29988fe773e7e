"""The Wasserstein-like OT loss of MoSE: coupling-weighted segmentation cost plus a KL term.

loss = Σ_{n,m} P_nm · cost(s_n, y_m) + β · KL(P·1_M ‖ u)   (paper Eq. 6–8)

P is computed without gradient; the segmentation term trains the samples, the KL term trains
the sample weights u (the gating network) towards the mass the coupling gives each sample.
"""

from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.labels import hard_labels
from utils.loss.ot_cost import COSTS, iou_cost
from utils.loss.ot_coupling import (
    exact_coupling,
    expert_coupling,
    greedy_coupling,
    nearest_coupling,
)

COUPLINGS = ("greedy", "exact", "expert")


def kl_term(sample_mass: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """KL(target ‖ weights) exactly as `F.kl_div(log(u + 1e-8), target, reduction='mean')`.

    reference behaviour: the 'mean' reduction divides by every entry (B·N), which is part of
    what β means in the paper configs.

    Args:
        sample_mass: (B, N) coupling mass per sample (the target, no gradient).
        weights: (B, N) sample weights u.
    """
    target = sample_mass.detach()
    log_u = torch.log(weights + 1e-8)  # (B, N)
    # F.kl_div's pointwise term, written out: its 'mean' reduction is deprecated in favour of
    # 'batchmean', which would silently change the scale.
    return (torch.xlogy(target, target) - target * log_u).mean()


@torch.no_grad()
def expert_groups(pred: torch.Tensor, sample_shape: Tuple[int, int], G: float) -> torch.Tensor:
    """Merge experts whose hard samples look alike (soft-gradient grouping, Cityscapes).

    Args:
        pred: (B, N, C, H, W) probabilities or logits, N = K·S expert-major.
        sample_shape: (K, S).
        G: similarity threshold; expert pairs with mean soft IoU above G are merged.

    Returns:
        (B, K) int64 group index of every expert.
    """
    B, N, C, H, W = pred.shape
    K, S = sample_shape
    hard = hard_labels(pred)  # (B, N, H, W)
    one_hot = F.one_hot(hard, C).permute(0, 1, 4, 2, 3).to(pred.dtype)  # (B, N, C, H, W)
    sim = 1 - iou_cost(one_hot, hard)  # (B, N, N)
    sim = sim.reshape(B, K, S, K, S).mean(dim=(2, 4)).cpu().numpy()  # (B, K, K)
    group = np.tile(np.arange(K), (B, 1))  # (B, K)
    for k1 in range(K):
        for k2 in range(k1 + 1, K):
            merge = sim[:, k1, k2] > G  # (B,)
            group[merge, k2] = group[merge, k1]
    return torch.from_numpy(group).to(pred.device)


def grouped_kl(sample_mass: torch.Tensor, weights: torch.Tensor, groups: torch.Tensor,
               sample_shape: Tuple[int, int]) -> torch.Tensor:
    """KL over expert groups: u and the coupling mass are summed within each group first.

    Args:
        sample_mass: (B, N) coupling mass per sample.
        weights: (B, N) sample weights u.
        groups: (B, K) group index per expert.
        sample_shape: (K, S).
    """
    B = weights.shape[0]
    K, S = sample_shape
    u = weights.reshape(B, K, S).sum(-1)  # (B, K)
    p = sample_mass.reshape(B, K, S).sum(-1)  # (B, K)
    u_g = torch.zeros_like(u).scatter_add(1, groups, u)  # (B, K), empty groups stay 0
    p_g = torch.zeros_like(p).scatter_add(1, groups, p)  # (B, K)
    return kl_term(p_g, u_g)


class OTLoss(nn.Module):
    """Wasserstein-like loss between weighted samples and weighted annotations.

    Args:
        cost_fn: 'iou' (inputs are probabilities) or 'ce' (inputs are logits).
        beta: weight β of the KL term.
        gamma0: initial sample capacity γ (a plain attribute `gamma` the scheduler changes).
        G0: initial grouping threshold (attribute `G`); grouping is active when G < 1.
        num_chunks: annotation chunks for the pairwise cost.
        coupling: 'greedy' (the reference), 'exact' (POT optimum of the same constraints) or
            'expert' ('exact' below γ = 1; at γ >= 1 annotations are matched to experts, not
            samples: `ot_coupling.expert_coupling`).
    """

    def __init__(self, cost_fn: str = "iou", beta: float = 1.0, gamma0: float = 0.5,
                 G0: float = 1.0, num_chunks: int = 1, coupling: str = "greedy"):
        super().__init__()
        if cost_fn not in COSTS:
            raise ValueError(f"cost_fn must be one of {sorted(COSTS)}, got {cost_fn!r}")
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
        if num_chunks < 1:
            raise ValueError(f"num_chunks must be >= 1, got {num_chunks}")
        self.cost_fn = cost_fn
        self.beta = beta
        self.gamma = gamma0
        self.G = G0
        self.num_chunks = num_chunks
        self.coupling_method = coupling
        self.last_expert_mass: Optional[torch.Tensor] = None  # (K,) Σ P·1 per expert, last call
        self.last_expert_cost: Optional[torch.Tensor] = None  # (K,) Σ (P∘cost)·1 per expert

    def cost_matrix(self, pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """Pairwise cost. Args: pred (B, N, C, H, W), gt (B, M, H, W). Returns: (B, N, M)."""
        return COSTS[self.cost_fn](pred, gt, self.num_chunks)

    @torch.no_grad()
    def coupling(self, cost: torch.Tensor, gt_weights: torch.Tensor,
                 sample_shape: Optional[Sequence[int]] = None) -> torch.Tensor:
        """Coupling for the current γ.

        Args:
            cost: (B, N, M); gt_weights: (B, M).
            sample_shape: (K, S), needed by coupling='expert' at γ >= 1.
        """
        if self.coupling_method == "expert" and self.gamma >= 1:
            if sample_shape is None:
                raise ValueError("coupling='expert' needs sample_shape=(K, S) at γ >= 1")
            return expert_coupling(cost, gt_weights, sample_shape[0])
        if self.coupling_method in ("exact", "expert"):
            return exact_coupling(cost, gt_weights, self.gamma)
        if self.gamma >= 1:
            return nearest_coupling(cost, gt_weights)
        return greedy_coupling(cost, gt_weights, self.gamma)

    def forward(self, gt: torch.Tensor, pred: torch.Tensor, weights: torch.Tensor,
                gt_weights: torch.Tensor, sample_shape: Optional[Sequence[int]] = None
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Compute the loss.

        Args:
            gt: (B, M, H, W) int annotations.
            pred: (B, N, C, H, W) probabilities ('iou') or logits ('ce').
            weights: (B, N) sample weights u.
            gt_weights: (B, M) annotation weights v.
            sample_shape: (K, S) with N = K·S, needed for grouping when G < 1.

        Returns:
            (loss, seg_loss, kl_loss) scalars; loss = seg_loss + β·kl_loss.
        """
        cost = self.cost_matrix(pred, gt)  # (B, N, M)
        P = self.coupling(cost, gt_weights.to(cost.dtype), sample_shape)  # (B, N, M)
        sample_cost = (P * cost).sum(-1)  # (B, N)
        seg_loss = sample_cost.sum(-1).mean()
        sample_mass = P.sum(-1)  # (B, N)
        if sample_shape is not None:  # per-expert usage, read by utils.training.revive
            B, K = P.shape[0], sample_shape[0]
            self.last_expert_mass = sample_mass.detach().view(B, K, -1).sum(dim=(0, 2))  # (K,)
            self.last_expert_cost = sample_cost.detach().view(B, K, -1).sum(dim=(0, 2))  # (K,)
        if self.G < 1:
            if sample_shape is None:
                raise ValueError("sample_shape=(K, S) is required when G < 1 (grouping)")
            K, S = sample_shape
            groups = expert_groups(pred, (K, S), self.G)  # (B, K)
            kl_loss = grouped_kl(sample_mass, weights, groups, (K, S))
        else:
            kl_loss = kl_term(sample_mass, weights)
        return seg_loss + self.beta * kl_loss, seg_loss, kl_loss
