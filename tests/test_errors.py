"""Every user error ends with one actionable line and a non-zero exit, without a traceback unless
--debug is given (one test per case)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import main
from data.synthetic import make_lidc
from tests.helpers import FORWARD_WEIGHTS
from utils.evaluation import run as evaluation_run
from utils.loss.ot_loss import OTLoss
from utils.training import trainer


def cli_error(monkeypatch, *argv: str) -> str:
    """Run `main.cli` with `argv`; return its exit message (checked to be one 'error:' line)."""
    monkeypatch.setattr(sys, "argv", ["main.py", *argv])
    with pytest.raises(SystemExit) as info:
        main.cli()
    message = info.value.code
    assert isinstance(message, str) and message.startswith("error: "), message
    assert "\n" not in message
    return message


def tiny(tmp_path: Path, *extra: str, config: str = "experiments/synthetic_lidc.py") -> list:
    """Arguments of a tiny CPU run whose data and outputs live under tmp_path."""
    return [config, "--device", "cpu", "--set", f"data_folder={tmp_path / 'data'}",
            "--set", f"log_root={tmp_path / 'log'}", "--set", f"run_root={tmp_path / 'runs'}",
            "--set", "synthetic=None", "--set", "num_filters=[4, 8]", "--set", "epochs=2",
            "--set", "sample_per_mode=2", "--set", "gamma0=0.125",  # N·γ >= 1 (exact coupling)
            "--set", "train_batch_size=2",
            "--set", "val_batch_size=2", "--set", "test_batch_size=2", "--set", "num_figures=0",
            "--set", "max_train_minutes=None", "--set", "test_after_training=False", *extra]


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data"
    make_lidc(str(root), n_train=8, n_val=2, n_test=2, size=16, seed=0)
    return root


def test_missing_data_folder_names_it_and_the_build_command(monkeypatch, tmp_path):
    message = cli_error(monkeypatch, *tiny(tmp_path))
    assert f"data folder '{tmp_path / 'data'}' not found; build it with: " in message
    assert "python -m data.preprocess.build_lidc" in message
    assert f"python -m data.synthetic lidc {tmp_path / 'data'}" in message


def test_empty_image_folder(monkeypatch, tmp_path):
    for kind in ("images", "labels"):
        (tmp_path / "data" / "train" / kind).mkdir(parents=True)
    message = cli_error(monkeypatch, *tiny(tmp_path))
    assert f"'{tmp_path / 'data/train/images'}' holds no <i>.npy files" in message


def test_mismatched_image_and_label_folders(monkeypatch, tmp_path, data):
    (data / "train" / "labels" / "7.npy").unlink()
    message = cli_error(monkeypatch, *tiny(tmp_path))
    assert f"'{data / 'train/images'}' holds 8 files but '{data / 'train/labels'}' holds 7" \
        in message


def test_corrupt_npy_is_named(monkeypatch, tmp_path, data):
    (data / "train" / "images" / "3.npy").write_bytes(b"not an array")
    message = cli_error(monkeypatch, *tiny(tmp_path))
    assert f"'{data / 'train/images/3.npy'}' is not a readable .npy file" in message


def test_truncated_npy_is_named(monkeypatch, tmp_path, data):
    path = data / "val" / "labels" / "1.npy"
    path.write_bytes(path.read_bytes()[:-50])
    message = cli_error(monkeypatch, *tiny(tmp_path))
    assert f"'{path}' is truncated" in message and "rebuild the dataset" in message


def test_wrongly_shaped_npy_is_named(monkeypatch, tmp_path, data):
    np.save(data / "train" / "images" / "2.npy", np.zeros((3, 16, 16), np.float32))
    message = cli_error(monkeypatch, *tiny(tmp_path))
    assert f"'{data / 'train/images/2.npy'}' has shape (3, 16, 16), expected (H, W) = (16, 16)" \
        in message


def test_unknown_setting_suggests_the_closest(monkeypatch, tmp_path):
    message = cli_error(monkeypatch, *tiny(tmp_path, "--set", "epoch=3"))
    assert message == "error: unknown setting 'epoch' in --set; did you mean 'epochs'?"
    config = tmp_path / "mine.py"
    config.write_text("learnig_rate = 1e-3\n")
    message = cli_error(monkeypatch, str(config))
    assert message == f"error: unknown setting 'learnig_rate' in {config}; did you mean 'lr'?"


def test_set_value_of_the_wrong_type(monkeypatch, tmp_path):
    message = cli_error(monkeypatch, *tiny(tmp_path, "--set", "epochs=ten"))
    assert message == "error: --set epochs=ten: not a Python literal (expected int)"
    message = cli_error(monkeypatch, *tiny(tmp_path, "--set", "epochs=1.5"))
    assert message == "error: setting 'epochs' in --set: expected int, got float (1.5)"


def test_too_few_experts_for_the_latent_codes(monkeypatch, tmp_path):
    message = cli_error(monkeypatch, *tiny(tmp_path, "--set", "latent_dim=3"))
    assert "num_expert=4 < 2**latent_dim=8" in message and "raise num_expert" in message


def test_checkpoint_that_does_not_fit_names_key_and_shapes(monkeypatch, tmp_path, data):
    args = tiny(tmp_path, "--demo", "test", "--ckpt", str(FORWARD_WEIGHTS),
                "--set", "num_filters=[16, 16, 32, 32, 32, 32, 32]",
                config="experiments/lidc_proposed.py")
    message = cli_error(monkeypatch, *args)
    assert ("'backbone.contracting_path.0.layers.0.weight' has shape (8, 1, 3, 3) in the "
            "checkpoint but (16, 1, 3, 3) in the model built from the config") in message


def test_non_finite_loss_stops_and_keeps_the_best_checkpoint(monkeypatch, tmp_path, data):
    run = tmp_path / "log" / "synthetic" / "synthetic_lidc"
    best, calls, snapshot = run / "synthetic_lidc_best_ged.pth", [], {}
    forward, evaluate, train_one_epoch = OTLoss.forward, trainer.evaluate, trainer.train_one_epoch

    def nan_at_sixth_step(self, *args, **kwargs):
        calls.append(1)
        loss, seg, kl = forward(self, *args, **kwargs)
        return (loss * float("nan") if len(calls) == 6 else loss), seg, kl

    def worse_after_epoch_0(*args, **kwargs):
        # the validation outcome is forced, not hoped for: epoch 0 is the best, epoch 1 is worse,
        # so the best checkpoint on disk must stay the one written before training
        results = evaluate(*args, **kwargs)
        return dict(results, ged=0.5 if "best" not in snapshot else 0.9)

    def epoch_with_snapshot(*args, **kwargs):
        snapshot.setdefault("best", best.read_bytes())  # after the epoch-0 validation
        return train_one_epoch(*args, **kwargs)

    monkeypatch.setattr(OTLoss, "forward", nan_at_sixth_step)
    message = cli_error(monkeypatch, *tiny(tmp_path))  # 4 steps per epoch: epoch 2, step 1
    assert message == ("error: non-finite training loss (nan) at epoch 2, step 1; try a lower lr "
                       "or check the data")
    monkeypatch.setattr(trainer, "evaluate", worse_after_epoch_0)
    monkeypatch.setattr(trainer, "train_one_epoch", epoch_with_snapshot)
    calls.clear()
    cli_error(monkeypatch, *tiny(tmp_path))
    assert best.read_bytes() == snapshot["best"] and not (run / "synthetic_lidc_last.pth").exists()
    weights = torch.load(best, weights_only=True)
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_cuda_requested_but_absent(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = cli_error(monkeypatch, *tiny(tmp_path, "--device", "cuda"))
    assert message == ("error: device 'cuda' was requested but no CUDA GPU is available to "
                       "torch; use --device cpu")


def test_out_of_memory_suggests_a_smaller_batch_and_never_retries(monkeypatch, tmp_path, data):
    calls = []

    def out_of_memory(*args, **kwargs):
        calls.append(args)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.\n"
                                          "GPU 0 has a total capacity of 79 GiB")

    monkeypatch.setattr(trainer, "train_one_epoch", out_of_memory)
    message = cli_error(monkeypatch, *tiny(tmp_path, "--set", "train_batch_size=4"))
    assert message.startswith("error: CUDA out of memory with train_batch_size=4, "
                              "val_batch_size=2: use a smaller batch, e.g. --set "
                              "train_batch_size=2")
    assert message.endswith("the batch size is never lowered automatically")
    assert len(calls) == 1  # no silent retry with a smaller batch
    monkeypatch.setattr(evaluation_run, "evaluate", out_of_memory)  # --demo: epoch 0's best
    message = cli_error(monkeypatch, *tiny(tmp_path, "--demo", "test"))
    assert "CUDA out of memory with test_batch_size=2: use a smaller batch, e.g. --set " \
           "test_batch_size=1;" in message


def test_resume_and_demo_do_not_combine(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main.parse_args(["experiments/lidc_proposed.py", "--demo", "test", "--resume"])
    assert info.value.code == 2
    assert "--resume continues a training run" in capsys.readouterr().err


def test_command_line_prints_one_line_and_debug_shows_the_traceback(tmp_path):
    command = [sys.executable, "main.py", *tiny(tmp_path)]
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    # the last line is the whole message (a library may warn on earlier lines at import)
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data folder") and str(tmp_path / "data") in last
    debug = subprocess.run(command + ["--debug"], capture_output=True, text=True)
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "FileNotFoundError: data folder" in debug.stderr


def test_image_size_is_checked_against_the_training_data(tmp_path):
    """A config's image_size that the training inputs do not have stops the run before
    training, in one line naming the size the data has."""
    import random

    import numpy as np
    import torch

    from data.synthetic import make_lidc
    from utils.build import build_loaders
    from utils.config.config import load_config
    from utils.training.trainer import check_loaders

    make_lidc(str(tmp_path / "d"), n_train=4, n_val=2, n_test=2, size=32, seed=0)
    base = [f"data_folder='{tmp_path / 'd'}'", "train_batch_size=2", "val_batch_size=2"]
    cfg = load_config("experiments/synthetic_lidc_paper.py", base + ["image_size=[16, 16]"])
    loaders = build_loaders(cfg, ("train", "val"))
    with pytest.raises(ValueError, match=r"image_size=\[16, 16\] but the training inputs .* are "
                                         r"32x32: set image_size=\[32, 32\] or None"):
        check_loaders(cfg, loaders)
    cfg = load_config("experiments/synthetic_lidc_paper.py", base + ["image_size=[32, 32]"])
    state = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    check_loaders(cfg, build_loaders(cfg, ("train", "val")))  # passes, draws nothing
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])
