"""The documentation holds together: relative links resolve (files and section anchors), no
placeholder is left, and the words of a lab notebook stay out of what users read."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *ROOT.glob("docs/*.md"),
                *(p for p in ROOT.glob("*/README.md") if not p.parent.name.startswith(".")),
                ROOT / "benchmarks" / "results" / "README.md"])  # not caches such as .pytest_cache
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} +(.+?) *#*$", re.MULTILINE)
CODE_BLOCK = re.compile(r"```.*?```", re.DOTALL)

# Phrases that narrate the project's history instead of describing the present. The repository
# describes what the code does now; git log keeps how it got there.
HISTORY = re.compile("|".join([
    r"\b(this|last|previous|earlier|next) round\b", r"\bissue \d+", r"\bthe issue'?s?\b",
    r"\b(previous|earlier|old) recipe\b", r"\bwe tried\b", r"\b(last|this|previous) session\b",
    r"\bno longer\b", r"\bused to be\b", r"\bbefore this change\b",
]), re.IGNORECASE)
USER_TEXT = [*PAGES, ROOT / "env" / "requirements.txt", ROOT / "env" / "environment.yml",
             ROOT / "main.py", ROOT / "mose.py",
             *(p for d in ("models", "data", "utils", "experiments", "benchmarks", "research",
                           "tests") for p in sorted((ROOT / d).rglob("*.py")))]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set:
    return {slug(h) for h in HEADING.findall(CODE_BLOCK.sub("", page.read_text()))}


def test_slug_follows_githubs_rule():
    assert slug("How this differs from the paper and from the authors' code") == \
        "how-this-differs-from-the-paper-and-from-the-authors-code"
    assert slug("Empty masks: 'zero' and 'skip'") == "empty-masks-zero-and-skip"
    assert slug("`coupling='expert'` rule") == "couplingexpert-rule"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(CODE_BLOCK.sub("", page.read_text())):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked offline
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no such section)")
    assert not broken, f"{page.name}: broken links {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_placeholder_is_left(page):
    assert not re.search(r"⟨[A-Z_]+⟩|\bTODO\b|\bTBD\b", page.read_text())


def test_readme_is_short_with_the_status_first():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    assert any(line.startswith("## Status") for line in lines[:30])


def test_no_history_words_in_what_users_read():
    hits = []
    for path in USER_TEXT:
        if path == Path(__file__) or not path.is_file():
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if HISTORY.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not hits, "history belongs in git log:\n" + "\n".join(hits)
