"""Every command recorded in a result file reruns as written: each is `python -m` a script of
this repository whose own argument parser accepts its arguments, quoting kept; none names a
temporary path; none was made at a commit with local changes."""

import importlib
import shlex
from typing import List

import pytest

from benchmarks.make_index import RESULTS, provenance_of, result_files

RECORDS = [(path.name, record) for path in result_files(RESULTS)
           for record in provenance_of(path) if record.get("commit")]


def commands(line: str) -> List[List[str]]:
    """The commands of a recorded line (several are joined by ';'), each split as a shell
    would split it."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";")
    lexer.whitespace_split = True
    out: List[List[str]] = [[]]
    for token in lexer:
        if token == ";":
            out.append([])
        else:
            out[-1].append(token)
    return [c for c in out if c]


def test_split_keeps_quoting():
    line = "python -m benchmarks.bench_learning --rows full 'paper, paper schedule'; python -m x"
    assert commands(line) == [["python", "-m", "benchmarks.bench_learning", "--rows", "full",
                               "paper, paper schedule"], ["python", "-m", "x"]]


def test_there_are_records_to_check():
    assert len(RECORDS) >= 10


@pytest.mark.parametrize("name,record", RECORDS, ids=[n for n, _ in RECORDS])
def test_recorded_command_parses_with_its_script(name, record):
    line = record["command"]
    assert "/tmp/" not in line and "/work/" not in line, f"{name}: a temporary path: {line}"
    assert not record.get("dirty"), f"{name}: made at {record['commit'][:7]} with local changes"
    for argv in commands(line):
        if argv[0] == "bash":
            assert (RESULTS.parents[1] / argv[1]).is_file(), f"{name}: no script {argv[1]}"
            continue
        assert argv[:2] == ["python", "-m"], f"{name}: not run as a module: {shlex.join(argv)}"
        assert argv[2].split(".")[0] in ("benchmarks", "research"), argv[2]
        script = importlib.import_module(argv[2])
        try:
            script.parse_args(argv[3:])
        except SystemExit as stop:
            pytest.fail(f"{name}: {argv[2]} rejects {shlex.join(argv[3:])} ({stop})")
