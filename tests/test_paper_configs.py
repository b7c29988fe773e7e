"""The paper's configs run exactly the paper's method: no extension of docs/extensions.md."""

from pathlib import Path

import pytest

from utils.config.config import load_config
from utils.config.defaults import DEFAULTS, EXTENSIONS

ROOT = Path(__file__).resolve().parents[1]
PAPER_CONFIGS = ["lidc_proposed", "lidc_proposed_1annot", "cityscapes_proposed",
                 "synthetic_lidc_paper"]


def test_the_extension_defaults_are_the_papers_method():
    assert DEFAULTS["coupling"] == "greedy"
    assert DEFAULTS["revive_experts"] is None
    assert DEFAULTS["gate_input"] == "bottleneck"
    assert DEFAULTS["gate_refit_steps"] == 0
    assert DEFAULTS["gate_tta"] is False


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_keep_every_extension_off(name):
    cfg = load_config(str(ROOT / "experiments" / f"{name}.py"))
    changed = {k: cfg[k] for k in EXTENSIONS if cfg[k] != DEFAULTS[k]}
    assert not changed, f"{name} turns on extensions that are not in the paper: {changed}"


def test_the_extended_demo_differs_from_the_paper_demo_only_by_extensions():
    paper = load_config(str(ROOT / "experiments" / "synthetic_lidc_paper.py"))
    full = load_config(str(ROOT / "experiments" / "synthetic_lidc.py"))
    differ = {k for k in DEFAULTS if paper[k] != full[k]} - {"experiment_name"}
    assert differ and differ <= set(EXTENSIONS), differ - set(EXTENSIONS)
