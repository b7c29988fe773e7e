"""Every config in experiments/ loads and builds its model; the paper configs keep the paper's
settings; the small ones run a forward pass on the CPU."""

from pathlib import Path

import pytest
import torch

from utils.build import build_loss, build_model
from utils.config.config import load_config
from utils.loss import objective
from utils.loss.ot_loss import OTLoss

CONFIGS = sorted(str(p) for p in Path("experiments").glob("*.py"))
PAPER = ("lidc_proposed", "lidc_proposed_1annot", "cityscapes_proposed")
PARAMS = dict(lidc_proposed=9_321_195, lidc_proposed_1annot=9_321_195,
              cityscapes_proposed=9_329_628)
BASELINES = ("lidc_prob_unet", "lidc_ssn", "synthetic_lidc_prob_unet", "synthetic_lidc_ssn")


def test_the_expected_configs_exist():
    names = {Path(p).stem for p in CONFIGS}
    assert set(PAPER) | {"synthetic_lidc", "synthetic_cityscapes"} <= names
    assert set(BASELINES) <= names


@pytest.mark.parametrize("path", CONFIGS)
def test_config_loads_and_builds(path):
    cfg = load_config(path)
    name = Path(path).stem
    assert cfg.experiment_name == name
    model = build_model(cfg)
    loss_fn = build_loss(cfg)
    if isinstance(loss_fn, OTLoss):  # MoSE's loss starts at the config's capacity and grouping
        assert loss_fn.gamma == cfg.gamma0 and loss_fn.G == cfg.G0
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if name in PARAMS:
        assert n_params == PARAMS[name]
        return
    # small configs: one forward in train mode on a tiny input
    H, W = 16, 32
    x = torch.randn(2, cfg.input_channels, H, W)
    labels = torch.randint(0, cfg.n_classes, (2, 3, H, W))
    probs = torch.full((2, 3), 1 / 3)
    out = model(x, label=labels, label_probs=probs)
    N = dict(mose=cfg.num_expert * cfg.sample_per_mode, prob_unet=1, ssn=cfg.ssn_mc_samples)
    assert out["pred"].shape == (2, N[cfg.method], cfg.n_classes, H, W)
    assert torch.allclose(out["weights"].sum(1), torch.ones(2))
    loss, _, _ = objective(loss_fn)(out, labels, probs)
    assert torch.isfinite(loss)


def test_lidc_paper_settings():
    cfg = load_config("experiments/lidc_proposed.py")
    assert (cfg.beta, cfg.gamma0, cfg.cost_fn) == (1.0, 0.5, "iou")
    assert (cfg.num_expert, cfg.sample_per_mode, cfg.latent_dim) == (4, 4, 1)
    assert cfg.num_filters == [32, 64, 128, 192, 192, 192, 192]
    assert (cfg.train_batch_size, cfg.epochs, cfg.lr, cfg.weight_decay) == (16, 200, 1e-3, 1e-5)
    assert cfg.gamma_scheduler_options == dict(values=[1.0], patience=10)
    assert cfg.S_scheduler_options is None and cfg.G_scheduler_options is None
    assert (cfg.softmax, cfg.masked_pred, cfg.n_classes, cfg.eval_class_ids) == (True, False, 2,
                                                                                   [1])
    assert cfg.scheduler_options == dict(mode="min", factor=0.5, patience=10, min_lr=1e-5)
    assert cfg.scheduler_mean == "running" and cfg.data_folder == "../data/lidc_npy"
    one = load_config("experiments/lidc_proposed_1annot.py")
    assert one.label_range == [0] and one.beta == 10.0


def test_cityscapes_paper_settings():
    cfg = load_config("experiments/cityscapes_proposed.py")
    assert (cfg.cost_fn, cfg.gamma0, cfg.G0, cfg.num_chunks) == ("ce", 1 / 32, 1.0, 16)
    assert (cfg.num_expert, cfg.sample_per_mode, cfg.latent_dim) == (35, 1, 5)
    assert (cfg.train_batch_size, cfg.epochs) == (12, 1000)
    assert (cfg.masked_pred, cfg.softmax, cfg.n_classes) == (True, False, 25)
    assert cfg.eval_class_ids == [2, 12, 14, 9, 1, 20, 21, 22, 23, 24]
    assert cfg.use_bbpred and cfg.input_channels == 4
    assert cfg.gamma_scheduler_options == dict(values=[1.0], patience=30)
    assert cfg.S_scheduler_options == dict(values=[2], patience=30)
    assert cfg.G_scheduler_options == dict(values=[0.95, 0.925, 0.9], patience=30)
    assert (cfg.logging_frequency, cfg.validation_frequency) == (2, 2)
    assert cfg.data_folder == "../data/cityscape_npy_5"


def test_baseline_settings_are_the_published_ones():
    prob = load_config("experiments/lidc_prob_unet.py")
    assert (prob.method, prob.prob_unet_latent_dim, prob.beta, prob.lr) == ("prob_unet", 6, 1.0,
                                                                           1e-4)
    assert (prob.train_batch_size, prob.weight_decay) == (32, 1e-5)
    ssn = load_config("experiments/lidc_ssn.py")
    assert (ssn.method, ssn.ssn_rank, ssn.ssn_mc_samples) == ("ssn", 10, 20)
    assert (ssn.train_batch_size, ssn.lr) == (12, 1e-3)
    for cfg in (prob, ssn):
        assert cfg.num_filters == [32, 64, 128, 192, 192, 192, 192]
        assert cfg.gamma_scheduler_options is None  # MoSE's schedules do not apply
    base = load_config("experiments/synthetic_lidc_paper.py")
    for name in ("prob_unet", "ssn"):  # the synthetic ones share MoSE's data and protocol
        cfg = load_config(f"experiments/synthetic_lidc_{name}.py")
        same = ("data_folder", "num_filters", "train_batch_size", "lr_schedule",
                "synthetic_options", "eval_sample_num", "val_batch_size", "test_batch_size")
        assert {k: cfg[k] for k in same} == {k: base[k] for k in same}


def test_any_mose_config_runs_a_baseline_with_set_method():
    cfg = load_config("experiments/synthetic_lidc.py", ["method=ssn"])
    assert cfg.gamma_scheduler_options is None  # ignored for the baselines
    assert type(build_model(cfg)).__name__ == "SSN"
    assert type(build_loss(cfg)).__name__ == "SSNLoss"


def test_lighter_backbone_and_no_bbpred_just_work():
    cfg = load_config("experiments/lidc_proposed.py", ["num_filters=[32, 64, 128, 192]"])
    out = build_model(cfg)(torch.randn(1, 1, 24, 24))
    assert out["pred"].shape == (1, 16, 2, 24, 24)
    cfg = load_config("experiments/cityscapes_proposed.py", ["use_bbpred=False"])
    model = build_model(cfg)
    assert model.backbone.contracting_path[0].layers[0].in_channels == 3
