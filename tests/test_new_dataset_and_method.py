"""A dataset and a method defined here alone, registered by name, run through the whole command
line: training (with the test after it), `--demo test`, `--predict` and the review pages.

Nothing outside this file knows them: the config names them (`dataset = "toy"`, `method =
"noisy_logits"`) and every particular comes from their specs (`data.specs`, `utils.methods`).
"""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import main
from data.specs import DatasetSpec, register_dataset
from tests.test_review_page import parse_page
from utils.config.config import ConfigError, load_config
from utils.methods import MethodSpec, register_method

H = W = 16
SAMPLES = 3  # the method's samples per image when eval_sample_num is None


class ToySplit(Dataset):
    """`<data_folder>/<split>.npz`: two-channel images, two annotations each (a bright disc,
    class 1 for one rater and class 2 for the other), equally likely: also the true modes."""

    def __init__(self, root: str, split: str):
        with np.load(Path(root) / f"{split}.npz") as f:
            self.x, self.labels = f["x"], f["labels"]  # (n, 2, H, W) float32, (n, 2, H, W)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple:
        return (torch.from_numpy(self.x[i]), torch.from_numpy(self.labels[i]).long(),
                torch.full((2,), 0.5))

    def true_modes(self, i: int) -> tuple:
        return self.labels[i], np.array([0.5, 0.5])


def write_toy(root: Path, counts=(("train", 24), ("val", 8), ("test", 6))) -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:H, :W]
    root.mkdir(parents=True, exist_ok=True)
    for split, n in counts:
        centres = rng.uniform(4, 12, size=(n, 2))
        discs = (yy - centres[:, :1, None]) ** 2 + (xx - centres[:, 1:, None]) ** 2 < 9  # (n,H,W)
        x = np.stack([discs + 0.3 * rng.normal(size=discs.shape),
                      rng.normal(size=discs.shape)], 1).astype(np.float32)  # (n, 2, H, W)
        labels = np.stack([discs * 1, discs * 2], 1).astype(np.uint8)  # (n, 2, H, W)
        np.savez(root / f"{split}.npz", x=x, labels=labels)


TOY = register_dataset(DatasetSpec(
    name="toy", build=lambda folder, split, options: ToySplit(folder, split),
    channels=lambda settings: (2, (2,)), num_classes=3, annotations=2,
    palette=((0, 0, 0), (230, 25, 75), (0, 130, 200)), class_names=("background", "a", "b"),
    gate_views="flip_lr"))


class NoisyLogits(nn.Module):
    """Logits of one 3×3 convolution plus Gaussian noise of a learnt scale; N samples per image,
    uniformly weighted."""

    def __init__(self, input_channels: int, num_classes: int, eval_sample_num: int):
        super().__init__()
        self.conv = nn.Conv2d(input_channels, num_classes, 3, padding=1)
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.num_classes, self.eval_sample_num, self.softmax = num_classes, eval_sample_num, True

    def forward(self, x, label=None, generator=None, label_probs=None):
        B, _, H_, W_ = x.shape
        N = 2 if self.training else self.eval_sample_num
        eps = torch.randn((B, N, self.num_classes, H_, W_), generator=generator)  # (B,N,C,H,W)
        pred = torch.softmax(self.conv(x)[:, None] + self.log_scale.exp() * eps, dim=2)
        return dict(pred=pred, weights=x.new_full((B, N), 1.0 / N))


def expected_nll(out, labels, label_probs):
    """NLL of every annotation under the mean sample, weighted by the annotation weights."""
    logp = out["pred"].clamp_min(1e-8).log().mean(1)  # (B, C, H, W)
    B, M = labels.shape[:2]
    nll = -logp[:, None].expand(B, M, *logp.shape[1:]).gather(2, labels[:, :, None])  # (B,M,1,H,W)
    loss = (nll.mean((2, 3, 4)) * label_probs).sum(1).mean()
    return loss, loss.detach(), loss.new_zeros(())


def check_noisy_logits(settings) -> None:
    if not settings["softmax"]:
        raise ValueError("noisy_logits returns probabilities: set softmax=True")


NOISY = register_method(MethodSpec(
    name="noisy_logits",
    build_model=lambda s: NoisyLogits(s["input_channels"], s["n_classes"],
                                      s["eval_sample_num"] or SAMPLES),
    build_loss=lambda s: expected_nll, eval_samples=SAMPLES, check=check_noisy_logits))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    write_toy(root / "data")
    config = root / "toy.py"
    config.write_text("\n".join([
        'experiment_name = "toy"', 'log_dir_name = "toy"', 'dataset = "toy"',
        'method = "noisy_logits"', f'data_folder = "{root / "data"}"',
        f'log_root = "{root / "log"}"', f'run_root = "{root / "runs"}"', "epochs = 2",
        "train_batch_size = 8", "val_batch_size = 4", "test_batch_size = 3", "lr = 1e-2",
        'lr_schedule = "cosine"', "num_figures = 2", "test_after_training = True", ""]))
    results = main.main([str(config), "--device", "cpu"])
    return root, config, results


def test_the_specs_give_the_settings(toy):
    _, config, _ = toy
    cfg = load_config(str(config))
    assert (cfg.n_classes, cfg.eval_class_ids, cfg.input_channels) == (3, [1, 2], 2)
    # MoSE's schedules and extensions are switched off for a method that does not name them
    assert cfg.gamma_scheduler_options is None and cfg.gate_refit_steps == 0
    with pytest.raises(ConfigError, match="noisy_logits returns probabilities"):
        load_config(str(config), ["softmax=False"])
    with pytest.raises(ConfigError, match="contradicts dataset='toy'"):
        load_config(str(config), ["input_channels=3"])


def test_training_tests_the_best_checkpoint_with_the_reports(toy):
    root, _, results = toy
    run = root / "log" / "toy" / "toy"
    assert results["num_images"] == 6 and results["num_samples"] == SAMPLES
    assert results["representation"] == "standard" and math.isfinite(results["ged"])
    assert math.isfinite(results["true_ged"]) and 0 <= results["mode_mass_error"] <= 1
    assert (run / "toy_best_ged.pth").is_file()
    saved = json.loads((run / "test" / f"results_standard_N{SAMPLES}.json").read_text())
    assert saved["ged"] == results["ged"]
    assert (run / "test" / "figures" / "sample_grid_1.png").is_file()
    assert json.loads((run / "test" / "mode_calibration.json").read_text())["num_images"] == 6
    page = parse_page(run / "test" / "index.html")
    assert len(page["rows"]) == 6 and all(r["ged"] is not None for r in page["rows"])
    with open(run / "test" / "per_image.csv") as f:
        assert len(list(csv.DictReader(f))) == 6


def test_demo_test_repeats_the_test_results(toy):
    root, config, results = toy
    demo = main.main([str(config), "--demo", "test", "--device", "cpu"])
    assert demo["ged"] == results["ged"] and demo["miou"] == results["miou"]


def test_predict_writes_the_arrays_and_the_review_page(toy):
    root, config, _ = toy
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(images / f"img{i}.npy", rng.normal(size=(2, H, W)).astype(np.float32))
    out = root / "predictions"
    done = main.main([str(config), "--predict", str(images), "--out", str(out),
                      "--device", "cpu"])
    assert done["num_written"] == 3
    with np.load(out / "img0_prediction.npz") as f:
        assert f["samples"].shape == (SAMPLES, H, W) and f["mean_prob"].shape == (3, H, W)
        assert f["sample_weights"] == pytest.approx([1 / SAMPLES] * SAMPLES)
    page = parse_page(out / "index.html")
    assert sorted(r["id"] for r in page["rows"]) == ["img0.npy", "img1.npy", "img2.npy"]
    assert all((out / r["strip"]).is_file() for r in page["rows"])
