"""Your own data end to end (check, two training steps, evaluation, prediction on a folder) and
one test per bad prediction input. The tiny dataset is `tests/test_data_folder.write_tiny`:
RGB 13x17 images, 3 classes, 2-5 raters per image."""

import csv
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import main
from tests.independent import assert_reported_figures
from tests.test_data_folder import C, H, W, write_tiny
from utils.config.config import ConfigError, load_config

CONFIG = "experiments/folder_example.py"


def run_args(root: Path, *extra: str) -> list:
    """A tiny CPU run of the folder example config on the tiny dataset under root."""
    return [CONFIG, "--device", "cpu", "--set", f"data_folder={root / 'data'}",
            "--set", f"log_root={root / 'log'}", "--set", f"run_root={root / 'runs'}",
            "--set", f"n_classes={C}", "--set", "input_channels=None",  # read from the files
            "--set", "num_filters=[4, 8]", "--set", "latent_dim=1", "--set", "num_expert=2",
            "--set", "sample_per_mode=2", "--set", "epochs=1", "--set", "gamma0=0.5",
            "--set", "train_batch_size=3", "--set", "val_batch_size=3",
            "--set", "test_batch_size=2", "--set", "num_figures=1",
            "--set", "max_train_minutes=None", "--set", "test_after_training=True", *extra]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny dataset, trained for one epoch of two steps, then tested."""
    root = tmp_path_factory.mktemp("folder_run")
    write_tiny(root / "data")
    results = main.main(run_args(root))
    return root, results


def predict(root: Path, out: Path, *extra: str, source: Path = None) -> dict:
    source = source or root / "data" / "test" / "images"
    return main.main(run_args(root, "--predict", str(source), "--out", str(out), *extra))


def cli_error(monkeypatch, argv: list) -> str:
    """Run `main.cli` with `argv`; return its exit message (checked to be one 'error:' line)."""
    monkeypatch.setattr(sys, "argv", ["main.py", *argv])
    with pytest.raises(SystemExit) as info:
        main.cli()
    message = info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message
    return message


def test_training_and_evaluation_on_the_folder_dataset(trained):
    root, results = trained
    run = root / "log" / "folder" / "folder_example"
    log = (run / "log.txt").read_text()
    assert "checked, no problems" in log
    assert '"input_channels": 3' in log and '"eval_class_ids": [1, 2]' in log  # derived
    metrics = (run / "metrics.jsonl").read_text()
    assert '"train_steps": 2' in metrics  # 6 images, batch 3
    # the reported figures are the brute-force figures of the trained checkpoint; after two
    # steps every sample may still be background, and two masks without an evaluated class
    # have no distance, so the GED may be undefined (NaN) for every image: both sides agree
    assert results["num_images"] == 3
    want = assert_reported_figures(results)
    assert math.isfinite(want["miou"]) and math.isfinite(want["ece"][0])
    assert (run / "test" / "figures" / "sample_grid_0.png").is_file()


def test_folder_config_derives_channels_and_evaluated_classes(tmp_path):
    write_tiny(tmp_path / "data")
    base = [f"data_folder={tmp_path / 'data'}", "input_channels=None", f"n_classes={C}"]
    cfg = load_config(CONFIG, base)
    assert cfg.input_channels == 3 and cfg.eval_class_ids == [1, 2]
    assert load_config(CONFIG, [*base, "eval_class_ids=[2]"]).eval_class_ids == [2]
    with pytest.raises(ConfigError, match="input_channels: no readable image"):
        load_config(CONFIG, [f"data_folder={tmp_path / 'none'}", "input_channels=None"])
    with pytest.raises(ConfigError, match="label_range"):
        load_config(CONFIG, ["label_range=[0]"])


def test_training_checks_the_dataset_first(trained, tmp_path, monkeypatch):
    shutil.copytree(trained[0] / "data", tmp_path / "data")
    shutil.rmtree(tmp_path / "data" / "val" / "annotations" / "img1")
    bad = tmp_path / "data" / "test" / "annotations" / "img0" / "anna.png"
    Image.fromarray(np.full((H, W), 9, np.uint8)).save(bad)
    message = cli_error(monkeypatch, run_args(tmp_path))
    assert "2 problem(s) in data_folder" in message and "img1.png: missing annotations" in message
    log = (tmp_path / "log" / "folder" / "folder_example" / "log.txt").read_text()
    assert str(bad) in log  # every problem is logged
    assert not list((tmp_path / "log" / "folder" / "folder_example").glob("*.pth"))


def test_predict_a_folder_writes_every_output(trained, tmp_path):
    root, _ = trained
    summary = predict(root, tmp_path / "out")
    assert summary["num_images"] == summary["num_written"] == 3
    rows = list(csv.DictReader(open(tmp_path / "out" / "predictions.csv")))
    assert [Path(r["file"]).name for r in rows] == ["img0.png", "img1.png", "img2.png"]
    assert {"pi_0", "pi_1", "mean_entropy_total", "mean_mutual_information"} <= set(rows[0])
    for row in rows:
        stem = Path(row["file"]).stem
        assert (tmp_path / "out" / f"{stem}_prediction.png").stat().st_size > 10_000
        with np.load(tmp_path / "out" / f"{stem}_prediction.npz") as f:
            a = dict(f)
        assert a["image"].shape == (3, H, W) and a["mean_prob"].shape == (C, H, W)
        np.testing.assert_allclose(a["mean_prob"].sum(0), 1, atol=1e-5)
        assert a["samples"].shape == (4, H, W) and a["samples"].max() < C  # K*S = 4
        np.testing.assert_allclose(a["sample_weights"].sum(), 1, atol=1e-6)
        np.testing.assert_allclose(a["expert_probs"].sum(), 1, atol=1e-6)
        assert a["expert_mean_prob"].shape == (2, C, H, W)
        mixture = np.einsum("k,kchw->chw", a["expert_probs"], a["expert_mean_prob"])
        np.testing.assert_allclose(mixture, a["mean_prob"], atol=1e-5)  # compact: Σ π_k mean_k
        total, expected, mi = a["entropy_total"], a["entropy_expected"], a["mutual_information"]
        assert (expected >= 0).all() and (total <= np.log(C) + 1e-5).all()
        np.testing.assert_allclose(mi, np.maximum(total - expected, 0), atol=1e-6)
        assert float(row["mean_entropy_total"]) == pytest.approx(total.mean(), abs=1e-4)


def test_predict_is_deterministic_for_an_eval_seed(trained, tmp_path):
    root, _ = trained
    arrays = {}
    for name, extra in (("a", ()), ("b", ()), ("seed1", ("--set", "eval_seed=1"))):
        predict(root, tmp_path / name, *extra)
        with np.load(tmp_path / name / "img1_prediction.npz") as f:
            arrays[name] = dict(f)
    for key, value in arrays["a"].items():
        np.testing.assert_array_equal(arrays["b"][key], value)
    assert not np.array_equal(arrays["seed1"]["mean_prob"], arrays["a"]["mean_prob"])


def test_predict_standard_representation(trained, tmp_path):
    root, _ = trained
    predict(root, tmp_path / "std", "--set", "eval_sample_num=5", "--no-figures",
            source=root / "data" / "val" / "images" / "img2.png")
    assert sorted(p.name for p in (tmp_path / "std").iterdir()) == [
        "img2_prediction.npz", "index.html", "predictions.csv"]  # --no-figures: no PNG
    with np.load(tmp_path / "std" / "img2_prediction.npz") as f:
        assert f["samples"].shape == (5, H, W)
        np.testing.assert_allclose(f["sample_weights"], 0.2)
        assert f["expert_mean_prob"].shape == (2, C, H, W)  # from a compact pass


# --- bad prediction inputs: each named in one line, the other images still written ---------


def _mixed_folder(tmp_path, trained, bad_name: str, write_bad) -> Path:
    """A folder with two good test images and one bad file."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for name in ("img0.png", "img1.png"):
        shutil.copy(trained[0] / "data" / "test" / "images" / name, folder / name)
    write_bad(folder / bad_name)
    return folder


def _assert_others_written(out: Path, bad: Path, message: str) -> None:
    assert str(bad) in message and "1 of 3 images failed" in message
    assert sorted(p.name for p in out.glob("*_prediction.npz")) == [
        "img0_prediction.npz", "img1_prediction.npz"]
    assert not list(out.glob(f"{bad.stem}_prediction*"))
    assert str(bad) in (out / "failures.txt").read_text()
    assert len(list(csv.DictReader(open(out / "predictions.csv")))) == 2


def test_wrong_channel_count_is_named(trained, tmp_path, monkeypatch):
    folder = _mixed_folder(tmp_path, trained, "grey.png", lambda p: Image.fromarray(
        np.zeros((H, W), np.uint8)).save(p))
    out = tmp_path / "out"
    message = cli_error(monkeypatch, run_args(trained[0], "--predict", str(folder), "--out",
                                              str(out)))
    assert "grey.png: 1 channel(s), the model takes 3" in message
    _assert_others_written(out, folder / "grey.png", message)


def test_unreadable_file_is_named(trained, tmp_path, monkeypatch):
    folder = _mixed_folder(tmp_path, trained, "broken.jpg", lambda p: p.write_bytes(b"no jpeg"))
    out = tmp_path / "out"
    message = cli_error(monkeypatch, run_args(trained[0], "--predict", str(folder), "--out",
                                              str(out)))
    assert "broken.jpg: unreadable image" in message
    _assert_others_written(out, folder / "broken.jpg", message)


def test_any_image_size_is_predicted_without_padding(trained, tmp_path):
    image = tmp_path / "odd.npy"
    np.save(image, np.random.default_rng(0).random((3, 9, 23)).astype(np.float32))
    predict(trained[0], tmp_path / "out", source=image)
    with np.load(tmp_path / "out" / "odd_prediction.npz") as f:
        assert f["mean_prob"].shape == (C, 9, 23) and f["samples"].shape[1:] == (9, 23)


def test_checkpoint_that_does_not_fit_the_config(trained, tmp_path, monkeypatch):
    message = cli_error(monkeypatch, run_args(
        trained[0], "--predict", str(trained[0] / "data" / "test" / "images"), "--out",
        str(tmp_path / "out"), "--set", "num_filters=[4, 16]"))
    assert "folder_example_best_ged.pth: checkpoint does not fit the model" in message
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_missing_input_and_empty_folder(trained, tmp_path, monkeypatch):
    missing = tmp_path / "nothing_here"
    message = cli_error(monkeypatch, run_args(trained[0], "--predict", str(missing), "--out",
                                              str(tmp_path / "out")))
    assert f"--predict {missing}: no such file or folder" in message
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    message = cli_error(monkeypatch, run_args(trained[0], "--predict", str(tmp_path / "empty"),
                                              "--out", str(tmp_path / "out")))
    assert "holds no image files" in message


def test_a_failing_write_leaves_nothing_partial(trained, tmp_path, monkeypatch):
    from utils.reports import prediction

    real = prediction.prediction_figure

    def flaky(x, arrays, num_classes, name, *args):
        if name == "img1.png":
            raise OSError("disk full")
        return real(x, arrays, num_classes, name, *args)

    monkeypatch.setattr(prediction, "prediction_figure", flaky)
    with pytest.raises(ValueError, match="img1.png: its outputs could not be written"):
        predict(trained[0], tmp_path / "out")
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["failures.txt", "img0_prediction.npz", "img0_prediction.png",
                     "img2_prediction.npz", "img2_prediction.png", "index.html",
                     "predictions.csv", "review"]
    assert sorted(p.name for p in (tmp_path / "out" / "review").iterdir()) == ["img0.png",
                                                                               "img2.png"]


def test_predict_needs_out(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["main.py", CONFIG, "--predict", "x.png"])
    with pytest.raises(SystemExit) as info:
        main.cli()
    assert info.value.code == 2 and "--predict INPUT needs --out DIR" in capsys.readouterr().err
