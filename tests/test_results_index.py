"""The index of benchmarks/results (benchmarks/make_index.py): up to date, one row per existing
file, and the provenance each row shows is the one recorded in the file."""

import json
import re

import pytest

from benchmarks.make_index import RESULTS, describe, index_text, main, provenance_of, result_files
from benchmarks.provenance import header_line

ROW = re.compile(r"^\| \[([^\]]+)\]\(([^)]+)\) \|", re.MULTILINE)
RECORD = dict(commit="0123456789abcdef0123", dirty=False, python="3.11.7", torch="2.0",
              date="2026-01-02T03:04:05+00:00", command="python -m benchmarks.bench_metrics -x")


def test_the_index_is_up_to_date():
    # after adding or replacing a result: python -m benchmarks.make_index
    assert (RESULTS / "README.md").read_text() == index_text()


def test_every_row_names_an_existing_file_and_every_file_has_one_row():
    rows = ROW.findall((RESULTS / "README.md").read_text())
    assert rows and all(name == link for name, link in rows)
    for name, _ in rows:
        assert (RESULTS / name).is_file(), name
    files = sorted(p.relative_to(RESULTS).as_posix() for p in RESULTS.rglob("*")
                   if p.is_file() and p.name != "README.md")
    assert [name for name, _ in rows] == files


def test_the_commit_and_date_come_from_the_recorded_provenance(tmp_path):
    (tmp_path / "metrics_cpu.json").write_text(json.dumps(dict(a_s=0.5, provenance=RECORD)))
    row = describe("metrics_cpu.json", tmp_path / "metrics_cpu.json")
    assert row == ["[metrics_cpu.json](metrics_cpu.json)",
                   "the metrics and the OT loss on fixed sizes: median seconds per call",
                   "`python -m benchmarks.bench_metrics -x`", "a 0.5 s", "0123456", "2026-01-02"]


def test_text_results_carry_their_provenance_in_a_line_and_tables_take_their_json(tmp_path):
    dirty = dict(RECORD, dirty=True, commit="fedcba9876543210", command="python -m research.x")
    rows = [{"jitter": 0.5, "true_modes": 0.2, "core_two_sizes": 0.1, "extended_two_sizes": 0.3}]
    text = "\n".join([json.dumps({"provenance": RECORD}), json.dumps(rows[0]),
                      json.dumps({"provenance": dirty})])
    (tmp_path / "mode_costs_x.jsonl").write_text(text + "\n")
    row = describe("mode_costs_x.jsonl", tmp_path / "mode_costs_x.jsonl")
    assert row[2] == "`python -m benchmarks.bench_metrics -x; python -m research.x`"
    assert row[3] == "lowest cost: jitter 0.5: core_two_sizes"
    assert row[4:] == ["0123456, fedcba9 (local changes)", "2026-01-02"]
    (tmp_path / "learning_y.json").write_text(json.dumps(dict(provenance=RECORD, configs={})))
    (tmp_path / "learning_y.md").write_text("| a | b |\n")
    assert describe("learning_y.md", tmp_path / "learning_y.md")[4] == "0123456"
    (tmp_path / "profile_z.md").write_text(header_line(dirty, "<!-- ") + "\n| a |\n")
    assert describe("profile_z.md", tmp_path / "profile_z.md")[4] == "fedcba9 (local changes)"


def test_a_file_without_provenance_is_marked_not_recorded(tmp_path):
    (tmp_path / "head_layout_cpu.json").write_text(json.dumps(
        {"threads": 2, "experiments/synthetic_lidc.py": {"speedup": 1.5}}))
    row = describe("head_layout_cpu.json", tmp_path / "head_layout_cpu.json")
    assert row[2] == "`python -m research.head_layout --threads 2`"
    assert row[3] == "synthetic_lidc ×1.5 (maps over rows)"
    assert row[4:] == ["not recorded", "not recorded"]


def test_a_file_may_describe_itself_and_a_record_may_lack_commit_and_date(tmp_path):
    record = dict(commit=None, command="measured elsewhere")
    (tmp_path / "other.json").write_text(json.dumps(dict(measures="what it is", provenance=record)))
    row = describe("other.json", tmp_path / "other.json")
    assert row[1:3] == ["what it is", "`measured elsewhere`"]
    assert row[4:] == ["not recorded", "not recorded"]
    record["source"] = "measured outside this repository"
    (tmp_path / "other.json").write_text(json.dumps(dict(measures="what it is", provenance=record)))
    assert describe("other.json", tmp_path / "other.json")[4:] == ["outside", "not recorded"]


def test_an_unknown_file_is_described_by_its_script_or_refused(tmp_path):
    (tmp_path / "new.json").write_text(json.dumps(dict(provenance=RECORD)))
    what = describe("new.json", tmp_path / "new.json")[1]
    assert what.startswith("Time the metrics and the OT loss")  # bench_metrics.py's docstring
    (tmp_path / "mystery.txt").write_text("42\n")
    with pytest.raises(ValueError, match="mystery.txt: no provenance recorded.*CATALOG"):
        describe("mystery.txt", tmp_path / "mystery.txt")


def test_check_fails_on_a_stale_index_and_passes_once_written(tmp_path, capsys):
    (tmp_path / "metrics_cpu.json").write_text(json.dumps(dict(a_s=0.5, provenance=RECORD)))
    assert main(["--check", "--results", str(tmp_path)]) == 1
    assert main(["--results", str(tmp_path)]) == 0
    assert main(["--check", "--results", str(tmp_path)]) == 0
    assert [p.name for p in result_files(tmp_path)] == ["metrics_cpu.json"]
    capsys.readouterr()


HEX40 = re.compile(r"^[0-9a-f]{40}$")


def test_every_stored_result_records_its_commit_software_machine_and_command():
    # a figure the project states comes from a file that says where it comes from; the one kind
    # of exception is a measurement made outside the repository, which must say so (`source`)
    for path in result_files():
        records = provenance_of(path)
        assert records, f"{path.name}: no provenance recorded"
        for r in records:
            assert r.get("command"), f"{path.name}: no command"
            if r.get("commit") is None:
                assert "outside this repository" in r.get("source", ""), path.name
                continue
            assert HEX40.match(r["commit"]), f"{path.name}: commit {r['commit']!r}"
            for key in ("python", "torch", "date"):
                assert r.get(key), f"{path.name}: no {key}"
            assert r.get("cpu") or r.get("gpu"), f"{path.name}: no machine"
