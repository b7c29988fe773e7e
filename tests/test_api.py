"""The Python API (`mose.py`): every example of docs/api.md runs as written and prints what the
page shows; the wrappers equal the project's functions, GED and M-IoU equal brute force on tiny
inputs, numpy and torch inputs agree, and `predict` equals the files `--predict` writes."""

import contextlib
import io
import itertools
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

import main
import mose
from utils.evaluation.calibration import mode_calibration as calibration_of_modes
from utils.evaluation.metrics import StreamingECE, ged_miou

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "api.md"
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.DOTALL)
CONFIG = "experiments/synthetic_lidc_paper.py"


def page_examples() -> list:
    """(code, printed output shown right after it, or None) of every python block, in order."""
    text = PAGE.read_text()
    blocks = list(BLOCK.finditer(text))
    examples = []
    for block, after in zip(blocks, blocks[1:] + [None]):
        if block.group(1) != "python":
            continue
        shown = (after is not None and after.group(1) == "text"
                 and not text[block.end():after.start()].strip())
        examples.append((block.group(2), after.group(2) if shown else None))
    return examples


def test_every_example_of_the_page_runs_as_written(monkeypatch, tmp_path):
    examples = page_examples()
    assert len(examples) >= 7 and sum(out is not None for _, out in examples) >= 7
    monkeypatch.chdir(ROOT)  # the page's paths are relative to the repository root
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace = {"__name__": "api_page"}
    for i, (code, shown) in enumerate(examples):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"docs/api.md, python block {i + 1}", "exec"), namespace)
        if shown is not None:
            assert printed.getvalue() == shown, f"python block {i + 1} of docs/api.md"


def test_the_page_lists_every_function():
    table = PAGE.read_text().split("## Functions")[1]
    for name in mose.__all__:
        assert f"`{name}" in table, name


def random_case(B=3, N=8, M=4, C=2, H=6, W=5, seed=0, empty=True):
    """Samples, annotations and random weights; a third of the maps empty when `empty`."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, C, (B, N, H, W))
    annotations = rng.integers(0, C, (B, M, H, W))
    if empty:
        samples[:, ::3], annotations[:, ::3] = 0, 0
    u, v = rng.random((B, N)), rng.random((B, M))
    return samples, annotations, u / u.sum(1, keepdims=True), v / v.sum(1, keepdims=True)


def brute_distance(x, y, C, classes, empty):
    if C == 2:
        inter, union = np.sum((x == 1) & (y == 1)), np.sum((x == 1) | (y == 1))
        return (0.0 if empty == "zero" else np.nan) if union == 0 else 1 - inter / union
    ious = [np.sum((x == c) & (y == c)) / np.sum((x == c) | (y == c)) for c in classes
            if np.sum((x == c) | (y == c)) > 0]
    return 1 - np.mean(ious) if ious else np.nan


def brute_expectation(a, wa, b, wb, C, classes, empty):
    """E d over weighted pairs, undefined (NaN) pairs left out with 'skip'."""
    total = mass = 0.0
    for i, j in itertools.product(range(len(a)), range(len(b))):
        d = brute_distance(a[i], b[j], C, classes, empty)
        if np.isnan(d) and empty == "skip":
            continue
        total, mass = total + wa[i] * wb[j] * d, mass + wa[i] * wb[j]
    return total / mass if mass > 0 else np.nan


@pytest.mark.parametrize("C,classes,empty", [(2, None, "zero"), (2, None, "skip"),
                                             (3, [1, 2], "zero")])
def test_ged_equals_brute_force(C, classes, empty):
    s, y, u, v = random_case(N=4, M=3, C=C, empty=C == 2)
    got = mose.ged(s, y, u, v, num_classes=C, eval_class_ids=classes, empty_distance=empty,
                   per_image=True)
    for b in range(len(s)):
        e = [brute_expectation(p, wp, q, wq, C, classes or range(C), empty)
             for p, wp, q, wq in ((s[b], u[b], y[b], v[b]), (s[b], u[b], s[b], u[b]),
                                  (y[b], v[b], y[b], v[b]))]
        np.testing.assert_allclose(got[b], 2 * e[0] - e[1] - e[2], atol=1e-7)
    assert np.isfinite(got).sum() >= 2
    assert mose.ged(s, y, u, v, num_classes=C, eval_class_ids=classes,
                    empty_distance=empty) == pytest.approx(np.nanmean(got))


def test_miou_equals_brute_force_matching():
    s, y, _, _ = random_case(N=4, M=2, empty=False)
    got = mose.miou(s, y, per_image=True)
    for b in range(len(s)):
        iou = np.array([[1 - brute_distance(p, q, 2, None, "zero") for q in y[b]] for p in s[b]])
        tiled = np.tile(iou, (1, 2))  # (N, N): every annotation twice
        best = max(np.mean(tiled[range(4), list(p)]) for p in itertools.permutations(range(4)))
        np.testing.assert_allclose(got[b], best, atol=1e-7)


@pytest.mark.filterwarnings("ignore:Problem infeasible")  # transport over NaN distances
@pytest.mark.parametrize("empty,matching", [("zero", "hungarian"), ("skip", "ot")])
def test_wrappers_equal_the_project_functions(empty, matching):
    s, y, u, v = random_case(C=3)
    for w in (None, u):
        ged, miou = ged_miou(torch.as_tensor(s), torch.as_tensor(y),
                             None if w is None else torch.as_tensor(w), torch.as_tensor(v),
                             num_classes=3, eval_class_ids=[1, 2], empty_distance=empty,
                             matching=matching)
        kwargs = dict(num_classes=3, eval_class_ids=[1, 2], empty_distance=empty, per_image=True)
        np.testing.assert_array_equal(mose.ged(s, y, w, v, **kwargs), ged.numpy())
        np.testing.assert_array_equal(mose.miou(s, y, w, v, matching=matching, **kwargs),
                                      miou.numpy())


def test_ece_and_mode_calibration_equal_the_project_functions():
    s, y, u, v = random_case(C=3, empty=False)
    probs = torch.softmax(torch.randn(3, 8, 3, 6, 5, generator=torch.Generator().manual_seed(0)),
                          dim=2)  # (B, N, C, H, W)
    reference = StreamingECE(3, [1, 2])
    reference.update(probs, torch.as_tensor(u), torch.as_tensor(y), torch.as_tensor(v))
    assert mose.ece(probs, y, u, v, eval_class_ids=[1, 2]) == reference.compute() > 0
    modes, mode_probs = y[:, :3], np.tile([0.5, 0.3, 0.2], (3, 1))  # (B, T, H, W), (B, T)
    want = calibration_of_modes(torch.as_tensor(s), torch.as_tensor(u), torch.as_tensor(modes),
                                torch.as_tensor(mode_probs), 3, [1, 2])
    got = mose.mode_calibration(s, modes, mode_probs, u, num_classes=3, eval_class_ids=[1, 2])
    for key, value in (("predicted", "predicted"), ("mode_mass_error", "mae"),
                       ("total_variation", "tv"), ("nearest", "nearest")):
        np.testing.assert_array_equal(getattr(got, key), want[value].numpy())
    assert got.mean_mode_mass_error == pytest.approx(float(want["mae"].mean()))


def test_numpy_torch_and_one_image_inputs_agree():
    s, y, u, v = random_case()
    probs = np.eye(2)[s].transpose(0, 1, 4, 2, 3) * 0.8 + 0.1  # (B, N, C, H, W)
    modes, mode_probs = y[:, :2], np.full((3, 2), 0.5)  # (B, T, H, W), (B, T)
    calls = {"ged": lambda t: mose.ged(t(s), t(y), t(u), t(v), per_image=True),
             "miou": lambda t: mose.miou(t(s), t(y), t(u), t(v), per_image=True),
             "ece": lambda t: mose.ece(t(probs), t(y), t(u), t(v)),
             "modes": lambda t: mose.mode_calibration(t(s), t(modes), t(mode_probs),
                                                      t(u)).predicted}
    for name, call in calls.items():
        np.testing.assert_array_equal(call(np.asarray), call(torch.as_tensor), err_msg=name)
    one = mose.ged(s[1], y[1], u[1], v[1], per_image=True)  # (N, H, W), (M, H, W), (N,), (M,)
    assert one.shape == (1,) and one[0] == mose.ged(s, y, u, v, per_image=True)[1]


def test_num_samples_scores_a_prefix_and_bad_inputs_are_named():
    s, y, u, _ = random_case()
    assert mose.ged(s, y, num_samples=3) == mose.ged(s[:, :3], y)
    with pytest.raises(ValueError, match="weighted"):
        mose.ged(s, y, u, num_samples=3)
    with pytest.raises(ValueError, match="9, but 8 samples"):
        mose.ged(s, y, num_samples=9)
    with pytest.raises(ValueError, match="sum to one"):
        mose.ged(s, y, 2 * u)
    with pytest.raises(ValueError, match="images and sizes must agree"):
        mose.miou(s, y[:, :, :4])
    with pytest.raises(ValueError, match="empty_distance"):
        mose.ged(s, y, empty_distance="none")


def test_distinct_modes_merges_identical_masks():
    a, b = np.zeros((3, 3), np.uint8), np.eye(3, dtype=np.uint8)
    masks, probs = mose.distinct_modes(np.stack([b, a, b, a, a]), [0.1, 0.2, 0.3, 0.1, 0.3])
    np.testing.assert_array_equal(masks, np.stack([a, b]))
    np.testing.assert_allclose(probs, [0.6, 0.4])
    masks, probs = mose.distinct_modes(np.stack([b, a]))  # a tie: first appearance first
    np.testing.assert_array_equal(masks, np.stack([b, a]))
    np.testing.assert_allclose(probs, [0.5, 0.5])


def test_predict_equals_the_files_of_predict_on_a_folder(tmp_path):
    """A checkpoint in the run folder: `load_model` finds it, and `predict` on an array gives
    the arrays `main.py --predict` writes for the same images saved as .npy files."""
    sets = [f"log_root={tmp_path / 'log'}", "test_batch_size=2"]
    untrained = mose.load_model(CONFIG, checkpoint=False, overrides=sets)
    state = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v
             for k, v in untrained.state_dict().items()}
    run = tmp_path / "log" / "synthetic" / "synthetic_lidc_paper"
    run.mkdir(parents=True)
    torch.save(state, run / "synthetic_lidc_paper_best_ged.pth")
    model = mose.load_model(CONFIG, overrides=sets)
    torch.testing.assert_close(model.state_dict(), state, rtol=0, atol=0)
    images = np.random.default_rng(0).normal(3.0, 2.0, (3, 1, 32, 32)).astype(np.float32)
    (tmp_path / "in").mkdir()
    for i, image in enumerate(images):
        np.save(tmp_path / "in" / f"im{i}.npy", image[0])
    main.main([CONFIG, "--predict", str(tmp_path / "in"), "--out", str(tmp_path / "out"),
               "--no-figures", "--device", "cpu", *(x for s in sets for x in ("--set", s))])
    pred = mose.predict(model, images)
    for i in range(3):
        with np.load(tmp_path / "out" / f"im{i}_prediction.npz") as f:
            for name, got in (("samples", pred.samples), ("sample_weights", pred.weights),
                              ("expert_probs", pred.pi), ("mean_prob", pred.mean_prob),
                              ("mutual_information", pred.mutual_information)):
                np.testing.assert_array_equal(got[i], f[name], err_msg=name)
    assert pred.samples.shape == (3, 16, 32, 32) and pred.pi.shape == (3, 4)
    np.testing.assert_allclose([p.sum() for p in pred.mode_probs], 1, atol=1e-6)
    other_seed = mose.predict(model, images, seed=1)
    assert not np.array_equal(other_seed.mean_prob, pred.mean_prob)


def test_load_model_options(tmp_path):
    before = torch.random.get_rng_state()
    one, two = (mose.load_model(CONFIG, checkpoint=False) for _ in range(2))
    torch.testing.assert_close(one.state_dict(), two.state_dict(), rtol=0, atol=0)  # seeded
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG untouched
    assert one.config.experiment_name == "synthetic_lidc_paper" and not one.training
    with pytest.raises(FileNotFoundError, match="checkpoint=False"):
        mose.load_model(CONFIG, overrides=[f"log_root={tmp_path}"])
    theirs = tmp_path / "theirs.pth"  # the authors' files: DataParallel's `module.` prefix
    torch.save({f"module.{k}": v + 1 for k, v in one.state_dict().items()}, theirs)
    loaded = mose.load_model(CONFIG, checkpoint=theirs)
    assert torch.equal(loaded.mu, one.mu + 1)
    with pytest.raises(ValueError, match="does not fit"):
        mose.load_model(CONFIG, checkpoint=theirs, overrides=["num_expert=5"])
    with pytest.raises(ValueError, match="predict reads the settings"):
        mose.predict(torch.nn.Conv2d(1, 1, 1), np.zeros((1, 1, 4, 4)))


def test_predict_with_a_baseline_and_with_standard_samples():
    ssn = mose.load_model("experiments/synthetic_lidc_ssn.py", checkpoint=False)
    images = np.random.default_rng(1).normal(size=(1, 32, 32))  # one (C_in, H, W) image
    pred = mose.predict(ssn, images, num_samples=6)
    assert pred.pi is None and pred.samples.shape == (1, 6, 32, 32)
    masks, probs = mose.distinct_modes(pred.samples[0], pred.weights[0])
    np.testing.assert_array_equal(pred.modes[0], masks)
    np.testing.assert_array_equal(pred.mode_probs[0], probs)
    model = mose.load_model(CONFIG, checkpoint=False)
    standard = mose.predict(model, images, num_samples=5)
    assert standard.weights.shape == (1, 5) and model.eval_sample_num is None
    np.testing.assert_allclose(standard.weights, 0.2)
