"""Write the index of `benchmarks/results/`: one row per result file, generated, never edited.

    python -m benchmarks.make_index            # writes benchmarks/results/README.md
    python -m benchmarks.make_index --check    # exit 1 if the index is not up to date

Each row gives the file, what it measures, the command that wrote it, its headline figure, and
the commit and date it was written at. Those come from the provenance the benchmark stored in
the file (`benchmarks/provenance.py`): the `provenance` field of a JSON result, or a line of a
text result that holds `provenance: {...}` or `{"provenance": {...}}`; a markdown table without
one takes that of its JSON companion (same name, or `results.json` beside it). A file without
provenance shows "not recorded", one measured outside the repository (its record has no commit
and a `source`) "outside". What a file measures and its headline come from `CATALOG`
(`benchmarks/results_catalog.py`, by file name pattern); a file no pattern matches is described
by the first docstring line of the script its recorded command runs.
"""

import argparse
import ast
import fnmatch
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.results_catalog import CATALOG

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
INDEX = "README.md"
NOT_RECORDED = "not recorded"
OUTSIDE = "outside"


# --- provenance -----------------------------------------------------------------------------

def _records_in_text(text: str) -> List[Dict[str, Any]]:
    """Every provenance record held by a line of a text result, in file order."""
    records = []
    for line in text.splitlines():
        at = line.find("provenance")
        start = line.find("{", at)
        if at < 0 or start < 0:
            continue
        try:
            value, _ = json.JSONDecoder().raw_decode(line, start)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("provenance"), dict):
            value = value["provenance"]
        if isinstance(value, dict) and "commit" in value:
            records.append(value)
    return records


def load(path: Path) -> Any:
    """A result file's content: parsed JSON, a list of JSON lines, or text."""
    text = path.read_text()
    if path.suffix == ".json":
        return json.loads(text)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return text


def companion(path: Path) -> Optional[Path]:
    """The JSON a markdown table renders: same name, else `results.json` beside it."""
    if path.suffix != ".md":
        return None
    return next((c for c in (path.with_suffix(".json"), path.parent / "results.json")
                 if c.is_file()), None)


def provenance_of(path: Path) -> List[Dict[str, Any]]:
    """The provenance records of a result file (several where runs were appended), else its
    JSON companion's; [] where none is recorded."""
    if path.suffix == ".json":
        data = load(path)
        found = [data["provenance"]] if isinstance(data, dict) and "provenance" in data else []
    else:
        found = _records_in_text(path.read_text())
    twin = companion(path)
    return provenance_of(twin) if not found and twin is not None else found


def script_summary(command: str) -> Optional[str]:
    """The first docstring paragraph of the repository script a command runs, if any
    (`python -m package.script` or a script's path)."""
    words = shlex.split(command)
    for before, word in zip(["", *words], words):
        path = ROOT / (word.replace(".", "/") + ".py" if before == "-m" else word)
        if path.suffix == ".py" and path.is_file():
            doc = ast.get_docstring(ast.parse(path.read_text()))
            return " ".join(doc.split("\n\n")[0].split()) if doc else None
    return None


# --- the index ------------------------------------------------------------------------------

def _command(data: Any, records: List[Dict[str, Any]], fallback: Any) -> str:
    """The recorded command(s): the provenance's, else the file's own `command` field, else
    the catalog's (rebuilt from the options the file records, or the script alone)."""
    commands = list(dict.fromkeys(r["command"] for r in records if r.get("command")))
    if not commands and isinstance(data, dict) and isinstance(data.get("command"), str):
        commands = [data["command"]]
    if not commands and callable(fallback):
        commands = [fallback(data)]
    if not commands:
        suffix = " (options not recorded)" if isinstance(fallback, str) else ""
        return f"{fallback}{suffix}" if fallback else NOT_RECORDED
    return "; ".join(c.strip() for c in commands)


def _when(records: List[Dict[str, Any]]) -> Tuple[str, str]:
    """(commit, date) cells: short hashes (marked where the working tree had local changes)
    and dates, each listed once."""
    if not records:
        return NOT_RECORDED, NOT_RECORDED
    commits = dict.fromkeys(f"{r['commit'][:7]}" + (" (local changes)" if r.get("dirty") else "")
                            if r.get("commit") else OUTSIDE if r.get("source") else NOT_RECORDED
                            for r in records)
    dates = dict.fromkeys(str(r["date"])[:10] if r.get("date") else NOT_RECORDED
                          for r in records)
    return ", ".join(commits), ", ".join(dates)


def describe(rel: str, path: Path) -> List[str]:
    """The index row of one result file: file, measures, command, headline, commit, date.

    Args:
        rel: its path relative to the results folder (posix).
        path: the file.
    Returns:
        The six cells.
    """
    records = provenance_of(path)
    data = load(path)
    twin = companion(path)
    source = load(twin) if twin is not None else data  # a table's command is its JSON's
    match = next((entry for entry in CATALOG if fnmatch.fnmatch(rel, entry[0])), None)
    if match is None and not records:
        raise ValueError(f"{rel}: no provenance recorded and no CATALOG pattern matches it; "
                         "add a row to CATALOG in benchmarks/make_index.py")
    if match is None:
        command = _command(source, records, None)
        what = (data["measures"] if isinstance(data, dict) and "measures" in data
                else script_summary(command) or "see the file")
        headline = "see the file"
    else:
        _, what, fallback, summarise = match
        what = data["measures"] if isinstance(data, dict) and "measures" in data else what
        command = _command(source, records, fallback)
        try:
            headline = summarise(data)
        except (KeyError, TypeError, ValueError, IndexError, StopIteration):
            headline = "see the file"  # a layout the catalog does not know
    return [f"[{rel}]({rel})", what, f"`{command}`", headline, *_when(records)]


def result_files(results: Path = RESULTS) -> List[Path]:
    """Every result file under `results` (not the index, not hidden files), sorted."""
    return sorted(p for p in results.rglob("*") if p.is_file() and p.name != INDEX
                  and not any(part.startswith(".") for part in p.relative_to(results).parts))


def index_text(results: Path = RESULTS) -> str:
    """The text of the index of a results folder.

    Args:
        results: the folder (default benchmarks/results).
    Returns:
        The markdown page.
    """
    head = ["# Benchmark results", "",
            "Generated by `python -m benchmarks.make_index` from the files in this folder; a test",
            "checks that it is up to date. Each row: what the file measures, the command that",
            "wrote it, its headline figure, and the commit and date recorded in the file",
            f"(\"{OUTSIDE}\": measured outside this repository, as the file says; a test",
            "checks that every other file records its commit, software, machine and command).",
            "The scripts are described in [../README.md](../README.md).", "",
            "| File | Measures | Command | Headline | Commit | Date |",
            "|---|---|---|---|---|---|"]
    rows = [describe(p.relative_to(results).as_posix(), p) for p in result_files(results)]
    body = ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(head + body) + "\n"


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the index is not up to date, write nothing")
    parser.add_argument("--results", default=str(RESULTS), help="the results folder")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    results = Path(args.results)
    text, index = index_text(results), results / INDEX
    if args.check:
        current = index.read_text() if index.is_file() else ""
        if current != text:
            print(f"{index} is out of date: run python -m benchmarks.make_index", file=sys.stderr)
            return 1
        return 0
    index.write_text(text)
    print(f"wrote {index} ({text.count(chr(10)) - 10} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
