"""The review page `index.html` (utils/reports/review_page.py, review_cards.py), parsed with
the standard library's HTML parser: one card per image, the order the page states, no external
URL, every relative path on disk, each card's values equal to the run's own files.

Fabricated arrays check the prediction and baseline cards exactly; a fresh (untrained) tiny
model on the tiny folder dataset (tests/test_data_folder.py) runs `--demo test` and `--predict`
end to end. The page in a browser: benchmarks/bench_review_page.py (needs Chromium)."""

import csv
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import main
from tests.test_data_folder import write_tiny
from tests.test_predict import run_args
from utils.config.config import load_config
from utils.reports.review_cards import PredictionReview, make_card, mode_order
from utils.reports.review_page import ordered, write_review_page

URL_ATTRS = ("src", "href", "action", "data", "poster", "srcset", "formaction")


class PageParser(HTMLParser):
    """Every start tag with its attributes, and the text of every <script> element."""

    def __init__(self):
        super().__init__()
        self.tags, self.scripts, self._script = [], [], None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._script = [dict(attrs), ""]

    def handle_data(self, data):
        if self._script is not None:
            self._script[1] += data

    def handle_endtag(self, tag):
        if tag == "script" and self._script is not None:
            self.scripts.append(tuple(self._script))
            self._script = None


def parse_page(path: Path) -> dict:
    """The page's tags, its data rows as dicts, the stated sort and its raw text."""
    text = path.read_text(encoding="utf-8")
    parser = PageParser()
    parser.feed(text)
    blobs = [body for attrs, body in parser.scripts if attrs.get("id") == "review-data"]
    assert len(blobs) == 1
    data = json.loads(blobs[0])
    rows = [dict(zip(data["fields"], row)) for row in data["rows"]]
    claim = [attrs for tag, attrs in parser.tags if attrs.get("id") == "sort-claim"]
    assert len(claim) == 1
    return dict(text=text, tags=parser.tags, scripts=parser.scripts, data=data, rows=rows,
                claim=claim[0])


def natural(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def assert_stated_order(page: dict) -> None:
    """The rows are in the order the page states (value, highest first; ties by name)."""
    key, direction = page["claim"]["data-sort"], int(page["claim"]["data-direction"])
    assert (key, direction) == ("mi", -1)  # most ambiguous first
    values = [r[key] for r in page["rows"]]
    expected = sorted(page["rows"], key=lambda r: (r[key] is None, -(r[key] or 0),
                                                   natural(r["id"])))
    assert [r["id"] for r in page["rows"]] == [r["id"] for r in expected], values


def assert_self_contained(page: dict, folder: Path) -> None:
    """No external URL anywhere; every relative path of the page exists under `folder`."""
    assert not re.search(r"https?:|//[a-z0-9]|\bfetch\(|XMLHttpRequest|@import", page["text"])
    assert all(not attrs.get("src") for attrs, _ in page["scripts"])  # inline only
    assert not [tag for tag, _ in page["tags"] if tag in ("link", "iframe", "object", "embed")]
    for _, attrs in page["tags"]:
        for name in URL_ATTRS:
            if attrs.get(name):
                assert (folder / attrs[name]).exists(), attrs[name]
    for row in page["rows"]:
        if row["strip"]:
            assert (folder / row["strip"]).is_file(), row["strip"]
        for _, template in page["data"]["links"]:
            assert (folder / template.replace("{stem}", row["stem"])).is_file()


def fake_arrays(mi_level: float, rng: np.random.Generator, K: int = 3, H: int = 6,
                W: int = 8, experts: bool = True, N: int = 6) -> dict:
    """One image's `predict_batch` arrays (C = 2) whose mean mutual information is mi_level."""
    mean = rng.uniform(0.1, 0.9, (1, H, W)).astype(np.float32)
    arrays = dict(mean_prob=np.concatenate([1 - mean, mean]),
                  entropy_total=np.full((H, W), 0.6, np.float32),
                  entropy_expected=np.full((H, W), 0.6 - mi_level, np.float32),
                  mutual_information=np.full((H, W), mi_level, np.float32),
                  samples=rng.integers(0, 2, (N, H, W)).astype(np.uint8),
                  sample_weights=np.full(N, 1 / N, np.float32))
    arrays["mutual_information"][0, 0] = 0.0  # magma(0) at the first pixel of the MI tile
    arrays["mutual_information"][0, 1:] += mi_level / (W - 1)  # keeps the mean at mi_level
    if experts:
        pi = rng.dirichlet(np.ones(K)).astype(np.float32)
        modes = np.repeat(arrays["mean_prob"][None], K, 0)  # (K, 2, H, W)
        modes[0] = [[[1.0]], [[0.0]]]  # expert 0 segments nothing
        arrays.update(expert_probs=pi, expert_mean_prob=modes)
    return arrays


def fabricated_prediction(folder: Path, levels: dict, experts: bool = True) -> tuple:
    """A prediction page over fabricated arrays: {file name: mean MI} -> (page path, arrays)."""
    rng = np.random.default_rng(0)
    review, arrays = PredictionReview(folder, figures=True), {}
    for name, level in levels.items():
        arrays[name] = fake_arrays(level, rng, experts=experts, N=20 if not experts else 6)
        raw = rng.normal(size=(1, 6, 8)).astype(np.float32)
        review.add(f"in/{name}", Path(name).stem, raw, arrays[name])
        for suffix in (".png", ".npz"):  # the files the cards link (written by predict)
            (folder / f"{Path(name).stem}_prediction{suffix}").touch()
    cfg = load_config("experiments/synthetic_lidc.py")
    page = review.write(cfg, "in", [f"in/{n}" for n in levels], Path("w.pth"), 0)
    return page, arrays


def test_prediction_page_has_a_card_per_image_in_the_stated_order(tmp_path):
    levels = {"img2.png": 0.3, "img10.png": 0.3, "img1.png": 0.05, "a.png": 0.2, "b.png": 0.0}
    path, arrays = fabricated_prediction(tmp_path, levels)
    page = parse_page(path)
    assert sorted(r["id"] for r in page["rows"]) == sorted(levels)
    assert [r["id"] for r in page["rows"]] == ["img2.png", "img10.png", "a.png", "img1.png",
                                               "b.png"]  # the tie in natural name order
    assert_stated_order(page)
    assert_self_contained(page, tmp_path)
    assert page["claim"]["data-sort"] == "mi"
    for row in page["rows"]:
        a = arrays[row["id"]]
        assert row["mi"] == pytest.approx(float(a["mutual_information"].mean()), abs=1e-6)
        pi = a["expert_probs"].astype(np.float64)
        assert row["hpi"] == pytest.approx(float(-(pi * np.log(pi)).sum()), abs=1e-6)
        assert [m[0] for m in row["modes"]] == list(np.argsort(-pi))  # heaviest first
        assert [m[1] for m in row["modes"]] == pytest.approx(sorted(pi, reverse=True), abs=1e-6)
        assert [m[2] for m in row["modes"]] == [int(m[0] == 0) for m in row["modes"]]


def test_without_figures_the_cards_have_no_strip(tmp_path):
    review = PredictionReview(tmp_path, figures=False)
    review.add("in/a.png", "a", np.zeros((1, 6, 8), np.float32),
               fake_arrays(0.1, np.random.default_rng(0)))
    cfg = load_config("experiments/synthetic_lidc.py")
    page = parse_page(review.write(cfg, "in", ["in/a.png", "in/b.png"], Path("w.pth"), 1))
    assert [r["strip"] for r in page["rows"]] == [None]  # b.png failed: no card
    assert page["data"]["links"] == [["arrays", "{stem}_prediction.npz"]]
    assert not (tmp_path / "review").exists()


def test_strip_holds_every_tile_where_the_page_crops_it(tmp_path):
    path, arrays = fabricated_prediction(tmp_path, {"x.png": 0.2})
    row = parse_page(path)["rows"][0]
    strip = np.asarray(Image.open(tmp_path / row["strip"]).convert("RGB"))
    tiles = len(parse_page(path)["data"]["tiles"]) + len(row["modes"])
    assert strip.shape == (6, tiles * 8, 3)  # small images are stored at their resolution
    assert (row["th"], row["tw"]) == (126, 168)  # shown 21x: the largest factor in (128, 192)
    from matplotlib import colormaps

    zero = np.round(255 * np.asarray(colormaps["magma"](0.0)[:3])).astype(int)
    mi_tile = strip[:, 3 * 8:4 * 8]  # tile 3: mutual information, pixel (0, 0) is 0 nats
    assert np.abs(mi_tile[0, 0].astype(int) - zero).max() <= 1
    assert not np.array_equal(mi_tile[0, 1], mi_tile[0, 0])


def test_baseline_cards_show_the_samples(tmp_path):
    path, arrays = fabricated_prediction(tmp_path, {"p.png": 0.1, "q.png": 0.4}, experts=False)
    page = parse_page(path)
    assert page["data"]["mode_label"] == "sample"
    assert "hpi" not in [key for key, _, _ in page["data"]["sorts"]]
    for row in page["rows"]:
        assert row["hpi"] is None and row["nmodes"] == 20 and len(row["modes"]) == 16
        assert [m[0] for m in row["modes"]] == list(range(16))  # equal weights: stable order
        assert all(m[1] == pytest.approx(1 / 20) for m in row["modes"])
        samples = arrays[row["id"]]["samples"]
        assert [m[2] for m in row["modes"]] == [int(not samples[m[0]].any()) for m in row["modes"]]
        width = Image.open(tmp_path / row["strip"]).size[0]
        assert width == (4 + 16) * 8
    assert [r["id"] for r in page["rows"]] == ["q.png", "p.png"]


def test_orders_and_escaping(tmp_path):
    pi = np.array([0.5, 0.5])
    cards = [make_card(name, str(i), None, (1, 1), mi, 0.1, pi, mode_order(pi), True, ged=ged)
             for i, (name, mi, ged) in enumerate([("c</script><b>", 0.2, None), ("a9", 0.1, 0.5),
                                                   ("a10", 0.1, 0.7)])]
    assert [c["id"] for c in ordered(cards, "ged")] == ["a10", "a9", "c</script><b>"]
    assert [c["id"] for c in ordered(cards, "name")] == ["a9", "a10", "c</script><b>"]
    assert [c["id"] for c in ordered(cards, "mi")] == ["c</script><b>", "a9", "a10"]
    with pytest.raises(ValueError, match="sort key"):
        ordered(cards, "size")
    header = dict(title="t <i>", facts=[("a", "<b>")], config={}, csv="x.csv")
    page = parse_page(write_review_page(tmp_path, header, cards, 2, "expert"))
    assert [r["id"] for r in page["rows"]] == ["c</script><b>", "a9", "a10"]
    assert not [tag for tag, _ in page["tags"] if tag in ("b", "i")]  # escaped, not markup


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A fresh tiny MoSE (no training) evaluated on the tiny folder test split and predicting
    its images: (root, evaluation results, prediction folder)."""
    root = tmp_path_factory.mktemp("review_run")
    write_tiny(root / "data")
    cfg = load_config("experiments/folder_example.py", run_args(root)[4::2])  # the --set values
    from utils.build import build_model

    torch.manual_seed(0)
    ckpt = root / "fresh.pth"
    torch.save(build_model(cfg).state_dict(), ckpt)
    results = main.main(run_args(root, "--demo", "test", "--ckpt", str(ckpt)))
    main.main(run_args(root, "--predict", str(root / "data" / "test" / "images"), "--out",
                       str(root / "pred"), "--ckpt", str(ckpt)))
    return root, results, root / "pred"


def test_evaluation_page_carries_the_evaluations_per_image_figures(tiny_run):
    root, results, _ = tiny_run
    split = root / "log" / "folder" / "folder_example" / "test"
    page = parse_page(split / "index.html")
    ids = sorted(p.stem for p in (root / "data" / "test" / "images").iterdir())
    assert sorted(r["id"] for r in page["rows"]) == ids
    assert_stated_order(page)
    assert_self_contained(page, split)
    with open(split / "per_image.csv") as f:
        table = {row["id"]: row for row in csv.DictReader(f)}
    assert sorted(table) == ids
    for row in page["rows"]:
        raters = len(list((root / "data" / "test" / "annotations" / row["id"]).iterdir()))
        assert row["annots"] == pytest.approx([1 / raters] * raters, abs=1e-6)
        for key in ("ged", "miou"):
            assert (table[row["id"]][key] == "") == (row[key] is None)
    for key in ("ged", "miou"):  # the evaluation's own per-image values: their mean is its
        values = [row[key] for row in page["rows"] if row[key] is not None]
        if values:
            assert np.mean(values) == pytest.approx(results[key], abs=1e-5)
        else:
            assert math.isnan(results[key])


def test_prediction_page_links_every_output(tiny_run):
    _, _, out = tiny_run
    page = parse_page(out / "index.html")
    assert sorted(r["id"] for r in page["rows"]) == ["img0.png", "img1.png", "img2.png"]
    assert [label for label, _ in page["data"]["links"]] == ["figure", "arrays"]
    assert_stated_order(page)
    assert_self_contained(page, out)
    for row in page["rows"]:
        with np.load(out / f"{row['stem']}_prediction.npz") as f:
            assert row["mi"] == pytest.approx(float(f["mutual_information"].mean()), abs=1e-6)
            assert row["h"] == pytest.approx(float(f["entropy_total"].mean()), abs=1e-6)
            assert row["nmodes"] == len(f["expert_probs"])


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to parse the script")
def test_page_script_parses(tmp_path):
    path, _ = fabricated_prediction(tmp_path, {"x.png": 0.1})
    script = [body for attrs, body in parse_page(path)["scripts"] if not attrs.get("type")]
    assert len(script) == 1
    (tmp_path / "page.js").write_text(script[0])
    check = subprocess.run(["node", "--check", str(tmp_path / "page.js")], capture_output=True,
                           text=True)
    assert check.returncode == 0, check.stderr


def test_prediction_page_is_written_when_some_images_fail(tiny_run, tmp_path):
    root, _, _ = tiny_run
    source = tmp_path / "in"
    source.mkdir()
    (source / "good.png").write_bytes((root / "data" / "test" / "images" / "img0.png").read_bytes())
    (source / "bad.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="1 of 2 images failed"):
        main.main(run_args(root, "--predict", str(source), "--out", str(tmp_path / "out"),
                           "--ckpt", str(root / "fresh.pth")))
    page = parse_page(tmp_path / "out" / "index.html")
    assert [r["id"] for r in page["rows"]] == ["good.png"]
    assert ("a", {"href": "failures.txt"}) in page["tags"]
    assert_self_contained(page, tmp_path / "out")
