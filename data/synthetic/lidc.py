"""LIDC-like synthetic set: ambiguous blobs whose mask modes depend on visible cues.

Each S x S image (default 32) shows a textured background and an elliptical blob ("core").
Its true label distribution has two to four modes:
- 0 "nothing" (empty mask), likelier when the core has low contrast;
- 1 "core" (the ellipse), always possible;
- 2 "extended" (core + a surrounding halo), only when a halo is drawn; likelier the brighter
  the halo;
- 3 "satellite" (core + a small nearby blob), only when the satellite is drawn; likelier the
  brighter it is.
Unnormalised weights: nothing 1.5 (1 - c)^2, core 1, extended 2 h, satellite 1.5 q, with c,
h, q in [0, 1] the contrast of core, halo and satellite, all visible in the image.
Four annotations are drawn independently from the modes, each with a small random change of
the boundary radius (up to 0.75 px at S = 32). Writes the LIDC layout (image = value in [0, 1]
minus 0.5, (S, S) float32; labels (S, S, 4) uint8) plus `modes/<i>.npy` ((T, S, S) uint8) and
`mode_probs/<i>.npy` ((T,) float32) with the T possible modes.
"""

from __future__ import annotations

import numpy as np
from tqdm import tqdm

from data.npy_folder import SPLITS
from data.synthetic.common import make_split_dirs, save_item, split_rngs, start_dataset

NUM_ANNOTATIONS = 4
_CHUNK = 256  # images rendered at once


def sample_params(rng: np.random.Generator, n: int, size: int,
                  satellite_with_halo: bool = True) -> dict[str, np.ndarray]:
    """Draw the scene parameters of n images.

    Args:
        rng: random generator.
        n: number of images.
        size: image side S.
        satellite_with_halo: halo and satellite drawn independently (up to four modes per
            image); False: where both were drawn, a fair coin keeps one (up to three modes).

    Returns:
        name -> (n,) or (n, k) float arrays (geometry in pixels, contrasts in [0, 1]).
    """
    f = size / 32.0
    p = {
        "cx": rng.uniform(0.38, 0.62, n) * size,
        "cy": rng.uniform(0.38, 0.62, n) * size,
        "rc": rng.uniform(3.0, 5.5, n) * f,
        "width": rng.uniform(2.0, 3.5, n) * f,
        "aspect": rng.uniform(0.8, 1.25, n),
        "angle": rng.uniform(0.0, np.pi, n),
        "c": rng.uniform(0.0, 1.0, n),
        "h": np.where(rng.random(n) < 0.7, rng.uniform(0.1, 1.0, n), 0.0),
        "q": np.where(rng.random(n) < 0.4, rng.uniform(0.1, 1.0, n), 0.0),
        "sat_angle": rng.uniform(0.0, 2 * np.pi, n),
        "rs": rng.uniform(1.5, 2.5, n) * f,
        "wave": rng.uniform(0.5, 2.5, (n, 3, 2)),
        "phase": rng.uniform(0, 2 * np.pi, (n, 3)),
    }
    if not satellite_with_halo:
        both = (p["h"] > 0) & (p["q"] > 0)
        keep_halo = rng.random(n) < 0.5  # drawn last: the other parameters stay the same
        p["h"] = np.where(both & ~keep_halo, 0.0, p["h"])
        p["q"] = np.where(both & keep_halo, 0.0, p["q"])
    p["re"] = p["rc"] + p["width"]
    gap = p["re"] + p["rs"] + 0.5 * f
    p["sx"] = p["cx"] + gap * np.cos(p["sat_angle"])
    p["sy"] = p["cy"] + gap * np.sin(p["sat_angle"])
    return p


def mode_probabilities(p: dict[str, np.ndarray]) -> np.ndarray:
    """Probabilities of the four mode types from the visible cues (0 where not drawn).

    Args:
        p: parameters from `sample_params`.

    Returns:
        (n, 4) float64 rows summing to 1 (nothing, core, extended, satellite).
    """
    w = np.stack(
        [1.5 * (1.0 - p["c"]) ** 2, np.ones_like(p["c"]), 2.0 * p["h"], 1.5 * p["q"]], axis=1
    )  # (n, 4)
    return w / w.sum(axis=1, keepdims=True)


def _distances(p: dict[str, np.ndarray], idx: slice, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Elliptical distance to the core centre and distance to the satellite centre."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # (S, S) pixel centres
    dx = xx - p["cx"][idx, None, None]  # (n, S, S)
    dy = yy - p["cy"][idx, None, None]  # (n, S, S)
    cos, sin = np.cos(p["angle"][idx])[:, None, None], np.sin(p["angle"][idx])[:, None, None]
    a = p["aspect"][idx, None, None]
    d_main = np.hypot((dx * cos + dy * sin) / a, (dy * cos - dx * sin) * a)  # (n, S, S)
    d_sat = np.hypot(xx - p["sx"][idx, None, None], yy - p["sy"][idx, None, None])  # (n, S, S)
    return d_main, d_sat


def render_images(
    p: dict[str, np.ndarray],
    idx: slice,
    size: int,
    d_main: np.ndarray,
    d_sat: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render the grey-value images in [0, 1].

    Args:
        p: parameters from `sample_params`.
        idx: the images to render.
        size: image side S.
        d_main: (n, S, S) elliptical distance to the core centre.
        d_sat: (n, S, S) distance to the satellite centre.
        rng: random generator for the pixel noise.

    Returns:
        (n, S, S) float32 array.
    """
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size  # (S, S)
    wave, phase = p["wave"][idx], p["phase"][idx]  # (n, 3, 2), (n, 3)
    arg = 2 * np.pi * (wave[..., 0, None, None] * xx + wave[..., 1, None, None] * yy)  # (n,3,S,S)
    texture = np.sin(arg + phase[..., None, None]).mean(axis=1)  # (n, S, S)
    noise = rng.normal(0.0, 1.0, d_main.shape)  # (n, S, S)
    soft = 1.0 / (size / 32.0)  # edge softness in 1/px

    def disc(d, r):
        return 1.0 / (1.0 + np.exp(-(r[:, None, None] - d) * 2.0 * soft))

    core = disc(d_main, p["rc"][idx]) * (0.05 + 0.45 * p["c"][idx])[:, None, None]
    halo_on = (p["h"][idx] > 0)[:, None, None]
    halo = (disc(d_main, p["re"][idx]) - disc(d_main, p["rc"][idx])) * halo_on
    halo = halo * (0.04 + 0.22 * p["h"][idx])[:, None, None]
    sat_on = (p["q"][idx] > 0)[:, None, None]
    sat = disc(d_sat, p["rs"][idx]) * sat_on * (0.05 + 0.35 * p["q"][idx])[:, None, None]
    image = 0.3 + 0.07 * texture + 0.03 * noise + core + halo + sat
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def mode_masks(
    p: dict[str, np.ndarray], idx: slice, d_main: np.ndarray, d_sat: np.ndarray
) -> np.ndarray:
    """The four mode-type masks of each image (undrawn types are still computed).

    Returns:
        (n, 4, S, S) bool: nothing, core, extended, satellite.
    """
    core = d_main < p["rc"][idx, None, None]  # (n, S, S)
    extended = d_main < p["re"][idx, None, None]
    satellite = core | (d_sat < p["rs"][idx, None, None])
    return np.stack([np.zeros_like(core), core, extended, satellite], axis=1)  # (n, 4, S, S)


def draw_annotations(
    p: dict[str, np.ndarray],
    idx: slice,
    probs: np.ndarray,
    d_main: np.ndarray,
    d_sat: np.ndarray,
    rng: np.random.Generator,
    size: int,
    jitter: float = 0.75,
    wobble: float = 0.0,
) -> np.ndarray:
    """Draw four annotations per image from its modes, with boundary jitter and wobble.

    Args:
        p: parameters from `sample_params`.
        idx: the images to annotate.
        probs: (n, 4) mode-type probabilities of these images.
        d_main: (n, S, S) elliptical distance to the core centre.
        d_sat: (n, S, S) distance to the satellite centre.
        rng: random generator.
        size: image side S.
        jitter: largest change of a boundary radius, in pixels at S = 32.
        wobble: largest amplitude, in pixels at S = 32, of each of three boundary harmonics
            (2, 3 and 4 lobes, random phases, drawn per annotation): the outline is traced
            differently by every annotator without a change of its overall size. Half of it
            applies to the satellite's smaller outline. 0 draws nothing more from `rng`.

    Returns:
        (n, S, S, 4) uint8 annotations (the LIDC label layout).
    """
    n = probs.shape[0]
    cum = np.cumsum(probs, axis=1)  # (n, 4)
    cum[np.arange(n), (probs > 0).cumsum(axis=1).argmax(axis=1)] = np.inf  # last drawable type
    u = rng.random((n, NUM_ANNOTATIONS))  # (n, 4)
    choice = np.argmax(u[..., None] < cum[:, None, :], axis=-1)  # (n, A) first cum above u
    jitter = rng.uniform(-jitter, jitter, (n, NUM_ANNOTATIONS, 2)) * (size / 32.0)  # (n, A, 2)
    rc, re, rs = p["rc"][idx, None], p["re"][idx, None], p["rs"][idx, None]  # (n, 1)
    r_main = np.choose(choice, [np.full_like(rc, -np.inf), rc, re, rc]) + jitter[..., 0]
    r_sat = np.where(choice == 3, rs + jitter[..., 1], -np.inf)  # (n, A)
    r_main, r_sat = r_main[..., None, None], r_sat[..., None, None]  # (n, A, 1, 1)
    if wobble > 0:
        r_main = r_main + _wobble(rng, p["cx"][idx], p["cy"][idx], wobble, size)  # (n, A, S, S)
        r_sat = r_sat + _wobble(rng, p["sx"][idx], p["sy"][idx], wobble / 2, size)
    masks = (d_main[:, None] < r_main) | (d_sat[:, None] < r_sat)  # (n, A, S, S)
    return np.ascontiguousarray(masks.transpose(0, 2, 3, 1)).astype(np.uint8)  # (n, S, S, A)


def _wobble(rng: np.random.Generator, cx: np.ndarray, cy: np.ndarray, amplitude: float,
            size: int) -> np.ndarray:
    """Per-annotation change of a boundary radius with the angle around a centre.

    Args:
        rng: random generator.
        cx, cy: (n,) centres in pixels.
        amplitude: largest amplitude of each harmonic, pixels at S = 32.
        size: image side S.

    Returns:
        (n, A, S, S) radius change in pixels, Σ_k a_k cos(k θ + φ_k) over k = 2, 3, 4.
    """
    n = cx.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # (S, S) pixel centres
    theta = np.arctan2(yy - cy[:, None, None], xx - cx[:, None, None])[:, None]  # (n, 1, S, S)
    lobes = np.arange(2, 5)  # (3,)
    a = rng.uniform(-amplitude, amplitude, (n, NUM_ANNOTATIONS, 3)) * (size / 32.0)  # (n, A, 3)
    phase = rng.uniform(0.0, 2 * np.pi, (n, NUM_ANNOTATIONS, 3))  # (n, A, 3)
    out = np.zeros((n, NUM_ANNOTATIONS, size, size))  # (n, A, S, S)
    for i, k in enumerate(lobes):
        out += a[..., i, None, None] * np.cos(k * theta + phase[..., i, None, None])
    return out


def _write_split(out: str, split: str, n: int, size: int, rng: np.random.Generator,
                 satellite_with_halo: bool, jitter: float, wobble: float) -> None:
    """Generate and write one split."""
    dirs = make_split_dirs(out, split, ("images", "labels", "modes", "mode_probs"))
    p = sample_params(rng, n, size, satellite_with_halo)
    probs = mode_probabilities(p)  # (n, 4)
    drawn = np.stack([np.ones(n, bool), np.ones(n, bool), p["h"] > 0, p["q"] > 0], axis=1)
    for start in tqdm(range(0, n, _CHUNK), desc=f"synthetic lidc {split}", leave=False):
        idx = slice(start, min(start + _CHUNK, n))
        d_main, d_sat = _distances(p, idx, size)
        images = render_images(p, idx, size, d_main, d_sat, rng)  # (n, S, S)
        modes = mode_masks(p, idx, d_main, d_sat).astype(np.uint8)  # (n, 4, S, S)
        labels = draw_annotations(p, idx, probs[idx], d_main, d_sat, rng, size,
                                  jitter, wobble)  # (n, S, S, 4)
        for j, i in enumerate(range(idx.start, idx.stop)):
            save_item(
                dirs,
                i,
                {
                    "images": images[j] - np.float32(0.5),
                    "labels": labels[j],
                    "modes": modes[j][drawn[i]],
                    "mode_probs": probs[i][drawn[i]].astype(np.float32),
                },
            )


def make_lidc(
    out: str,
    n_train: int = 2000,
    n_val: int = 200,
    n_test: int = 200,
    size: int = 32,
    seed: int = 0,
    satellite_with_halo: bool = True,
    jitter: float = 0.75,
    wobble: float = 0.0,
    overwrite: bool | None = None,
) -> dict[str, int]:
    """Write an LIDC-like synthetic dataset with known true mode distributions.

    Args:
        out: dataset root (`<out>/{train,val,test}/{images,labels,modes,mode_probs}`).
        n_train: training images.
        n_val: validation images.
        n_test: test images.
        size: image side S.
        seed: random seed; the output is identical for equal arguments.
        satellite_with_halo: see `sample_params`.
        jitter: largest change of an annotation's boundary radius, pixels at S = 32.
        wobble: largest amplitude of each boundary harmonic of an annotation (see
            `draw_annotations`), pixels at S = 32.
        overwrite: replace existing split folders; None replaces only an earlier synthetic set.

    Returns:
        split -> number of images written.
    """
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if size < 8 or min(counts.values()) < 0 or jitter < 0 or wobble < 0:
        raise ValueError(f"need size >= 8, non-negative counts, jitter and wobble, got "
                         f"size={size}, {counts}, jitter={jitter}, wobble={wobble}")
    info = {"dataset": "lidc", "synthetic": True, "size": size, "seed": seed, "counts": counts,
            "satellite_with_halo": bool(satellite_with_halo), "jitter": float(jitter),
            "wobble": float(wobble)}
    start_dataset(out, info, overwrite)
    rngs = split_rngs(seed)
    for split in SPLITS:
        _write_split(out, split, counts[split], size, rngs[split], satellite_with_halo, jitter,
                     wobble)
    return counts
