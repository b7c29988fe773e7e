"""Couplings between predicted samples and annotations (computed without gradient).

- `greedy_coupling`: the reference's capacity-relaxed greedy rule (Eq. 6 of the paper with
  sample capacity γ), vectorised over batch and samples, looping over annotations only.
- `nearest_coupling`: γ = 1, every annotation goes to its lowest-cost sample.
- `exact_coupling`: the optimum of the same capacity-constrained transport, via POT.
- `expert_coupling`: γ = 1 at the level of experts (an option, not the authors' method).
"""

import numpy as np
import ot
import torch


def nearest_coupling(cost: torch.Tensor, gt_weights: torch.Tensor) -> torch.Tensor:
    """Each annotation sends all its mass v_j to its lowest-cost sample (ties: lowest index).

    Args:
        cost: (B, N, M) cost.
        gt_weights: (B, M) annotation weights v.

    Returns:
        (B, N, M) coupling.
    """
    nearest = cost.argmin(dim=1, keepdim=True)  # (B, 1, M)
    P = torch.zeros_like(cost)
    return P.scatter_(1, nearest, gt_weights[:, None, :].to(cost.dtype))  # (B, N, M)


def greedy_coupling(cost: torch.Tensor, gt_weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """The reference greedy coupling with sample capacity γ.

    Every annotation carries mass 1/M. Annotations are visited in increasing order of their
    minimum cost; each fills the samples in increasing cost, at most up to γ per sample, until
    its mass is placed. Columns are finally scaled by v_j·M (so with non-uniform v a row sum can
    exceed γ, as in the reference).

    Args:
        cost: (B, N, M) cost.
        gt_weights: (B, M) annotation weights v.
        gamma: sample capacity γ.

    Returns:
        (B, N, M) coupling, dtype of `cost`.
    """
    B, N, M = cost.shape
    c = cost.detach().double()
    real = gt_weights.detach().double() > 0  # (B, M); zero-weight (padding) annotations
    M_real = real.sum(1, keepdim=True).clamp_min(1)  # (B, 1) place no mass
    mass = real / M_real  # (B, M): 1/M for every annotation of a fully weighted image
    order = torch.sort(c.min(dim=1).values, dim=1, stable=True).indices  # (B, M)
    P = torch.zeros_like(c)  # (B, N, M)
    row = torch.zeros(B, N, dtype=c.dtype, device=c.device)  # (B, N)
    for t in range(M):
        j = order[:, t]  # (B,)
        col = c.gather(2, j[:, None, None].expand(B, N, 1))[..., 0]  # (B, N)
        idx = torch.sort(col, dim=1, stable=True).indices  # (B, N)
        cap = (gamma - row).clamp_min(0).gather(1, idx)  # (B, N), in visiting order
        placed_before = cap.cumsum(1) - cap  # (B, N)
        need = mass.gather(1, j[:, None])  # (B, 1)
        put = (need - placed_before).clamp_min(0).minimum(cap)  # (B, N)
        put = torch.zeros_like(put).scatter_(1, idx, put)  # (B, N), back in sample order
        P.scatter_(2, j[:, None, None].expand(B, N, 1), put[..., None])
        row += put
    P = P * (gt_weights.double() * M_real)[:, None, :]  # (B, N, M)
    return P.to(cost.dtype)


def exact_coupling(cost: torch.Tensor, gt_weights: torch.Tensor, gamma: float) -> torch.Tensor:
    """Optimal transport with sample capacity γ (row mass <= γ) and column mass v_j.

    Solved per image with `ot.emd` on the cost extended by a zero-cost dummy annotation that
    absorbs the spare capacity N·γ − Σ v.

    Args:
        cost: (B, N, M) cost.
        gt_weights: (B, M) annotation weights v (each row summing to one).
        gamma: sample capacity γ.

    Returns:
        (B, N, M) coupling.

    Raises:
        ValueError: if N·γ < Σ v (the annotations' mass cannot be placed). A shortfall of up to
            one millionth of Σ v is rounding (γ = 0.08333333 for 1/12 with N = 12): the
            capacity is then raised to Σ v / N.
    """
    B, N, M = cost.shape
    c = cost.detach().double().cpu().numpy()
    v = gt_weights.detach().double().cpu().numpy()
    out = np.zeros_like(c)
    for b in range(B):
        total = v[b].sum()
        spare = N * gamma - total
        if spare < -1e-6 * total:
            raise ValueError(
                f"exact coupling is infeasible: N·γ = {N * gamma:.9g} < total annotation mass "
                f"{total:.9g}; raise gamma or the number of samples."
            )
        a = np.full(N, max(gamma, total / N))
        col = np.append(v[b], max(spare, 0.0))
        ext = np.concatenate([c[b], np.zeros((N, 1))], axis=1)  # (N, M + 1)
        out[b] = ot.emd(a, col, ext)[:, :M]
    return torch.from_numpy(out).to(device=cost.device, dtype=cost.dtype)


def expert_coupling(cost: torch.Tensor, gt_weights: torch.Tensor, K: int) -> torch.Tensor:
    """γ = 1 coupling at the level of experts (the `coupling='expert'` option; not the authors').

    Every annotation goes to the expert whose S samples are nearest on average (ties: lowest
    index); within that expert, the annotations it won are shared among its S samples by exact
    transport with equal sample mass (their total / S). So every sample of an expert is pulled
    towards annotations of the expert's own role, and the expert's mass (the gate's target) is
    the mass of the annotations it won, as with the nearest-sample rule.

    Args:
        cost: (B, N, M) cost, N = K·S expert-major.
        gt_weights: (B, M) annotation weights v.
        K: number of experts.

    Returns:
        (B, N, M) coupling.
    """
    B, N, M = cost.shape
    S = N // K
    c = cost.detach().double().cpu()
    v = gt_weights.detach().double().cpu()
    owner = c.view(B, K, S, M).mean(2).argmin(1)  # (B, M) expert of every annotation
    won = torch.zeros(B, K, dtype=c.dtype).scatter_add_(1, owner, v)  # (B, K)
    row_mass = (won / S).repeat_interleave(S, dim=1).numpy()  # (B, N)
    other = (torch.arange(N) // S)[None, :, None] != owner[:, None, :]  # (B, N, M)
    # a cost no plan pays when the blocks balance: each expert's rows hold its columns' mass
    blocked = c.masked_fill(other, 1.0 + 2.0 * float(c.abs().max()) * M).numpy()
    v = v.numpy()
    out = np.zeros((B, N, M))
    for b in range(B):
        out[b] = ot.emd(row_mass[b], v[b], blocked[b])
    return torch.from_numpy(out).to(device=cost.device, dtype=cost.dtype)
