"""The bookkeeping of benchmarks/bench_learning.py and benchmarks/ablations.py: run names, the
ablation rows, the summary over seeds and the ablation table; the runs are faked, nothing is
trained."""

from pathlib import Path

import pytest

import benchmarks.bench_learning as bl
from benchmarks.ablations import ABLATIONS, run_name, training_rows

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def test_run_names_are_file_names():
    assert run_name("full - gate refit") == "full_minus_gate_refit"
    assert run_name("+ expert coupling") == "plus_expert_coupling"
    assert run_name("paper, paper schedule") == "paper_paper_schedule"
    for rows in ABLATIONS.values():
        names = [run_name(r) for r in rows]
        assert len(set(names)) == len(names)
        assert all(n.replace("_", "").replace("-", "").isalnum() for n in names)


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_every_row_trains_a_shipped_config_or_evaluates_a_training_row(name):
    rows = ABLATIONS[name]
    trained = training_rows(rows)
    assert trained, name
    for row, spec in rows.items():
        if "from_row" in spec:
            assert spec["from_row"] in trained, row
            assert spec["checkpoint"] in ("best", "before_refit"), row
        else:
            assert (EXPERIMENTS / f"{spec['config']}.py").is_file(), row
            assert all("=" in s for s in spec.get("settings", [])), row


def test_summarise_gives_mean_and_range_of_figures_every_seed_has():
    runs = [dict(seed=0, ged=1.0, ece=None, flips={"car": dict(true=0.3, predicted=0.2)}),
            dict(seed=1, ged=3.0, ece=0.5, flips={"car": dict(true=0.3, predicted=0.4)})]
    summary = bl.summarise(runs)
    assert summary["ged"] == dict(mean=2.0, min=1.0, max=3.0)
    assert summary["flip car predicted"] == pytest.approx(dict(mean=0.3, min=0.2, max=0.4))
    assert "ece" not in summary  # missing on one seed: no mean over the others
    assert "seed" not in summary


def fake_results(runs_by_row):
    """bench_learning's results object for rows -> list of per-seed runs."""
    return {"configs": {row: dict(seeds=list(range(len(runs))), runs=runs,
                                  summary=bl.summarise(runs))
                        for row, runs in runs_by_row.items()}}


def test_lidc_table_has_the_ratio_the_mode_masses_and_the_truth():
    def run(ratio, core):
        types = {t: dict(true=0.5, predicted=core if t == "core" else 0.5, num_images=10)
                 for t in bl.MODE_TYPES}
        return dict(ged=0.3, ged_ratio=ratio, miou=0.6, ece=0.005, mode_mass_error=0.05,
                    mode_tv=0.1, mode_types=types)

    table = bl.ablation_table(fake_results({"paper": [run(1.2, 0.4), run(1.0, 0.6)],
                                            "full": [run(1.05, 0.5), run(1.05, 0.5)]}))
    lines = table.splitlines()
    assert lines[0].startswith("| Row | GED ratio | mode-mass error | M-IoU | ECE % | nothing mass")
    assert lines[0].rstrip().endswith("| mode TV |")
    assert lines[2].startswith("| true distribution |  |  |  |  | 0.500 |")
    assert lines[3].startswith("| paper | 1.100 (1.000–1.200) |")
    assert "| 0.500 (0.400–0.600) |" in lines[3]  # the core mass
    assert "| 0.500 (0.500–0.500) |" in lines[3]  # ECE in percent
    assert lines[4].startswith("| full | 1.050 (1.050–1.050) |")


def test_cityscapes_table_shows_the_ged_and_the_flips_where_no_ratio_is_stored():
    def run(ged, car):
        flips = {c: dict(true=0.35, predicted=car if c == "car" else 0.3) for c in bl.FLIP_NAMES}
        return dict(ged=ged, true_ged=0.0, ged_ratio=None, miou=0.8, ece=0.002,
                    mode_mass_error=0.01, mode_tv=0.17, flips=flips)

    table = bl.ablation_table(fake_results({"exact coupling": [run(0.08, 0.35), run(0.1, 0.33)],
                                            "greedy coupling": [run(0.2, 0.1), run(0.3, 0.2)]}))
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["Row", "GED", "mode-mass error", "M-IoU", "ECE %", "sidewalk flip",
                      "person flip", "car flip", "vegetation flip", "road flip", "mode TV"]
    assert "| 0.350 |" in lines[2]  # the true car flip frequency
    assert lines[3].startswith("| exact coupling | 0.090 (0.080–0.100) |")
    assert "| 0.150 (0.100–0.200) |" in lines[4]  # the greedy rule's car flip
