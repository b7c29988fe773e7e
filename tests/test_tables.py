"""The documentation's result tables (benchmarks/make_tables.py): every one is current, lives
on one page, and no page copies another's table; a table of measured figures is generated."""

import re
from pathlib import Path

from benchmarks import make_tables
from benchmarks.make_tables import BLOCK, ROOT, TABLES, blocks

FIGURE = re.compile(r"\d+\.\d+ \(\d+\.\d+–\d+\.\d+\)")  # 'mean (min–max)'


def markdown_pages():
    """Every markdown page of the repository but the result files' own renderings."""
    skip = ("benchmarks/results/", "log/", "synthetic_data/")
    return [p for p in sorted(ROOT.rglob("*.md"))
            if not str(p.relative_to(ROOT)).startswith(skip)
            and not any(part.startswith(".") or part == "site-packages"  # caches, environments
                        for part in p.relative_to(ROOT).parts)]


def table_rows(text: str):
    return [line.strip() for line in text.splitlines() if line.strip().startswith("|")]


def test_every_table_is_current():
    assert make_tables.main(["--check"]) == 0, "run python -m benchmarks.make_tables"


def test_every_table_lives_on_its_one_page():
    found = {}
    for page in markdown_pages():
        for name in blocks(page.read_text()):
            found.setdefault(name, []).append(str(page.relative_to(ROOT)))
    assert set(found) == set(TABLES), "generated tables without a renderer, or missing"
    for name, pages in found.items():
        assert pages == [TABLES[name].page], f"table {name} on {pages}"


def test_no_page_copies_another_pages_table_rows():
    seen = {}
    for page in markdown_pages():
        for row in table_rows(page.read_text()):
            if re.search(r"\d", row) and not re.fullmatch(r"[|\-: ]+", row):
                seen.setdefault(row, set()).add(str(page.relative_to(ROOT)))
    copied = {row: pages for row, pages in seen.items() if len(pages) > 1}
    assert not copied, f"table rows on several pages: {copied}"


def test_tables_of_measured_figures_are_generated():
    for page in markdown_pages():
        by_hand = BLOCK.sub("", page.read_text())
        rows = [r for r in table_rows(by_hand) if FIGURE.search(r)]
        assert not rows, f"{page.relative_to(ROOT)}: a hand-written table of figures: {rows[0]}"


def test_a_block_is_rewritten_from_its_renderer(monkeypatch):
    monkeypatch.setitem(TABLES, "t", make_tables.Table("x.md", lambda: "| a | 1 |"))
    text = "before\n<!-- table t: generated -->\nold\n<!-- end t -->\nafter\n"
    assert make_tables.render_page(text) == ("before\n<!-- table t: generated -->\n| a | 1 |\n"
                                             "<!-- end t -->\nafter\n")
    assert isinstance(ROOT, Path)
