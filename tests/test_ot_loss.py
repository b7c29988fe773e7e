"""OT loss: costs against brute force, couplings against the plain reference rule and an LP."""

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import linprog

from utils.loss.ot_cost import ce_cost, iou_cost
from utils.loss.ot_coupling import (
    exact_coupling,
    expert_coupling,
    greedy_coupling,
    nearest_coupling,
)
from utils.loss.ot_loss import OTLoss, expert_groups, kl_term


def loop_greedy(cost: np.ndarray, v: np.ndarray, gamma: float) -> np.ndarray:
    """The reference greedy rule, one image, written as plain loops (docs/design.md, 'Coupling')."""
    N, M = cost.shape
    P = np.zeros((N, M))
    row = np.zeros(N)
    for j in np.argsort(cost.min(0), kind="stable"):
        remaining = 1.0 / M
        for n in np.argsort(cost[:, j], kind="stable"):
            if remaining <= 0:
                break
            if row[n] < gamma:
                put = min(gamma - row[n], remaining)
                P[n, j] += put
                row[n] += put
                remaining -= put
    return P * (v * M)[None, :]


def lp_coupling(cost: np.ndarray, v: np.ndarray, gamma: float) -> float:
    """Optimal cost of min <P, cost> s.t. row sums <= gamma, column sums = v, P >= 0."""
    N, M = cost.shape
    a_ub = np.kron(np.eye(N), np.ones((1, M)))  # row sums
    a_eq = np.kron(np.ones((1, N)), np.eye(M))  # column sums
    res = linprog(cost.ravel(), A_ub=a_ub, b_ub=np.full(N, gamma), A_eq=a_eq, b_eq=v,
                  bounds=(0, None), method="highs")
    assert res.success
    return res.fun


def random_case(seed, B=3, N=8, M=4, ties=True, uniform=False):
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(B, N, M, generator=g, dtype=torch.float64)
    if ties:
        cost = (cost * 4).round() / 4  # many equal costs
    v = torch.full((B, M), 1.0 / M, dtype=torch.float64) if uniform else torch.softmax(
        torch.randn(B, M, generator=g, dtype=torch.float64), dim=1)
    return cost, v


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("gamma", [1 / 8, 1 / 4, 0.3, 0.5, 1.0])
def test_greedy_equals_the_plain_loop_reference(seed, gamma):
    cost, v = random_case(seed, ties=seed % 2 == 0, N=6 if seed < 3 else 10)
    P = greedy_coupling(cost, v, gamma)
    for b in range(cost.shape[0]):
        np.testing.assert_allclose(P[b].numpy(), loop_greedy(cost[b].numpy(), v[b].numpy(), gamma),
                                   atol=1e-12)


def test_gamma_one_sends_each_annotation_to_its_nearest_sample():
    cost, v = random_case(0)
    P = OTLoss(gamma0=1.0).coupling(cost, v)
    nearest = cost.argmin(1)  # (B, M)
    for b in range(3):
        for j in range(4):
            assert P[b, nearest[b, j], j] == v[b, j]
    torch.testing.assert_close(P.sum(1), v)
    torch.testing.assert_close(nearest_coupling(cost, v), greedy_coupling(cost, v, 1.0))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("gamma", [1 / 8, 0.25, 0.5])
def test_exact_coupling_is_feasible_optimal_and_never_worse_than_greedy(seed, gamma):
    cost, v = random_case(seed, ties=False, uniform=seed % 2 == 0)
    P = exact_coupling(cost, v, gamma)
    torch.testing.assert_close(P.sum(1), v, atol=1e-9, rtol=0)  # every annotation placed
    assert (P.sum(2) <= gamma + 1e-9).all() and (P >= 0).all()  # capacities
    for b in range(3):
        exact = float((P[b] * cost[b]).sum())
        assert exact == pytest.approx(lp_coupling(cost[b].numpy(), v[b].numpy(), gamma), abs=1e-9)
        if seed % 2 == 0:  # uniform v: the greedy plan is feasible for the same constraints
            greedy = float((greedy_coupling(cost[b:b + 1], v[b:b + 1], gamma) * cost[b]).sum())
            assert exact <= greedy + 1e-12


def test_exact_coupling_reports_infeasible_capacity():
    cost, v = random_case(0, N=3)
    with pytest.raises(ValueError, match="infeasible"):
        exact_coupling(cost, v, 0.2)


def test_exact_coupling_accepts_a_capacity_rounded_below_one_over_n():
    cost, v = random_case(0, N=12)
    P = exact_coupling(cost, v, 0.08333333)  # 1/12 typed to 8 digits: N·γ = 0.99999996
    torch.testing.assert_close(P.sum(1), v, atol=1e-9, rtol=0)
    assert (P.sum(2) <= 1 / 12 + 1e-9).all()


def lp_balanced(cost: np.ndarray, a: np.ndarray, v: np.ndarray) -> float:
    """Optimal cost of min <P, cost> s.t. row sums = a, column sums = v, P >= 0."""
    N, M = cost.shape
    a_eq = np.r_[np.kron(np.eye(N), np.ones((1, M))), np.kron(np.ones((1, N)), np.eye(M))]
    res = linprog(cost.ravel(), A_eq=a_eq, b_eq=np.r_[a, v], bounds=(0, None), method="highs")
    assert res.success
    return res.fun


@pytest.mark.parametrize("seed", range(4))
def test_expert_coupling_matches_annotations_to_experts_then_shares_them_optimally(seed):
    K, S = 3, 4
    cost, v = random_case(seed, N=K * S, M=5, ties=False, uniform=seed % 2 == 0)
    P = expert_coupling(cost, v, K)
    torch.testing.assert_close(P.sum(1), v, atol=1e-9, rtol=0)  # every annotation placed
    for b in range(cost.shape[0]):
        c = cost[b].view(K, S, -1)  # (K, S, M)
        owner = c.mean(1).argmin(0)  # (M,) brute force: nearest expert on average
        blocks = P[b].view(K, S, -1)  # (K, S, M)
        for k in range(K):
            mine = owner == k
            assert blocks[k][:, ~mine].abs().max() < 1e-12  # none to other experts' annotations
            won = float(v[b, mine].sum())
            torch.testing.assert_close(blocks[k].sum(1), torch.full((S,), won / S,
                                       dtype=P.dtype), atol=1e-9, rtol=0)  # equal sample mass
            if mine.any():  # the optimum within the expert
                inner = float((blocks[k][:, mine] * c[k][:, mine]).sum())
                best = lp_balanced(c[k][:, mine].numpy(), np.full(S, won / S), v[b, mine].numpy())
                assert inner == pytest.approx(best, abs=1e-9)


def test_expert_coupling_option_is_exact_below_gamma_one_and_needs_the_sample_shape():
    cost, v = random_case(1, N=8, ties=False)
    loss = OTLoss(gamma0=0.25, coupling="expert")
    torch.testing.assert_close(loss.coupling(cost, v), exact_coupling(cost, v, 0.25))
    loss.gamma = 1.0
    torch.testing.assert_close(loss.coupling(cost, v, (2, 4)), expert_coupling(cost, v, 2))
    with pytest.raises(ValueError, match="sample_shape"):
        loss.coupling(cost, v)


def test_iou_cost_matches_brute_force():
    g = torch.Generator().manual_seed(0)
    pred = torch.softmax(torch.randn(2, 3, 4, 5, 6, generator=g, dtype=torch.float64), dim=2)
    gt = torch.randint(0, 4, (2, 5, 5, 6), generator=g)
    cost = iou_cost(pred, gt, num_chunks=2)
    for b in range(2):
        for n in range(3):
            for m in range(5):
                ious = []
                for c in range(1, 4):
                    p, y = pred[b, n, c], (gt[b, m] == c).double()
                    inter = (p * y).sum()
                    ious.append((inter + 1) / (p.sum() + y.sum() - inter + 1))
                assert cost[b, n, m].item() == pytest.approx(1 - float(np.mean(ious)), abs=1e-12)


@pytest.mark.parametrize("num_chunks", [1, 3, 16])
def test_ce_cost_matches_cross_entropy_without_the_first_pixel(num_chunks):
    g = torch.Generator().manual_seed(1)
    pred = torch.randn(2, 3, 4, 5, 6, generator=g, dtype=torch.float64)
    gt = torch.randint(0, 4, (2, 5, 5, 6), generator=g)
    cost = ce_cost(pred, gt, num_chunks=num_chunks)
    for b in range(2):
        for n in range(3):
            for m in range(5):
                ce = F.cross_entropy(pred[b, n][None], gt[b, m][None], reduction="none")
                assert cost[b, n, m].item() == pytest.approx(ce.flatten()[1:].mean().item(),
                                                             abs=1e-12)


def test_kl_term_equals_torch_kl_div_mean():
    g = torch.Generator().manual_seed(2)
    u = torch.softmax(torch.randn(3, 8, generator=g), 1)
    mass = torch.softmax(torch.randn(3, 8, generator=g), 1)
    mass[0, :3] = 0  # zero targets contribute nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = F.kl_div(torch.log(u + 1e-8), mass, reduction="mean")
    torch.testing.assert_close(kl_term(mass, u), ref)


def test_coupling_and_kl_target_carry_no_gradient():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 8, 2, 6, 6, generator=g, requires_grad=True)
    u = torch.softmax(torch.randn(2, 8, generator=g), 1).requires_grad_()
    gt = torch.randint(0, 2, (2, 4, 6, 6), generator=g)
    v = torch.full((2, 4), 0.25)
    loss_fn = OTLoss("iou", beta=1.0, gamma0=0.5)
    pred = torch.softmax(logits, 2)
    cost = loss_fn.cost_matrix(pred, gt)
    assert cost.requires_grad
    assert not loss_fn.coupling(cost, v).requires_grad
    _, seg, kl = loss_fn(gt, pred, u, v, (4, 2))
    # seg reaches u only through P (detached): no gradient; kl reaches pred only through P.
    assert torch.autograd.grad(seg, u, allow_unused=True)[0] is None
    assert torch.autograd.grad(kl, logits, allow_unused=True)[0] is None


def grouping_case(same: bool):
    """K = 3 experts, S = 2: expert 1 copies expert 0 when `same`; expert 2 is different."""
    base = torch.zeros(1, 3, 2, 3, 8, 8)  # (B, K, S, C, H, W)
    base[:, :, :, 0] = 1.0
    base[:, 0, :, 1, :4] = 5.0  # expert 0: class 1 on the top half
    base[:, 1, :, 2 if not same else 1, :4] = 5.0
    base[:, 2, :, 2, :, :3] = 5.0  # expert 2: class 2 on the left
    return base.reshape(1, 6, 3, 8, 8)


def test_grouping_merges_identical_experts_only():
    assert expert_groups(grouping_case(same=True), (3, 2), 0.9).tolist() == [[0, 0, 2]]
    assert expert_groups(grouping_case(same=False), (3, 2), 0.9).tolist() == [[0, 1, 2]]


def test_grouped_kl_sums_weights_within_groups():
    pred = grouping_case(same=True)
    gt = pred.argmax(2)[:, :4]  # (1, 4, 8, 8) annotations
    u = torch.tensor([[0.1, 0.1, 0.2, 0.2, 0.25, 0.15]])
    v = torch.full((1, 4), 0.25)
    loss_fn = OTLoss("ce", beta=1.0, gamma0=1.0, G0=0.9)
    _, _, kl = loss_fn(gt, pred, u, v, (3, 2))
    P = loss_fn.coupling(loss_fn.cost_matrix(pred, gt), v).sum(-1)  # (1, 6)
    u_g = torch.tensor([[0.6, 0.0, 0.4]])
    p_g = torch.stack([P[:, :4].sum(1), torch.zeros(1), P[:, 4:].sum(1)], dim=1)
    torch.testing.assert_close(kl, kl_term(p_g, u_g))
