"""The `fastest` switch: the rule that picks bf16 autocast and the compiled head per machine, the
command-line flag, the log line, and that the config is left alone when the switch is off."""

import logging
from pathlib import Path

import pytest

import main
from utils.config.config import ConfigError, load_config
from utils.runtime.fastest import Machine, apply_fastest, choose, detect

ROOT = Path(__file__).resolve().parents[1]
PAPER_DEMO = str(ROOT / "experiments" / "synthetic_lidc_paper.py")


@pytest.mark.parametrize("bf16_units, compiler, avx512, amp, compile_head", [
    (True, "g++", True, True, True),
    (True, None, True, True, False),
    (False, "g++", True, False, True),
    (False, "g++", False, False, False),  # AVX2 only: the compiled head is slower there
    (False, None, False, False, False),
])
def test_cpu_rule(bf16_units, compiler, avx512, amp, compile_head):
    choice = choose("cpu", bf16_units, compiler, triton=False, hardware="AVX2", avx512=avx512)
    assert (choice.amp, choice.compile_head) == (amp, compile_head)
    assert ("this CPU has bf16 units" in choice.reason) == bf16_units
    assert ("C++ compiler g++ found" in choice.reason) == compile_head


def test_cpu_reason_reads_as_one_line():
    choice = choose("cpu", False, "g++", False, "AVX2")
    assert choice.reason == ("bf16 autocast off (this CPU has no bf16 units: AVX2), "
                             "compiled head off (slower than eager on a CPU without AVX-512)")


@pytest.mark.parametrize("bf16_units, triton, amp, compile_head", [
    (True, True, True, True),
    (True, False, True, False),
    (False, True, False, True),
    (False, False, False, False),
])
def test_cuda_rule(bf16_units, triton, amp, compile_head):
    # on a GPU the compiled kernels are triton's: a C++ compiler alone does not turn them on
    choice = choose("cuda", bf16_units, "g++", triton, hardware="NVIDIA H200")
    assert (choice.amp, choice.compile_head) == (amp, compile_head)
    assert ("supports bf16" in choice.reason) == bf16_units
    assert ("triton found" in choice.reason) == triton


def test_detect_reads_this_machine():
    machine = detect("cpu")
    assert isinstance(machine, Machine) and machine.device_type == "cpu"
    assert isinstance(machine.bf16_units, bool) and isinstance(machine.triton, bool)
    assert machine.compiler is None or isinstance(machine.compiler, str)
    assert isinstance(machine.avx512, bool)


def test_the_flag_sets_the_setting():
    args = main.parse_args([PAPER_DEMO, "--fastest"])
    assert main.load_run_config(args).fastest is True
    assert main.load_run_config(main.parse_args([PAPER_DEMO])).fastest is False


@pytest.mark.parametrize("given", ["amp=True", "compile_head=False"])
def test_explicit_amp_or_compile_head_with_fastest_is_an_error(given):
    with pytest.raises(ConfigError, match="fastest=True"):
        load_config(PAPER_DEMO, ["fastest=True", given])


def test_applying_the_switch_sets_the_config_and_logs_one_line(monkeypatch, caplog):
    cfg = load_config(PAPER_DEMO, ["fastest=True"])
    machine = Machine("cpu", False, "g++", False, "AVX512", avx512=True)
    monkeypatch.setattr("utils.runtime.fastest.detect", lambda device: machine)
    with caplog.at_level(logging.INFO, logger="mose"):
        choice = apply_fastest(cfg, "cpu")
    assert (cfg.amp, cfg.compile_head) == (False, True) == (choice.amp, choice.compile_head)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("fastest:")]
    assert lines == ["fastest: " + choice.reason]


def test_applying_the_switch_on_this_machine_logs_what_detect_finds(caplog):
    cfg = load_config(PAPER_DEMO, ["fastest=True"])
    with caplog.at_level(logging.INFO, logger="mose"):
        choice = apply_fastest(cfg, "cpu")
    assert choice == choose(*detect("cpu"))
    assert sum(r.getMessage().startswith("fastest: ") for r in caplog.records) == 1


@pytest.mark.parametrize("overrides", [[], ["amp=True", "compile_head=True"]])
def test_switch_off_leaves_the_config_as_set(overrides, caplog):
    cfg = load_config(PAPER_DEMO, overrides)
    before = (cfg.amp, cfg.compile_head)
    with caplog.at_level(logging.INFO, logger="mose"):
        assert apply_fastest(cfg, "cpu") is None
    assert (cfg.amp, cfg.compile_head) == before
    assert not any("fastest" in r.getMessage() for r in caplog.records)
