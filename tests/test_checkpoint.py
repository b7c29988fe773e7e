"""Checkpoints: the authors' files and ours load strictly; saves are atomic; mismatches explain."""

from unittest import mock

import pytest
import torch

from models import MoSE
from tests.helpers import FORWARD_LIDC_KWARGS, FORWARD_WEIGHTS
from utils.runtime.checkpoint import load_model_weights, read_state_dict, save_checkpoint


def test_authors_file_loads_strictly_and_round_trips(tmp_path):
    model = MoSE(**FORWARD_LIDC_KWARGS)
    load_model_weights(model, FORWARD_WEIGHTS)
    authors = torch.load(FORWARD_WEIGHTS, weights_only=True)
    assert all(k.startswith("module.") for k in authors)
    torch.testing.assert_close(model.mu.detach(), authors["module.mu"])
    path = tmp_path / "ours.pth"
    save_checkpoint(model.state_dict(), path)
    other = MoSE(**FORWARD_LIDC_KWARGS)
    load_model_weights(other, path)
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k


def test_wrapped_and_prefixed_state_dicts_load():
    model = MoSE(**FORWARD_LIDC_KWARGS)
    state = {f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}
    load_model_weights(MoSE(**FORWARD_LIDC_KWARGS), {"model": state})
    assert set(read_state_dict({"state_dict": state})) == set(model.state_dict())


def test_mismatching_checkpoint_names_key_and_shapes():
    kwargs = dict(FORWARD_LIDC_KWARGS, num_expert=5)
    with pytest.raises(ValueError, match=r"'mu' has shape \(4, 1\) in the checkpoint but \(5, 1\)"):
        load_model_weights(MoSE(**kwargs), FORWARD_WEIGHTS)
    kwargs = dict(FORWARD_LIDC_KWARGS, num_filters=[8, 16, 32])
    with pytest.raises(ValueError, match="unexpected keys"):
        load_model_weights(MoSE(**kwargs), FORWARD_WEIGHTS)


def test_missing_checkpoint_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_model_weights(MoSE(**FORWARD_LIDC_KWARGS), tmp_path / "nope.pth")


def test_interrupted_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "best.pth"
    save_checkpoint({"w": torch.ones(3)}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    with mock.patch("utils.runtime.checkpoint.torch.save", side_effect=crash):
        with pytest.raises(KeyboardInterrupt):
            save_checkpoint({"w": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["best.pth"]  # no temporary file left
