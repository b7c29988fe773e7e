"""The inline style sheet and script of the review page (`review_page`); no external resource.

The script reads the page's JSON blob (`#review-data`), keeps the order, search, page and tile
zoom in the address (#sort=KEY&dir=1|-1&q=TEXT&page=P&zoom=Z), and draws one page of cards from
the rows. Every tile is the card's strip image, scaled by the zoom and cropped by its box, loaded
lazily. After the first cards are in the document it records the performance mark
`review-cards-rendered` (read by benchmarks/bench_review_page.py).
"""

from utils.reports.review_tiles import _magma


def magma_gradient(stops: int = 9) -> str:
    """A CSS linear-gradient of the uncertainty tiles' colour map (for the header's legend)."""
    lut = _magma()
    parts = []
    for i in range(stops):
        r, g, b = lut[round(i * 255 / (stops - 1))]
        parts.append(f"rgb({r},{g},{b}) {100 * i / (stops - 1):.0f}%")
    return "linear-gradient(to right, " + ", ".join(parts) + ")"


CSS = """
*{box-sizing:border-box}
body{font:13px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;
background:#f3f4f6}
#summary{background:#fff;padding:10px 16px;border-bottom:1px solid #d5d9de}
h1{font-size:17px;margin:0 0 6px}
.facts{display:flex;flex-wrap:wrap;gap:4px 18px;margin:0}
.facts div{display:flex;gap:5px}.facts dt{color:#5b6570}.facts dd{margin:0;font-weight:600}
.files,.legend{margin:6px 0 0}
.ramp{display:inline-block;width:120px;height:10px;vertical-align:middle;border:1px solid #999}
details{margin-top:4px}pre{max-height:260px;overflow:auto;background:#f7f7f9;padding:6px;
font-size:11px}
#controls{position:sticky;top:0;z-index:2;display:flex;flex-wrap:wrap;align-items:center;
gap:8px 12px;padding:7px 16px;background:#e9ecef;border-bottom:1px solid #cfd4da}
#controls input[type=search]{width:180px}
.pager{display:inline-flex;align-items:center;gap:5px}.pager input{width:64px}
.pager.bottom{padding:8px 16px 24px}
#sort-claim{margin:6px 16px;color:#5b6570}
#cards{padding:0 16px;display:flex;flex-direction:column;gap:8px}
.card{background:#fff;border:1px solid #d5d9de;border-radius:4px;padding:6px 8px}
.head{display:flex;flex-wrap:wrap;gap:4px 14px;align-items:baseline;margin-bottom:4px}
.rank{color:#5b6570;min-width:44px}.name{font-weight:600;word-break:break-all}
.stats span{margin-right:10px;font-variant-numeric:tabular-nums}
.tiles{display:flex;flex-wrap:wrap;gap:6px}
figure.t{margin:0}.crop{overflow:hidden;background:#ddd}
.crop img{display:block;max-width:none}.crop img.up{image-rendering:pixelated}
figcaption{font-size:11px;line-height:1.25;color:#333;overflow-wrap:anywhere}
figure.top figcaption{font-weight:700}figure.annot figcaption{color:#1b5e9a}
.sep{width:1px;align-self:stretch;background:#c4c9cf;margin:0 2px}
.empty{color:#5b6570;padding:12px 0}
"""

SCRIPT = r"""
(function () {
"use strict";
var D = JSON.parse(document.getElementById("review-data").textContent);
var rows = D.rows.map(function (r) {
  var o = {};
  D.fields.forEach(function (f, j) { o[f] = r[j]; });
  return o;
});
var names = {}, dirs = {};
D.sorts.forEach(function (s) { names[s[0]] = s[1]; dirs[s[0]] = s[2]; });
var ZOOMS = [0.5, 0.75, 1, 1.5, 2, 3];
var state = {sort: D.default_sort, dir: dirs[D.default_sort], q: "", page: 1, zoom: 1};
var view = rows, drawn = false;
var collator = new Intl.Collator(undefined, {numeric: true});
var $ = function (id) { return document.getElementById(id); };

function esc(s) {
  return String(s).replace(/[&<>"']/g, function (c) {
    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
  });
}
function url(p) { return p.split("/").map(encodeURIComponent).join("/"); }
function fmt(v, d) { return v === null || v === undefined ? "\u2013" : v.toFixed(d); }

function readHash() {
  var h = new URLSearchParams(location.hash.slice(1));
  if (names[h.get("sort")] !== undefined) state.sort = h.get("sort");
  state.dir = h.get("dir") === "1" ? 1 : h.get("dir") === "-1" ? -1 : dirs[state.sort];
  state.q = h.get("q") || "";
  state.page = Math.max(1, parseInt(h.get("page"), 10) || 1);
  var z = parseFloat(h.get("zoom"));
  if (ZOOMS.indexOf(z) >= 0) state.zoom = z;
}
function writeHash() {
  var h = "sort=" + state.sort + "&dir=" + state.dir + "&q=" + encodeURIComponent(state.q) +
    "&page=" + state.page + "&zoom=" + state.zoom;
  history.replaceState(null, "", "#" + h);
}
function compare(a, b) {
  if (state.sort !== "name") {
    var x = a[state.sort], y = b[state.sort];
    if (x === null || y === null) { if (x !== y) return x === null ? 1 : -1; }
    else if (x !== y) return state.dir * (x - y);
  }
  var c = collator.compare(a.id, b.id);
  return state.sort === "name" ? state.dir * c : c;
}
function update() {
  var base = rows;
  if (state.sort !== D.default_sort || state.dir !== dirs[D.default_sort]) {
    base = rows.slice().sort(compare);
  }
  var q = state.q.toLowerCase();
  view = q ? base.filter(function (r) { return r.id.toLowerCase().indexOf(q) >= 0; }) : base;
  render();
}

function tile(r, i, n, caption, cls) {
  var w = Math.max(1, Math.round(r.tw * state.zoom));
  var h = Math.max(1, Math.round(r.th * state.zoom));
  return '<figure class="t' + (cls || "") + '"><div class="crop" style="width:' + w +
    "px;height:" + h + 'px"><img src="' + esc(url(r.strip)) + '" loading="lazy" alt=""' +
    (state.zoom >= 1 ? ' class="up"' : "") + ' width="' + n * w + '" height="' + h +
    '" style="margin-left:' + (-i * w) + 'px"></div><figcaption style="width:' +
    Math.max(w, 64) + 'px">' + caption + "</figcaption></figure>";
}
function tiles(r) {
  if (!r.strip) return '<div class="empty">no image strip (run without figures)</div>';
  var n = D.tiles.length + r.modes.length + r.annots.length;
  var t = D.tiles.map(function (name, i) { return tile(r, i, n, esc(name)); }).join("");
  var word = D.mode_label === "expert" ? "<br>\u03c0 " : "<br>w ";
  t += '<span class="sep"></span>';
  r.modes.forEach(function (m, j) {
    t += tile(r, D.tiles.length + j, n, D.mode_label + " " + m[0] + word + m[1].toFixed(3) +
              (m[2] ? " \u00b7 empty" : ""), j === 0 ? " top" : "");
  });
  if (r.nmodes > r.modes.length) {
    t += '<div class="empty">+' + (r.nmodes - r.modes.length) + " lighter " + D.mode_label +
      "s</div>";
  }
  if (r.annots.length) t += '<span class="sep"></span>';
  r.annots.forEach(function (p, j) {
    t += tile(r, D.tiles.length + r.modes.length + j, n, "annotation " + j + "<br>p " +
              p.toFixed(2), " annot");
  });
  return t;
}
var TIPS = {mi: "mean mutual information (nats): the plausible segmentations disagree",
  h: "mean total entropy H[mean] (nats)", hpi: "entropy of \u03c0 (nats): 0 one expert, ln K all",
  ged: "generalised energy distance to the annotations", miou: "matched IoU"};
function stat(key, label, v, d) {
  return '<span title="' + TIPS[key] + '">' + label + " " + fmt(v, d) + "</span>";
}
function card(r, position) {
  var s = stat("mi", "MI", r.mi, 4) + stat("h", "H", r.h, 4);
  if (r.hpi !== null) s += stat("hpi", "H(\u03c0)", r.hpi, 3);
  if (names.ged !== undefined) s += stat("ged", "GED", r.ged, 4);
  if (names.miou !== undefined) s += stat("miou", "M-IoU", r.miou, 4);
  var links = D.links.map(function (l) {
    return '<a href="' + esc(url(l[1].replace("{stem}", r.stem))) + '">' + esc(l[0]) + "</a>";
  }).join(" ");
  return '<article class="card"><div class="head"><span class="rank">#' + position +
    '</span><span class="name">' + esc(r.id) + '</span><span class="stats">' + s +
    '</span><span class="links">' + links + '</span></div><div class="tiles">' + tiles(r) +
    "</div></article>";
}
function pagerHtml(pages) {
  return '<button type="button" data-step="-1">\u2039 prev</button> page <input type="number"' +
    ' min="1" max="' + pages + '" value="' + state.page + '"> of ' + pages +
    ' <button type="button" data-step="1">next \u203a</button>';
}
function render() {
  var pages = Math.max(1, Math.ceil(view.length / D.page_size));
  state.page = Math.min(state.page, pages);
  var start = (state.page - 1) * D.page_size, part = view.slice(start, start + D.page_size);
  $("cards").innerHTML = part.length ? part.map(function (r, i) {
    return card(r, start + i + 1);
  }).join("") : '<div class="empty">no image id contains "' + esc(state.q) + '"</div>';
  Array.prototype.forEach.call(document.querySelectorAll(".pager"), function (p) {
    p.innerHTML = pagerHtml(pages);
  });
  $("count").textContent = view.length + " of " + rows.length + " images";
  $("sort-claim").textContent = "sorted by " + names[state.sort] + ", " +
    (state.dir < 0 ? "highest first" : "lowest first") +
    (state.q ? '; image ids containing "' + state.q + '"' : "");
  $("sort").value = state.sort;
  $("zoom").value = String(state.zoom);
  $("dir").textContent = state.dir < 0 ? "\u2193 highest first" : "\u2191 lowest first";
  writeHash();
  if (!drawn) { drawn = true; performance.mark("review-cards-rendered"); }
}
function go(page) { state.page = page; render(); window.scrollTo(0, 0); }

$("sort").innerHTML = D.sorts.map(function (s) {
  return '<option value="' + s[0] + '">' + esc(s[1]) + "</option>";
}).join("");
$("sort").addEventListener("change", function (e) {
  state.sort = e.target.value; state.dir = dirs[state.sort]; state.page = 1; update();
});
$("zoom").innerHTML = ZOOMS.map(function (z) {
  return '<option value="' + z + '">' + z * 100 + "%</option>";
}).join("");
$("zoom").addEventListener("change", function (e) {
  state.zoom = parseFloat(e.target.value); render();
});
$("dir").addEventListener("click", function () {
  state.dir = -state.dir; state.page = 1; update();
});
var timer = null;
$("search").addEventListener("input", function (e) {
  clearTimeout(timer);
  timer = setTimeout(function () { state.q = e.target.value; state.page = 1; update(); }, 150);
});
document.addEventListener("click", function (e) {
  var step = e.target.getAttribute && e.target.getAttribute("data-step");
  if (step) go(Math.max(1, state.page + parseInt(step, 10)));
});
document.addEventListener("change", function (e) {
  if (!e.target.closest || !e.target.closest(".pager")) return;
  go(Math.max(1, parseInt(e.target.value, 10) || 1));
});
document.addEventListener("keydown", function (e) {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") return;
  if (e.key === "ArrowRight") go(state.page + 1);
  if (e.key === "ArrowLeft") go(Math.max(1, state.page - 1));
});
readHash();
$("search").value = state.q;
update();
})();
"""
