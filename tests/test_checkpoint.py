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


@pytest.mark.parametrize("name,configs", [
    ("lidc", ["lidc_proposed", "lidc_proposed_1annot"]), ("cityscapes", ["cityscapes_proposed"])])
def test_a_file_with_every_key_of_the_released_checkpoints_loads_into_the_paper_configs(
        name, configs, tmp_path):
    """A file laid out as the authors' released checkpoints (their key list: every key, shape
    and dtype, the `module.` prefix of DataParallel) loads strictly into the model each paper
    config builds, and every value arrives."""
    from tests.helpers import DATA
    from utils.build import build_model
    from utils.config.config import load_config

    g = torch.Generator().manual_seed(0)
    state = {}
    for line in (DATA / f"state_dict_{name}.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, dtype = line.split("\t")
        size = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
        if dtype.startswith("float"):
            state[key] = torch.randn(size, generator=g, dtype=getattr(torch, dtype))
        else:
            state[key] = torch.randint(0, 100, size, generator=g, dtype=getattr(torch, dtype))
    assert state and all(k.startswith("module.") for k in state)
    path = tmp_path / f"{name}_pretrained_best_ged.pth"
    torch.save(state, path)
    for config in configs:
        model = build_model(load_config(f"experiments/{config}.py"))
        load_model_weights(model, path)
        loaded = model.state_dict()
        assert set(loaded) == {k.removeprefix("module.") for k in state}
        assert all(torch.equal(loaded[k.removeprefix("module.")], v) for k, v in state.items())
