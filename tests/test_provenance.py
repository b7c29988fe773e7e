"""benchmarks/provenance.py: the `dirty` flag says whether the code a result ran differs from
its commit; rewritten result files and figures do not count."""

import shutil
import subprocess

import pytest

import benchmarks.provenance as prov

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(repo, *args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path, monkeypatch):
    for rel in ("code.py", "benchmarks/results/r.json", "imgs/f.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("0\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-q", "-m", "c")
    monkeypatch.setattr(prov, "ROOT", tmp_path)
    return tmp_path


def test_a_clean_tree_is_not_dirty_and_the_commit_is_recorded(repo):
    record = prov.provenance("cmd")
    assert record["dirty"] is False and len(record["commit"]) == 40
    assert record["command"] == "cmd"


def test_rewritten_results_and_figures_leave_the_record_clean(repo):
    (repo / "benchmarks/results/r.json").write_text("1\n")
    (repo / "imgs/f.png").write_text("1\n")
    assert prov.provenance()["dirty"] is False


def test_a_changed_source_file_makes_it_dirty(repo):
    (repo / "code.py").write_text("1\n")
    assert prov.provenance()["dirty"] is True


def test_the_cpu_is_named_with_its_family_and_model_numbers(tmp_path):
    info = tmp_path / "cpuinfo"
    block = "processor\t: {}\ncpu family\t: 23\nmodel\t\t: 1\nmodel name\t: AMD EPYC\n"
    info.write_text(block.format(0) + "\n" + block.format(1).replace("23", "25"))
    assert prov.cpu_model(info) == "AMD EPYC (family 23, model 1)"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\n")
    assert prov.cpu_model(info) == "Some CPU"


def test_command_line_of_a_module_run_keeps_quoting(monkeypatch):
    import sys
    import types

    main = types.ModuleType("__main__")
    main.__spec__ = types.SimpleNamespace(name="benchmarks.bench_learning")
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(sys, "argv", ["/x/benchmarks/bench_learning.py", "--rows", "a, b", "c"])
    assert prov.command_line() == "python -m benchmarks.bench_learning --rows 'a, b' c"
    assert prov.command_line(["--out", "o"]) == "python -m benchmarks.bench_learning --out o"
