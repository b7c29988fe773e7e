"""Config inheritance: `_base_` chains, their errors, and the copy kept in a run folder."""

from pathlib import Path

import pytest

from utils.config.config import ConfigError, load_config
from utils.config.files import config_chain, copy_config, load_settings


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_child_overrides_its_base_and_keeps_the_rest(tmp_path):
    write(tmp_path, "base.py", "experiment_name = 'base'\nepochs = 10\nlr = 3e-3\n"
                               "num_filters = [8, 16]\n")
    child = write(tmp_path, "child.py", "_base_ = 'base.py'\nexperiment_name = 'child'\n"
                                        "epochs = 60\n")
    cfg = load_config(str(child))
    assert (cfg.experiment_name, cfg.epochs) == ("child", 60)  # the child's
    assert (cfg.lr, cfg.num_filters) == (3e-3, [8, 16])  # the base's
    assert cfg.weight_decay == 1e-5  # neither sets it: the default
    assert cfg.config_file == str(child)


def test_bases_chain_and_the_nearest_setting_wins(tmp_path):
    write(tmp_path, "a.py", "epochs = 1\nlr = 0.1\nbeta = 2.0\n")
    write(tmp_path, "b.py", "_base_ = 'a.py'\nlr = 0.2\nbeta = 3.0\n")
    c = write(tmp_path, "c.py", "_base_ = 'b.py'\nbeta = 4.0\n")
    assert [p.name for p in config_chain(c)] == ["c.py", "b.py", "a.py"]
    settings, origin = load_settings(c)
    assert settings == dict(epochs=1, lr=0.2, beta=4.0)
    assert origin == dict(epochs=str(tmp_path / "a.py"), lr=str(tmp_path / "b.py"),
                          beta=str(c))


def test_a_base_in_another_folder_and_a_child_reading_its_values(tmp_path):
    write(tmp_path, "common/base.py", "synthetic_options = dict(n_train=100, seed=0)\n")
    child = write(tmp_path, "runs/child.py", "_base_ = '../common/base.py'\n"
                                             "synthetic_options = dict(synthetic_options, "
                                             "n_train=400)\n")
    settings, _ = load_settings(child)
    assert settings == dict(synthetic_options=dict(n_train=400, seed=0))


def test_set_overrides_and_type_checks_apply_to_inherited_settings(tmp_path):
    write(tmp_path, "base.py", "epochs = 10\n")
    child = write(tmp_path, "child.py", "_base_ = 'base.py'\n")
    assert load_config(str(child), ["epochs=3"]).epochs == 3
    write(tmp_path, "bad.py", "epochs = '10'\n")
    bad_child = write(tmp_path, "bad_child.py", "_base_ = 'bad.py'\n")
    with pytest.raises(ConfigError, match=r"'epochs' in .*bad\.py: expected int"):
        load_config(str(bad_child))


def test_an_unknown_setting_names_the_file_that_sets_it(tmp_path):
    write(tmp_path, "base.py", "num_filter = [8, 16]\n")
    child = write(tmp_path, "child.py", "_base_ = 'base.py'\nepochs = 2\n")
    with pytest.raises(ConfigError, match=r"'num_filter' in .*base\.py; did you mean"):
        load_config(str(child))


def test_a_missing_base_is_a_clear_error(tmp_path):
    child = write(tmp_path, "child.py", "_base_ = 'nowhere.py'\nepochs = 2\n")
    with pytest.raises(ValueError, match=r"child\.py: base config '.*nowhere\.py' not found"):
        load_config(str(child))


def test_a_circular_chain_is_a_clear_error_naming_the_chain(tmp_path):
    write(tmp_path, "a.py", "_base_ = 'b.py'\n")
    write(tmp_path, "b.py", "_base_ = 'a.py'\n")
    a = str(tmp_path / "a.py")
    b = str(tmp_path / "b.py")
    with pytest.raises(ValueError) as err:
        load_config(a)
    assert str(err.value) == f"circular _base_ chain: {a} -> {b} -> {a}"
    write(tmp_path, "self.py", "_base_ = 'self.py'\n")
    with pytest.raises(ValueError, match=r"circular _base_ chain: .*self\.py -> .*self\.py$"):
        load_config(str(tmp_path / "self.py"))


@pytest.mark.parametrize("text, message", [
    ("name = 'base.py'\n_base_ = name\n", "must be a string literal"),
    ("if True:\n    _base_ = 'base.py'\n", "must be assigned at module level"),
])
def test_base_must_be_a_module_level_string_literal(tmp_path, text, message):
    write(tmp_path, "base.py", "epochs = 2\n")
    with pytest.raises(ValueError, match=message):
        load_config(str(write(tmp_path, "child.py", text)))


def test_the_run_folder_copy_without_a_base_is_the_file_itself(tmp_path):
    config = write(tmp_path, "plain.py", '"""Doc."""\n\nepochs = 2  # why\n')
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    copy = copy_config(config, run_dir)
    assert copy == run_dir / "plain.py" and copy.read_bytes() == config.read_bytes()
    assert copy_config(copy, run_dir) == copy  # a run started from its own copy


def test_the_run_folder_copy_of_a_based_config_loads_alone(tmp_path):
    write(tmp_path, "base.py", "experiment_name = 'b'\ngamma0 = 1 / 32\n"
                               "synthetic_options = dict(n_train=400, seed=0)\n")
    child = write(tmp_path, "child.py", "_base_ = 'base.py'\nexperiment_name = 'long'\n"
                                        "epochs = 60\n")
    run_dir = tmp_path / "log" / "run"
    run_dir.mkdir(parents=True)
    copy = copy_config(child, run_dir)
    assert copy == run_dir / "child.py" and "_base_" not in copy.read_text()
    expected = dict(experiment_name="long", gamma0=1 / 32, epochs=60,
                    synthetic_options=dict(n_train=400, seed=0))
    assert load_settings(copy)[0] == expected
    assert str(child) in copy.read_text() and str(tmp_path / "base.py") in copy.read_text()


def test_the_long_cityscapes_demo_is_its_base_with_another_name_and_epoch_count():
    base = load_config("experiments/synthetic_cityscapes.py")
    long = load_config("experiments/synthetic_cityscapes_long.py")
    differ = {k for k in base if base[k] != long[k]}
    assert differ == {"experiment_name", "epochs", "config_file"}
    assert (long.experiment_name, long.epochs) == ("synthetic_cityscapes_long", 60)
    assert config_chain("experiments/synthetic_cityscapes_long.py")[1] == Path(
        "experiments/synthetic_cityscapes.py")


def test_every_experiment_config_resolves_its_chain():
    for path in sorted(Path("experiments").glob("*.py")):
        chain = config_chain(path)
        settings, origin = load_settings(path)
        assert set(origin) == set(settings) and settings["experiment_name"] == path.stem
        assert set(origin.values()) <= {str(p) for p in chain}
