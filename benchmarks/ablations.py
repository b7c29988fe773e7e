"""The ablation rows of `bench_learning.py --ablation NAME`: what each row trains and evaluates.

A row either trains (`config` plus `settings`, passed as `--set` items) or re-evaluates the
checkpoint of a training row (`from_row`) with other evaluation settings (`eval_settings`), which
costs seconds instead of a training run: the gate refit keeps the weights it started from
(`<name>_best_ged_before_refit.pth`), so "without the refit" is the same run's checkpoint
before it, and the gate's flip averaging (`gate_tta`) is an evaluation setting.

LIDC (`lidc`), on the synthetic LIDC demo's data and model:
- the paper's method with the paper's schedule (Adam 1e-3 on a plateau rule, γ 1/16 until
  epoch 6 and 1 from epoch 7, as the authors' code was run on this data), then with the demo's
  schedule (lr 3e-3 cosine, γ 1/16 -> 1/8 -> 1);
- each extension added in turn, in the order the demo's recipe stacks them;
- the full recipe (`synthetic_lidc`), and the full recipe with each extension removed alone.
Cityscapes (`cityscapes`): the long synthetic Cityscapes config with its one extension (the
exact coupling) and with the authors' greedy rule.
"""

from typing import Any, Dict, List

PAPER_SCHEDULE = ["lr=0.001", "lr_schedule='plateau'",
                  "gamma_scheduler_options={'values': [1.0], 'milestones': [6]}"]
REVIVE = "revive_experts={'threshold': 0.03, 'epochs': [3, 14]}"

LIDC: Dict[str, Dict[str, Any]] = {
    "paper, paper schedule": dict(config="synthetic_lidc_paper", settings=PAPER_SCHEDULE),
    "paper": dict(config="synthetic_lidc_paper"),
    "+ expert coupling": dict(config="synthetic_lidc_paper", settings=["coupling='expert'"]),
    "+ re-seeding": dict(config="synthetic_lidc_paper", settings=["coupling='expert'", REVIVE]),
    "+ image gate": dict(from_row="full", checkpoint="before_refit",
                         eval_settings=["gate_tta=False"]),
    "+ gate refit": dict(from_row="full", checkpoint="best", eval_settings=["gate_tta=False"]),
    "full": dict(config="synthetic_lidc"),
    "full - expert coupling": dict(config="synthetic_lidc", settings=["coupling='greedy'"]),
    "full - re-seeding": dict(config="synthetic_lidc", settings=["revive_experts=None"]),
    "full - image gate": dict(config="synthetic_lidc",
                              settings=["gate_input='bottleneck'", "gate_tta=False"]),
    "full - gate refit": dict(from_row="full", checkpoint="before_refit", eval_settings=[]),
    "full - flip averaging": dict(from_row="full", checkpoint="best",
                                  eval_settings=["gate_tta=False"]),
}

CITYSCAPES: Dict[str, Dict[str, Any]] = {
    "exact coupling": dict(config="synthetic_cityscapes_long"),
    "greedy coupling": dict(config="synthetic_cityscapes_long", settings=["coupling='greedy'"]),
}

ABLATIONS = {"lidc": LIDC, "cityscapes": CITYSCAPES}


def run_name(row: str) -> str:
    """A file-system name for a row: 'full - gate refit' -> 'full_minus_gate_refit'."""
    name = row.replace(" - ", " minus ").replace("+ ", "plus ").replace(",", "")
    return "_".join(name.split())


def training_rows(rows: Dict[str, Dict[str, Any]]) -> List[str]:
    """The rows that train, in table order."""
    return [r for r, spec in rows.items() if "from_row" not in spec]
