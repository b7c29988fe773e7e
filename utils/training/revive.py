"""Re-seeding dead experts (the `revive_experts` option; off in the paper configs).

With capacity γ = 1 the coupling sends every annotation to its nearest sample, a hard assignment
like k-means: an expert that is never the nearest sample of any annotation gets no gradient on
its masks and a KL target of zero, so it stays unused for the rest of the run (a dead cluster).
On the synthetic LIDC set this is how the rare "satellite" mode is lost (docs/extensions.md):
its annotations are absorbed by the sharp core expert and the fourth expert dies.

The remedy is the one of k-means and LBG vector quantisation: after an epoch, an expert whose
share of the coupled mass fell below `threshold` takes the latent prior of the live expert with
the largest coupled cost (the one whose annotations it fits worst), with its mean moved by one
prior standard deviation in a random direction. The two copies then draw nearly the same masks;
annotations that the donor fitted badly (e.g. core + satellite where it draws the core) go to
whichever copy is nearer, and the nearest-sample coupling makes that difference grow: the
cluster splits. The gating network is left as it is: the KL term raises the revived expert's
weight as soon as it wins annotations. On the synthetic LIDC demo the split happens with
`coupling='exact'` (which the demo uses), not with the greedy rule, under which the copy stayed a
second core (docs/extensions.md).
"""

from typing import Any, Dict, List, Optional

import torch

from utils.runtime.distributed import average_across_ranks


class ExpertUsage:
    """Per-expert coupled mass and cost, summed over the steps of an epoch.

    `OTLoss` leaves `last_expert_mass` and `last_expert_cost` ((K,) sums over the batch of
    P·1 and of (P ∘ cost)·1 per expert) after every call; `update` adds them up.
    """

    def __init__(self) -> None:
        self.mass: Optional[torch.Tensor] = None  # (K,)
        self.cost: Optional[torch.Tensor] = None  # (K,)

    def update(self, loss_fn: Any) -> None:
        """Add the statistics of the loss' last call (no-op for losses without them)."""
        mass = getattr(loss_fn, "last_expert_mass", None)
        if mass is None:
            return
        cost = loss_fn.last_expert_cost
        self.mass = mass if self.mass is None else self.mass + mass
        self.cost = cost if self.cost is None else self.cost + cost

    def shares(self) -> Dict[str, torch.Tensor]:
        """Every expert's share of the coupled mass and its part of the mean coupled cost
        (Σ P∘cost of its samples over the total mass), CPU float64, averaged over DDP ranks."""
        both = average_across_ranks(torch.stack([self.mass, self.cost]).double())  # (2, K)
        mass, cost = both.cpu()
        total = mass.sum().clamp_min(1e-12)
        return dict(share=mass / total, cost=cost / total)


def revive_dead_experts(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        usage: ExpertUsage, threshold: float,
                        generator: Optional[torch.Generator] = None) -> List[str]:
    """Give every dead expert the prior of a live one, slightly moved (module docstring).

    Args:
        model: MoSE (unwrapped), with `mu` and `log_sigma` (K, L).
        optimizer: its optimiser; the Adam moments of a revived row are copied from the donor.
        usage: the epoch's coupled mass and cost per expert.
        threshold: an expert whose share of the coupled mass is below it is dead.
        generator: CPU generator for the random direction (the same on every rank).

    Returns:
        Log lines: the shares and costs of all experts, then one per revived expert (none
        when nothing was recorded).
    """
    if usage.mass is None:
        return []
    stats = usage.shares()
    share, cost = stats["share"], stats["cost"]
    lines = ["coupled mass share per expert " + " ".join(f"{v:.3f}" for v in share)
             + ", coupled cost " + " ".join(f"{v:.4f}" for v in cost)]
    dead = [int(k) for k in torch.nonzero(share < threshold).flatten()]
    live = [k for k in range(len(share)) if k not in dead]
    donors = sorted(live, key=lambda k: -float(cost[k]))  # worst-fitting live expert first
    for d, donor in zip(dead, donors):  # each donor is split at most once per epoch
        with torch.no_grad():
            sigma = torch.exp(model.log_sigma[donor]).detach().cpu()  # (L,)
            step = sigma * torch.randn(sigma.shape, generator=generator, dtype=sigma.dtype)
            model.mu[d] = model.mu[donor] + step.to(model.mu)
            model.log_sigma[d] = model.log_sigma[donor]
        for param in (model.mu, model.log_sigma):
            for moment in optimizer.state.get(param, {}).values():
                if torch.is_tensor(moment) and moment.shape == param.shape:
                    moment[d] = moment[donor]
        lines.append(f"expert {d} (coupled mass {share[d]:.4f}) re-seeded from expert {donor} "
                     f"(mass {share[donor]:.3f}, coupled cost {cost[donor]:.4f})")
    return lines
