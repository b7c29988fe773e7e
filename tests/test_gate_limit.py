"""The account in docs/extensions.md of where the mode-mass error comes from rests on
`research/gate_limit.py`: check its error, its per-image optimum and its true cues."""

import numpy as np
import torch

from data.synthetic import make_lidc
from research.gate_limit import (
    expert_roles,
    mass_error,
    optimal_gate_error,
    oracle_target,
    true_cues,
)


def _stats(n=20, K=4, T=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    assign = torch.rand(n, K, T, generator=g, dtype=torch.float64)
    assign = assign / assign.sum(-1, keepdim=True)  # (n, K, T): every expert's samples split
    valid = torch.ones(n, T, dtype=torch.bool)
    valid[::3, -1] = False  # some images have one mode fewer
    return dict(assign=assign, valid=valid)


def test_the_optimum_reaches_zero_where_the_truth_is_reachable_and_beats_any_gate():
    st = _stats()
    pi_star = torch.softmax(torch.randn(20, 4, dtype=torch.float64), 1)  # (n, K)
    reachable = dict(st, true=torch.einsum("bk,bkt->bt", pi_star, st["assign"]),
                     valid=torch.ones_like(st["valid"]))
    assert mass_error(pi_star, reachable) < 1e-12
    assert optimal_gate_error(reachable) < 1e-9
    st["true"] = torch.softmax(torch.randn(20, 3, dtype=torch.float64), 1) * st["valid"]
    st["true"] = st["true"] / st["true"].sum(-1, keepdim=True)  # (n, T) not reachable
    best = optimal_gate_error(st)
    assert best > 1e-3
    for seed in range(5):  # any weights do no better than the per-image optimum
        g = torch.Generator().manual_seed(seed)
        pi = torch.softmax(3 * torch.randn(20, 4, generator=g, dtype=torch.float64), 1)
        assert best <= mass_error(pi, st) + 1e-9


def test_mass_error_is_the_mean_absolute_gap_over_valid_modes():
    st = dict(assign=torch.eye(2, dtype=torch.float64)[None].repeat(2, 1, 1),  # expert k -> mode k
              true=torch.tensor([[0.7, 0.3], [1.0, 0.0]], dtype=torch.float64),
              valid=torch.tensor([[True, True], [True, False]]))
    pi = torch.tensor([[0.5, 0.5], [0.8, 0.2]], dtype=torch.float64)
    assert np.isclose(mass_error(pi, st), np.mean([(0.2 + 0.2) / 2, 0.2]))


def test_true_cues_are_the_generator_s_parameters(tmp_path):
    make_lidc(str(tmp_path), n_train=6, n_val=2, n_test=5, size=16, seed=3,
              satellite_with_halo=False)
    cues = true_cues(tmp_path, "test", 5)  # (n, 5) c, h, q, halo drawn, satellite drawn
    assert cues.shape == (5, 5)
    probs = [np.load(tmp_path / f"test/mode_probs/{i}.npy") for i in range(5)]
    for row, p in zip(cues.numpy(), probs):
        c, h, q, has_h, has_q = row
        assert len(p) == 2 + int(has_h) + int(has_q) and not (has_h and has_q)
        w = [1.5 * (1 - c) ** 2, 1.0] + ([2 * h] if has_h else []) + ([1.5 * q] if has_q else [])
        np.testing.assert_allclose(p, np.array(w) / sum(w), rtol=1e-5)


def test_the_oracle_target_reproduces_the_true_masses_when_every_expert_draws_one_mode():
    g = torch.Generator().manual_seed(1)
    roles = torch.tensor([[0, 1, 2, 1], [0, 2, 2, 1], [1, 0, 2, 2]])  # (n, K): one mode each
    assign = torch.nn.functional.one_hot(roles, 3).double()  # (n, K, T) pure experts
    true = torch.softmax(torch.randn(3, 3, generator=g, dtype=torch.float64), 1)  # (n, T)
    st = dict(assign=assign, true=true, valid=torch.ones(3, 3, dtype=torch.bool))
    target = oracle_target(st)  # (n, K)
    torch.testing.assert_close(target.sum(1), torch.ones(3))
    assert mass_error(target, st) < 1e-6
    # two experts on one mode share its mass equally
    torch.testing.assert_close(target[0, 1], target[0, 3])
    torch.testing.assert_close(target[0, 1] + target[0, 3], true[0, 1].float())


def test_expert_roles_separate_role_changes_across_images_from_mixing_within_an_image():
    n = 4
    assign = torch.zeros(n, 3, 3, dtype=torch.float64)  # (n, K, T)
    assign[:, 0, 0] = 1.0  # expert 0: always mode 0
    assign[:2, 1, 1], assign[2:, 1, 2] = 1.0, 1.0  # expert 1: mode 1 or mode 2 by image
    assign[:, 2, 2], assign[:, 2, 1] = 0.75, 0.25  # expert 2: mixed within every image
    st = dict(assign=assign, valid=torch.ones(n, 3, dtype=torch.bool))
    roles = expert_roles(st)
    assert roles[0] == dict(role=0, share=1.0, purity=1.0)
    assert roles[1]["share"] == 0.5 and roles[1]["purity"] == 1.0
    assert roles[2] == dict(role=2, share=0.75, purity=0.75)
