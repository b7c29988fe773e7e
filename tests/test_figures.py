"""Figures: palettes, sample grids, reliability diagram, sweep and calibration plots, the
TensorBoard grid, and the files `--demo test` writes."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import main
from data.specs import dataset_spec
from utils import build
from utils.evaluation.metrics import StreamingECE
from utils.reports.figures import (
    calibration_figure,
    class_names,
    colorize,
    display_image,
    label_palette,
    predictive_maps,
    reliability_figure,
    sample_grid_figure,
    save_figure,
    sweep_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_MAGIC
    return imread(path)


def test_importing_the_module_needs_no_matplotlib():
    code = "import sys, utils.reports.figures; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_palettes():
    city = dataset_spec("cityscapes")
    assert len({tuple(c) for c in city.palette}) == 25  # flipped copies distinct too
    assert label_palette(25, city)[12].tolist() == [220, 20, 60]  # person, Cityscapes colour
    assert label_palette(25)[12].tolist() != [220, 20, 60]  # 25 classes of another dataset
    assert label_palette(2).tolist() == [[0, 0, 0], [255, 255, 255]]
    assert len({tuple(c) for c in label_palette(7)}) == 7
    image = colorize(np.array([[0, 24], [1, 20]]), 25, city)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    assert class_names(25, city)[12] == "person" and class_names(3)[2] == "class 2"


def _item(num_classes, in_channels, M, K, S, seed=0):
    g = torch.Generator().manual_seed(seed)
    N, H, W = K * S, 16, 16
    probs = torch.softmax(torch.randn(N, num_classes, H, W, generator=g), 1)
    weights = (torch.softmax(torch.randn(K, generator=g), 0) / S).repeat_interleave(S)
    marginal, entropy = predictive_maps(probs, weights)
    return dict(image=torch.randn(in_channels, H, W, generator=g),
                labels=torch.randint(0, num_classes, (M, H, W), generator=g),
                label_probs=torch.softmax(torch.randn(M, generator=g), 0),
                samples=probs.argmax(1), weights=weights, expert_probs=weights.view(K, S).sum(1),
                compact=True, marginal=marginal, entropy=entropy)


def test_predictive_maps():
    probs = torch.tensor([[[[1.0]], [[0.0]]], [[[0.0]], [[1.0]]]])  # (N=2, C=2, 1, 1)
    marginal, entropy = predictive_maps(probs, torch.tensor([0.5, 0.5]))
    assert marginal[:, 0, 0].tolist() == [0.5, 0.5]
    assert entropy[0, 0] == pytest.approx(np.log(2))


@pytest.mark.parametrize("num_classes,in_channels,M,K,S", [(2, 1, 4, 4, 4), (25, 4, 32, 35, 1)])
def test_sample_grid_png(tmp_path, num_classes, in_channels, M, K, S):
    spec = dataset_spec("cityscapes" if num_classes == 25 else "lidc")
    fig = sample_grid_figure(_item(num_classes, in_channels, M, K, S), num_classes, "test", spec)
    image = read_png(save_figure(fig, tmp_path / "grid.png"))
    titles = [ax.get_title() for ax in fig.axes]
    assert sum(bool(re.match(r"annotation \d+  p=", t)) for t in titles) == min(M, 8)
    assert sum(bool(re.match(r"expert \d+  w=", t)) for t in titles) == min(K * S, 16)
    assert "entropy (nats)" in titles and image.shape[0] > 300 and image.shape[1] > 300
    if num_classes == 25:
        assert fig.legends and "black-box pred." in titles


def test_reliability_diagram_matches_the_ece():
    ece = StreamingECE(2, [1])
    g = torch.Generator().manual_seed(0)
    pred = torch.softmax(torch.randn(2, 4, 2, 8, 8, generator=g), 2)
    ece.update(pred, torch.full((2, 4), 0.25), torch.randint(0, 2, (2, 4, 8, 8), generator=g),
               torch.full((2, 4), 0.25))
    bins = ece.bins()
    assert sum(bins["count"]) <= bins["total"] == 128 and len(bins["edges"]) == 11
    fig = reliability_figure(bins)
    assert f"ECE {100 * ece.compute():.2f}%" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[1].texts] == [f"{int(c):,}" for c in bins["count"]]


def test_sweep_and_calibration_figures(tmp_path):
    ci = dict(mean=0.3, ci_low=0.25, ci_high=0.35, num_images=10)
    sweep = dict(num_expert=4, standard=[dict(num_samples=n, ged=ci, miou=ci) for n in (1, 4)],
                 compact=[dict(num_samples=4, sample_per_mode=1, ged=ci, miou=ci)])
    read_png(save_figure(sweep_figure(sweep), tmp_path / "sweep.png"))
    by_rank = dict(true=[0.6, 0.4], predicted=[0.5, 0.5], num_images=[2, 2])
    cal = dict(num_images=2, mae=ci, tv=ci, by_rank=by_rank,
               per_image=[dict(tv=0.1), dict(tv=0.2)],
               flips={c: dict(true=0.4, predicted=0.3) for c in ("sidewalk", "car")})
    fig = calibration_figure(cal)
    assert len(fig.axes) == 3
    read_png(save_figure(fig, tmp_path / "cal.png"))


class FakeWriter:
    def __init__(self):
        self.figures = []

    def add_figure(self, tag, figure, global_step=None):
        self.figures.append((tag, figure, global_step))


def tiny_run(tmp_path):
    return ["--device", "cpu",
            "--set", f"data_folder={tmp_path / 'data'}", "--set", f"log_root={tmp_path / 'log'}",
            "--set", f"run_root={tmp_path / 'runs'}",
            "--set", "synthetic_options={'n_train': 4, 'n_val': 2, 'n_test': 3, 'size': 16}",
            "--set", "num_filters=[4, 8]", "--set", "sample_per_mode=2", "--set", "epochs=1",
            "--set", "gamma0=0.125",  # N = 8 samples: the exact coupling needs N·γ >= 1
            "--set", "train_batch_size=4", "--set", "val_batch_size=2",
            "--set", "test_batch_size=2", "--set", "max_train_minutes=None",
            "--set", "test_after_training=False", "--set", "num_figures=2"]


def test_demo_test_writes_figures_calibration_and_sweep(tmp_path):
    main.main(["experiments/synthetic_lidc.py", *tiny_run(tmp_path)])
    main.main(["experiments/synthetic_lidc.py", "--demo", "test", *tiny_run(tmp_path),
               "--set", "sweep=True", "--set", "sweep_counts=[1, 4]"])
    split = tmp_path / "log" / "synthetic" / "synthetic_lidc" / "test"
    for name in ("sample_grid_0.png", "sample_grid_1.png", "reliability_compact_S2.png"):
        read_png(split / "figures" / name)
    assert not (split / "figures" / "sample_grid_2.png").exists()
    cal = json.loads((split / "mode_calibration.json").read_text())
    assert cal["num_images"] == 3 and 0 <= cal["mae"]["mean"] <= 1 and 0 <= cal["tv"]["mean"] <= 1
    results = json.loads((split / "results_compact_S2.json").read_text())
    assert cal["mae"]["mean"] == pytest.approx(results["mode_mass_error"])  # one implementation
    sweep = json.loads((split / "sweep.json").read_text())
    assert [e["num_samples"] for e in sweep["standard"]] == [1, 4]
    assert all({"mean", "ci_low", "ci_high"} <= set(e["ged"]) for e in sweep["standard"])
    read_png(split / "sweep.png")
    read_png(split / "mode_calibration.png")


def test_tensorboard_sample_grid(tmp_path):
    from data import build_dataloaders
    from utils.config.config import load_config
    from utils.reports.analyses import tensorboard_sample_grid

    cfg = load_config("experiments/synthetic_lidc.py", tiny_run(tmp_path)[3::2])
    build.prepare_data(cfg)
    loader = build_dataloaders("lidc", cfg.data_folder, splits=("val",))["val"]
    model = build.build_model(cfg).train()
    writer = FakeWriter()
    tensorboard_sample_grid(writer, model, loader, cfg, torch.device("cpu"), step=3)
    assert model.training and len(writer.figures) == 1
    tag, fig, step = writer.figures[0]
    assert tag == "val/sample_grid" and step == 3 and len(fig.axes) >= 4 + 4 + 8
    tensorboard_sample_grid(None, model, loader, cfg, torch.device("cpu"), step=3)  # no writer


def test_rgb_inputs_are_shown_by_their_own_normalisation():
    x = torch.randn(3, 5, 6) * 3 + 1  # a per-image standardised RGB input (folder dataset)
    shown = display_image(x, dataset_spec("folder"))
    assert shown.shape == (5, 6, 3) and shown.min() == 0 and shown.max() == pytest.approx(1)
    np.testing.assert_allclose(shown, ((x - x.min()) / (x.max() - x.min())).permute(1, 2, 0),
                               atol=1e-6)
    city = dataset_spec("cityscapes")
    shown = display_image(x, city)  # the Cityscapes normalisation undone, clipped
    assert shown.min() >= 0 and shown.max() <= 1
    std, mean = np.asarray(city.image_std), np.asarray(city.image_mean)
    np.testing.assert_allclose(shown, np.clip(x.permute(1, 2, 0).numpy() * std + mean, 0, 1),
                               atol=1e-6)
    grey = display_image(torch.tensor([[[2.0, 4.0], [3.0, 2.0]]]))  # one channel: min-max
    np.testing.assert_allclose(grey, [[0.0, 1.0], [0.5, 0.0]])
