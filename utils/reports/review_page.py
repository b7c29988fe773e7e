"""The review page `index.html` of a prediction or evaluation run: one card per image.

A self-contained file that works opened from disk without a network: inline CSS and
JavaScript (`review_assets`), no external URL, images by relative path and loaded lazily. The
per-image values travel as one inline JSON blob (column names once, then one array per image)
and the script renders one page of `PAGE_SIZE` cards at a time, so the document stays small for
any number of images. The rows are written in the default order (most ambiguous first: mean
mutual information, highest first; ties by name); the page re-orders them by any other key,
filters them by image id and keeps its state in the address (#sort=ged&dir=desc&q=12&page=3).

A card is a dict with `id`, `stem`, `strip` (relative path of the card's image strip, or None),
`th`, `tw` (tile size), `mi`, `h` (mean mutual information and total entropy, nats), `hpi`
(entropy of π, nats; None for the baselines), `ged`, `miou` (evaluation runs, else None),
`modes` ([index, weight, 1 if its segmentation is empty else 0] of the modes shown, in strip
order), `nmodes` (how many the model has)
and `annots` (annotation probabilities, evaluation runs).
"""

import html
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from data.folder import natural_key
from utils.reports.review_assets import CSS, SCRIPT, magma_gradient
from utils.reports.review_tiles import publish

FIELDS = ("id", "stem", "strip", "th", "tw", "mi", "h", "hpi", "ged", "miou", "modes", "nmodes",
          "annots")
# key -> (name, direction the page starts with: -1 highest first, 1 lowest first)
SORTS = {"mi": ("mutual information", -1), "hpi": ("entropy of π", -1), "h": ("total entropy", -1),
         "ged": ("GED", -1), "miou": ("M-IoU", 1), "name": ("name", 1)}
DEFAULT_SORT = "mi"
PAGE_SIZE = 50
FIXED_TILES = ("input", "mean prediction", "total H[mean]", "mutual information")


def stored(value: Optional[float]) -> Optional[float]:
    """A value as the page stores it: 6 decimals; None for a missing or undefined (NaN) one."""
    if value is None or not math.isfinite(float(value)):
        return None
    return round(float(value), 6)


def sort_key(card: Dict[str, Any], key: str) -> Tuple:
    """Order of `card` under sort `key` in its starting direction: defined values first, then
    by value, then by name (natural order)."""
    if key == "name":
        return (0, 0.0, natural_key(card["id"]))
    value = card[key]
    if value is None:
        return (1, 0.0, natural_key(card["id"]))
    return (0, SORTS[key][1] * value, natural_key(card["id"]))


def ordered(cards: Sequence[Dict[str, Any]], key: str = DEFAULT_SORT) -> List[Dict[str, Any]]:
    """The cards in the page's starting order for sort `key` (`sort_key`).

    Args:
        cards: card dicts (module docstring) with stored values.
        key: one of SORTS.

    Returns:
        A new sorted list.
    """
    if key not in SORTS:
        raise ValueError(f"sort key {key!r}: one of {', '.join(SORTS)}")
    return sorted(cards, key=lambda card: sort_key(card, key))


def available_sorts(cards: Sequence[Dict[str, Any]]) -> List[str]:
    """The sort keys with a value on at least one card (name always)."""
    return [k for k in SORTS if k == "name" or any(c[k] is not None for c in cards)]


def page_data(cards: Sequence[Dict[str, Any]], mode_label: str,
              links: Sequence[Tuple[str, str]]) -> Dict[str, Any]:
    """The inline JSON of the page: fields once, one row per card in the default order.

    Args:
        cards: card dicts (module docstring).
        mode_label: 'expert' (MoSE: captions show π) or 'sample' (baselines: weights).
        links: (label, path template with `{stem}`) of each card's files.

    Returns:
        A JSON-serialisable dict.
    """
    rows = [[card[f] for f in FIELDS] for card in ordered(cards, DEFAULT_SORT)]
    sorts = [[k, SORTS[k][0], SORTS[k][1]] for k in available_sorts(cards)]
    return dict(fields=FIELDS, rows=rows, sorts=sorts, default_sort=DEFAULT_SORT,
                page_size=PAGE_SIZE, mode_label=mode_label, links=[list(x) for x in links],
                tiles=FIXED_TILES)


def _inline_json(data: Dict[str, Any]) -> str:
    """JSON safe inside a <script> element ('</' and '<!--' cannot end or open anything)."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\u0021--")


def _facts_html(facts: Sequence[Tuple[str, str]]) -> str:
    return "".join(f"<div><dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd></div>"
                   for k, v in facts)


def _files_html(out_dir: Path, files: Sequence[Tuple[str, str]]) -> str:
    """Links to the run's files that exist (relative paths)."""
    items = [f'<a href="{html.escape(path)}">{html.escape(label)}</a>'
             for label, path in files if (out_dir / path).exists()]
    return " · ".join(items)


def header_html(out_dir: Path, header: Dict[str, Any], num_classes: int) -> str:
    """The summary header: title, facts (config, checkpoint, counts, metrics, date), file
    links, the resolved config and the colour scale of the uncertainty tiles."""
    config = json.dumps(header.get("config", {}), indent=1, sort_keys=True, default=str)
    scale = math.log(num_classes)
    return (f'<header id="summary"><h1>{html.escape(header["title"])}</h1>'
            f'<dl class="facts">{_facts_html(header["facts"])}</dl>'
            f'<p class="files">{_files_html(out_dir, header.get("files", []))}</p>'
            f'<p class="legend">uncertainty tiles: <span class="ramp" style="background:'
            f'{magma_gradient()}"></span> 0 to ln C = {scale:.3f} nats</p>'
            f"<details><summary>resolved config</summary><pre>{html.escape(config)}</pre>"
            f"</details></header>")


def render_page(out_dir: Path, header: Dict[str, Any], data: Dict[str, Any],
                num_classes: int) -> str:
    """The whole HTML document (module docstring)."""
    name, direction = SORTS[DEFAULT_SORT]
    first = "highest first" if direction < 0 else "lowest first"
    csv_name = header.get("csv", "the CSV file")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(header['title'])}</title><style>{CSS}</style></head><body>"
        f"{header_html(out_dir, header, num_classes)}"
        '<nav id="controls"><label>sort <select id="sort"></select></label>'
        '<button id="dir" type="button"></button>'
        '<label>tiles <select id="zoom"></select></label>'
        '<input id="search" type="search" placeholder="image id" aria-label="search image id">'
        '<span id="count"></span><span class="pager"></span></nav>'
        f'<p id="sort-claim" data-sort="{DEFAULT_SORT}" data-direction="{direction}">'
        f"sorted by {name}, {first}</p>"
        '<main id="cards"></main><nav class="pager bottom"></nav>'
        f"<noscript>The cards are drawn by JavaScript; every value is in "
        f"{html.escape(csv_name)}.</noscript>"
        f'<script type="application/json" id="review-data">{_inline_json(data)}</script>'
        f"<script>{SCRIPT}</script></body></html>\n")


def write_review_page(out_dir: Path, header: Dict[str, Any], cards: Sequence[Dict[str, Any]],
                      num_classes: int, mode_label: str,
                      links: Sequence[Tuple[str, str]] = ()) -> Path:
    """Write `out_dir/index.html` (atomically).

    Args:
        out_dir: the run's output folder; every path in the page is relative to it.
        header: `title`, `facts` [(label, text)], `files` [(label, relative path)], `config`
            (dict), `csv` (the per-image CSV's name).
        cards: one card dict per image (module docstring).
        num_classes: C (the uncertainty tiles' scale is [0, ln C]).
        mode_label: 'expert' or 'sample'.
        links: (label, path template with `{stem}`) of each card's files.

    Returns:
        The page's path.
    """
    out_dir = Path(out_dir)
    data = page_data(cards, mode_label, links)
    text = render_page(out_dir, header, data, num_classes)
    path = out_dir / "index.html"
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".html", dir=out_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    publish(tmp, path)
    return path
