"""Write the documentation's result tables from the result files: each table has one home page.

    python -m benchmarks.make_tables            # rewrite every generated table in its page
    python -m benchmarks.make_tables --check    # exit 1 if a page is not up to date

A generated table sits on its page between `<!-- table NAME ... -->` and `<!-- end NAME -->`;
everything between the two lines is rewritten from the result files `TABLES` names, so a figure
is edited in its result file (by re-running its command), never on a page. Other pages link to
the table's home; `tests/test_tables.py` checks that every table is current, lives on one page,
and that no page repeats another's figures (the README's summary aside, which links to them).
The renderers are in `benchmarks/tables.py`.
"""

import argparse
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from benchmarks import tables

ROOT = Path(__file__).resolve().parents[1]


class Table(NamedTuple):
    """A generated table: the page it lives on and the function that writes it."""

    page: str
    render: Callable[[], str]


TABLES: Dict[str, Table] = {
    "summary": Table("README.md", tables.summary),
    "authors_lidc": Table("docs/results.md", tables.authors_lidc),
    "cityscapes": Table("docs/results.md", tables.cityscapes),
    "ablation_lidc": Table("docs/extensions.md", tables.ablation_lidc),
    "extensions_by_machine": Table("docs/extensions.md", tables.extensions_by_machine),
    "ablation_cityscapes": Table("docs/extensions.md", tables.ablation_cityscapes),
    "comparison_long": Table("docs/comparison.md", tables.comparison_long),
    "comparison_short": Table("docs/comparison.md", tables.comparison_short),
    "comparison_tuning": Table("docs/comparison.md", tables.comparison_tuning),
    "convergence": Table("docs/comparison.md", tables.convergence),
    "speed_authors": Table("docs/performance.md", tables.speed_authors),
    "speed_reference": Table("docs/performance.md", tables.speed_reference),
}

BLOCK = re.compile(r"(<!-- table (?P<name>[\w-]+)[^\n]*-->\n)(?P<body>.*?)(<!-- end (?P=name) -->)",
                   re.S)


def blocks(text: str) -> List[str]:
    """The names of the generated tables of a page, in order."""
    return [m.group("name") for m in BLOCK.finditer(text)]


def render_page(text: str, only: Optional[Sequence[str]] = None) -> str:
    """The page with every generated table (or those of `only`) written anew."""
    def fill(m: re.Match) -> str:
        name = m.group("name")
        if name not in TABLES:
            raise KeyError(f"unknown generated table {name!r}; the tables: {sorted(TABLES)}")
        if only is not None and name not in only:
            return m.group(0)
        return f"{m.group(1)}{TABLES[name].render().strip()}\n{m.group(4)}"

    return BLOCK.sub(fill, text)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true",
                   help="exit 1 if a page is not up to date, write nothing")
    p.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(TABLES),
                   help="write these tables only")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    stale = []
    chosen = args.only or list(TABLES)
    for page in sorted({ROOT / TABLES[n].page for n in chosen}):
        text = page.read_text()
        missing = [n for n in chosen if ROOT / TABLES[n].page == page and n not in blocks(text)]
        if missing:
            raise SystemExit(f"{page.relative_to(ROOT)} has no block for {missing}: add "
                             f"'<!-- table NAME -->' and '<!-- end NAME -->' lines")
        new = render_page(text, chosen)
        if new != text:
            stale.append(str(page.relative_to(ROOT)))
            if not args.check:
                page.write_text(new)
    if args.check and stale:
        print(f"out of date: {', '.join(stale)}; run python -m benchmarks.make_tables",
              file=sys.stderr)
        return 1
    print("up to date" if not stale else "rewrote " + ", ".join(stale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
