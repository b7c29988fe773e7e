"""Review page in a real browser: page size, time to first paint, cards drawn, re-sorting.

Opens review pages (`utils/reports/review_page.py`) from disk in headless Chromium (Debian's
package: `apt-get install chromium`) and reads the browser's own performance timeline through the
DevTools protocol over a pipe (no network, no extra package):

- first paint and first contentful paint (`performance.getEntriesByType('paint')`), the mark
  `review-cards-rendered` the page sets once its first page of cards is in the document, and
  DOMContentLoaded / load, all in ms from navigation start; a fresh browser per repeat;
- re-sorting every image by GED and drawing the first page (script time, ms);
- the page's size in bytes and the number of cards in the document.

Pages measured: synthetic evaluation pages of `--sizes` images (fabricated values, K=4 experts,
M=4 annotations; every card's strip file is a hard link to one real strip, so paths and files
are real), and any `--pages` written by real runs. `--screenshot PAGE` saves a 1400x1000
screenshot of PAGE (at `--view`, tiles at 75 % by default; after the images in view have loaded)
to imgs/review_page.png. Also the cost of drawing and writing one image strip (32x32 and 128x128
inputs). Prints JSON and writes benchmarks/results/review_page.json with provenance.

    python -m benchmarks.bench_review_page --pages log/.../test/index.html \
        --screenshot log/.../test/index.html
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from benchmarks.provenance import provenance
from utils.reports.review_cards import make_card, mode_order
from utils.reports.review_page import write_review_page
from utils.reports.review_tiles import review_tiles, save_strip

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe"]
WINDOW = (1400, 1000)

TIMINGS_JS = """new Promise(function (done) {
  var t0 = performance.now();
  function ready() {
    var paint = {}, mark = performance.getEntriesByName("review-cards-rendered")[0];
    performance.getEntriesByType("paint").forEach(function (e) { paint[e.name] = e.startTime; });
    if (performance.now() - t0 > 60000) return done(JSON.stringify({error: "no cards drawn"}));
    if (!mark || paint["first-contentful-paint"] === undefined) return setTimeout(ready, 20);
    var nav = performance.getEntriesByType("navigation")[0];
    done(JSON.stringify({first_paint_ms: paint["first-paint"],
      first_contentful_paint_ms: paint["first-contentful-paint"], cards_rendered_ms: mark.startTime,
      dom_content_loaded_ms: nav.domContentLoadedEventEnd, load_ms: nav.loadEventEnd,
      cards_in_document: document.querySelectorAll("article.card").length,
      elements_in_document: document.getElementsByTagName("*").length}));
  }
  ready();
})"""
RESORT_JS = """(function () {
  var s = document.getElementById("sort"), t0 = performance.now();
  s.value = s.querySelector('option[value="ged"]') ? "ged" : "name";
  s.dispatchEvent(new Event("change"));
  return performance.now() - t0;
})()"""
IMAGES_JS = """new Promise(function (done) {
  function check(n) {
    var shown = Array.prototype.filter.call(document.images, function (im) {
      return im.getBoundingClientRect().top < innerHeight; });
    if (n > 200 || shown.every(function (im) { return im.complete; })) return done(shown.length);
    setTimeout(function () { check(n + 1); }, 25);
  }
  check(0);
})"""


class Browser:
    """Headless Chromium driven through the DevTools protocol on fds 3/4 (--remote-debugging-pipe).

    Args:
        binary: the Chromium executable.
    """

    def __init__(self, binary: str):
        self.profile = tempfile.mkdtemp(prefix="review_bench_profile_")
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def fds() -> None:  # the child's fds 3 (commands) and 4 (replies), inheritable
            commands, replies = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(commands, 3)
            os.dup2(replies, 4)

        size = f"--window-size={WINDOW[0]},{WINDOW[1]}"
        self.proc = subprocess.Popen([binary, *FLAGS, size, f"--user-data-dir={self.profile}",
                                      "about:blank"], preexec_fn=fds, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer, self._id, self.session = b"", 0, None
        target = next(t for t in self.call("Target.getTargets")["targetInfos"]
                      if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=target["targetId"],
                                 flatten=True)["sessionId"]
        self.call("Page.enable")

    def _read(self) -> Dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, wait_event: Optional[str] = None, **params: Any) -> Dict[str, Any]:
        """Send one command; return its result (after `wait_event` too, when given)."""
        self._id += 1
        message = dict(id=self._id, method=method, params=params)
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        result, seen = None, wait_event is None
        while result is None or not seen:
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result = reply["result"]
            seen = seen or reply.get("method") == wait_event
        return result

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        reply = self.call("Runtime.evaluate", expression=expression, awaitPromise=True,
                          returnByValue=True)
        return reply["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


def measure_once(binary: str, page: Path, screenshot: Optional[Path] = None,
                 view: str = "") -> Dict[str, Any]:
    """Open `page` (with the address state `view`, e.g. 'zoom=0.75') in a fresh browser: its
    timings, the re-sort time, optionally a screenshot."""
    browser = Browser(binary)
    try:
        browser.call("Page.navigate", wait_event="Page.loadEventFired",
                     url=page.resolve().as_uri() + (f"#{view}" if view else ""))
        timings = json.loads(browser.evaluate(TIMINGS_JS))
        if "error" in timings:
            raise RuntimeError(f"{page}: {timings['error']} within 60 s (a script error?)")
        if screenshot is not None:
            browser.evaluate(IMAGES_JS)
            data = browser.call("Page.captureScreenshot", format="png")["data"]
            import base64

            screenshot.write_bytes(base64.b64decode(data))
        timings["resort_by_ged_ms"] = browser.evaluate(RESORT_JS)
    finally:
        browser.close()
    return timings


def measure(binary: str, page: Path, repeats: int) -> Dict[str, Any]:
    """Median of `repeats` fresh openings of `page`, with the page's size."""
    runs = [measure_once(binary, page) for _ in range(repeats)]
    keys = [k for k in runs[0] if isinstance(runs[0][k], (int, float))]
    result: Dict[str, Any] = {k: statistics.median(r[k] for r in runs) for k in keys}
    result.update(page=str(page), html_bytes=page.stat().st_size, repeats=repeats,
                  runs=runs)
    return result


def fake_arrays(size: int, rng: np.random.Generator, K: int = 4, M: int = 4) -> tuple:
    """`review_tiles` arguments of one fabricated binary size x size image (blob modes)."""
    yy, xx = np.mgrid[:size, :size] / size  # (H, W)
    radius = np.hypot(yy - 0.5, xx - 0.5)  # (H, W)
    modes = np.stack([(radius < 0.15 + 0.05 * k) for k in range(K)]).astype(np.float32)
    expert = np.stack([1 - modes, modes], axis=1)  # (K, 2, H, W)
    mean = expert.mean(0)  # (2, H, W)
    entropy = -(mean * np.log(np.clip(mean, 1e-8, 1))).sum(0)  # (H, W)
    image = rng.normal(size=(size, size)) + 2 * modes[1]
    annotations = modes[rng.integers(0, K, M)].astype(np.int64)  # (M, H, W)
    return image, mean, entropy, entropy, expert, annotations


def strip_cost(size: int, count: int, folder: Path) -> Dict[str, float]:
    """Mean ms to draw and to write one strip (4 + K + M tiles) of a size x size input, and its
    bytes."""
    args = fake_arrays(size, np.random.default_rng(0))
    review_tiles(*args)  # imports and colour tables, once per process
    draw = write = 0.0
    for i in range(count):
        t0 = time.perf_counter()
        tiles = review_tiles(*args)
        t1 = time.perf_counter()
        save_strip(folder / f"cost_{size}_{i}.png", tiles)
        draw, write = draw + t1 - t0, write + time.perf_counter() - t1
    return dict(input_size=size, draw_ms=1000 * draw / count, write_png_ms=1000 * write / count,
                strip_bytes=(folder / f"cost_{size}_0.png").stat().st_size)


def synthetic_page(folder: Path, count: int, seed: int = 0) -> Path:
    """An evaluation page of `count` fabricated cards (K=4, M=4, 32x32 inputs) under folder;
    every strip file is a hard link to one real strip."""
    rng = np.random.default_rng(seed)
    strips = folder / "review"
    strips.mkdir(parents=True, exist_ok=True)
    tile = save_strip(strips / "0.png", review_tiles(*fake_arrays(32, rng)))
    cards = []
    for i in range(count):
        if i:
            os.link(strips / "0.png", strips / f"{i}.png")
        pi = rng.dirichlet(np.ones(4))
        cards.append(make_card(f"{i:06d}", str(i), f"review/{i}.png", tile, rng.gamma(1, 0.02),
                               rng.gamma(2, 0.05), pi, mode_order(pi), True,
                               ged=rng.uniform(0, 1), miou=rng.uniform(0, 1),
                               annots=[0.25] * 4))
    header = dict(title=f"synthetic: {count} images", facts=[("images", str(count))],
                  config={}, csv="per_image.csv")
    return write_review_page(folder, header, cards, 2, "expert")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[200, 20000],
                   help="synthetic pages of these many images")
    p.add_argument("--pages", nargs="*", default=[], help="pages written by real runs")
    p.add_argument("--screenshot", metavar="PAGE", help="save a screenshot of PAGE")
    p.add_argument("--screenshot-out", default=str(ROOT / "imgs" / "review_page.png"))
    p.add_argument("--view", default="zoom=0.75",
                   help="the screenshot's address state (sort, dir, q, page, zoom)")
    p.add_argument("--repeats", type=int, default=3, help="fresh browsers per page (median)")
    p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "review_page.json"))
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    record = provenance()  # before the screenshot rewrites a tracked file
    if not shutil.which(args.chromium):
        raise SystemExit(f"{args.chromium} not found: apt-get install chromium")
    version = subprocess.run([args.chromium, "--version"], capture_output=True, text=True)
    result: Dict[str, Any] = dict(browser=version.stdout.strip(), window=list(WINDOW),
                                  synthetic={}, pages={})
    with tempfile.TemporaryDirectory(prefix="review_bench_") as tmp:
        result["strip_cost"] = [strip_cost(s, 50, Path(tmp)) for s in (32, 128)]
        for count in args.sizes:
            page = synthetic_page(Path(tmp) / f"synthetic_{count}", count)
            result["synthetic"][str(count)] = measure(args.chromium, page, args.repeats)
    for page in args.pages:
        result["pages"][page] = measure(args.chromium, Path(page), args.repeats)
    if args.screenshot:
        shot = Path(args.screenshot_out)
        measure_once(args.chromium, Path(args.screenshot), shot, args.view)
        inside = shot.resolve().is_relative_to(ROOT)
        result["screenshot"] = dict(page=args.screenshot, view=args.view,
                                    file=str(shot.resolve().relative_to(ROOT)) if inside
                                    else str(shot))
    result["provenance"] = record
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
