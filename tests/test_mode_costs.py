"""docs/extensions.md's answer to "why is the satellite missed" rests on
`research/mode_costs.py`: check its objective and the ordering it reports."""

from research.mode_costs import mode_costs


def test_true_modes_are_optimal_without_jitter_and_lose_to_two_core_sizes_with_it():
    clean, noisy = mode_costs([0.0, 0.75], n=150)
    assert clean["true_modes"] == 0.0  # every annotation is one of the modes
    assert clean["core_two_sizes"] > 0.005
    # at the generator's default jitter the loss prefers a small and a large core to the satellite
    assert noisy["core_two_sizes"] < noisy["true_modes"] - 0.01


def test_with_outline_wobble_instead_of_jitter_the_true_modes_are_optimal_again():
    (row,) = mode_costs([0.0], n=150, wobble=0.4)
    assert row["wobble"] == 0.4 and row["true_modes"] > 0.03  # the annotations are noisy
    assert row["true_modes"] < row["core_two_sizes"] - 0.003
    assert row["true_modes"] < row["extended_two_sizes"] - 0.003


def test_on_the_demo_set_the_spare_fourth_expert_goes_to_the_core():
    # halo and satellite exclusive: at most three modes, so a fourth mask is free; the loss
    # spends it on a second core size (core_two_sizes still draws every true mode)
    (row,) = mode_costs([0.0], n=150, wobble=0.6, satellite_with_halo=False)
    assert row["exclusive"] is True and row["true_modes"] > 0.05
    assert row["core_two_sizes"] < row["true_modes"] - 0.001
    (both,) = mode_costs([0.0], n=150, wobble=0.6)  # halo and satellite together: no spare
    assert both["true_modes"] < both["core_two_sizes"] - 0.003
