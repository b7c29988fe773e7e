"""Config loading: defaults, files, --set overrides, derived settings and clear errors."""

import re
import subprocess
import sys

import pytest

from utils.config.config import DEFAULTS, Config, ConfigError, load_config, parse_override


def write_config(tmp_path, text: str) -> str:
    path = tmp_path / "cfg.py"
    path.write_text(text)
    return str(path)


def test_defaults_resolve_to_the_paper_lidc_setting():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert (cfg.num_expert, cfg.sample_per_mode, cfg.latent_dim) == (4, 4, 1)
    assert cfg.input_channels == 1 and cfg.config_file is None
    assert cfg.gamma_scheduler_options == dict(values=[1.0], patience=10)


def test_every_default_has_a_comment():
    source = open("utils/config/defaults.py").read()
    block = source[source.index("DEFAULTS: Dict"):source.index("# Settings whose accepted")]
    for name in DEFAULTS:
        line = next(ln for ln in block.splitlines() if re.match(rf"\s+{name}=", ln))
        assert "#" in line, name


def test_file_overrides_and_module_objects_are_ignored(tmp_path):
    path = write_config(tmp_path, "import math\nlr = 5e-4\nepochs = 3\n_private = 1\n"
                                  "num_filters = (8, 16)\nbeta = 2\n")
    cfg = load_config(path)
    assert cfg.lr == 5e-4 and cfg.epochs == 3 and cfg.config_file == path
    assert cfg.num_filters == [8, 16]  # tuple -> list
    assert cfg.beta == 2.0 and isinstance(cfg.beta, float)  # int -> float


def test_defaults_are_not_shared_between_configs():
    cfg = load_config()
    cfg.num_filters.append(1)
    assert load_config().num_filters == [32, 64, 128, 192, 192, 192, 192]


@pytest.mark.parametrize("text, closest", [
    ("num_filter = [8, 16]\n", "num_filters"),
    ("learning_rat = 1e-3\n", "lr"),
    ("eval_sample_nums = 16\n", "eval_sample_num"),
    ("gamma_scheduler_option = None\n", "gamma_scheduler_options"),
])
def test_unknown_setting_in_file_names_the_closest(tmp_path, text, closest):
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=f"did you mean '{closest}'"):
        load_config(path)


def test_wrong_type_in_file(tmp_path):
    path = write_config(tmp_path, "epochs = '10'\n")
    with pytest.raises(ConfigError, match=r"'epochs'.*expected int, got str"):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(FileNotFoundError, match="nope.py"):
        load_config("experiments/nope.py")


def test_set_parses_python_literals():
    cfg = load_config(None, ["lr=2e-4", "num_filters=[8, 16, 32]", "eval_sample_num=16",
                             "label_range=[0]", "softmax=True", "synthetic='lidc'",
                             "gamma_scheduler_options=None"])
    assert cfg.lr == 2e-4 and cfg.num_filters == [8, 16, 32] and cfg.eval_sample_num == 16
    assert cfg.label_range == [0] and cfg.synthetic == "lidc"
    assert cfg.gamma_scheduler_options is None


def test_set_takes_bare_words_for_string_settings():
    assert parse_override("experiment_name=run2") == ("experiment_name", "run2")
    assert parse_override("data_folder=/tmp/x y") == ("data_folder", "/tmp/x y")


@pytest.mark.parametrize("item, message", [
    ("lr=fast", r"--set lr=fast: not a Python literal \(expected float\)"),
    ("lr='1e-3'", r"'lr' in --set: expected float, got str"),
    ("epochs=2.5", r"'epochs' in --set: expected int, got float"),
    ("softmax=1", r"'softmax' in --set: expected bool, got int"),
    ("eval_sample_num='16'", r"expected int or None, got str"),
    ("num_filters=8", r"expected list, got int"),
    ("lr", r"--set expects KEY=VALUE"),
    ("epoch=3", r"unknown setting 'epoch' in --set; did you mean 'epochs'\?"),
])
def test_set_errors(item, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [item])


def test_input_channels_follow_dataset_and_bbpred():
    city = ["dataset='cityscapes'", "n_classes=25", "eval_class_ids=[1, 2]"]
    assert load_config(None, city).input_channels == 4
    assert load_config(None, city + ["use_bbpred=False"]).input_channels == 3
    assert load_config(None, city + ["use_bbpred=False", "input_channels=3"]).input_channels == 3
    # a 4-channel model without black-box predictions: the 4th channel is zeros
    assert load_config(None, city + ["use_bbpred=False", "input_channels=4"]).input_channels == 4
    with pytest.raises(ConfigError, match="contradicts"):
        load_config(None, city + ["input_channels=3"])
    with pytest.raises(ConfigError, match="contradicts"):
        load_config(None, ["input_channels=3"])


@pytest.mark.parametrize("items, message", [
    (["num_expert=4", "latent_dim=3"], r"num_expert=4 < 2\*\*latent_dim=8"),
    (["cost_fn='ce'"], "needs softmax=False"),
    (["dataset='kitti'"], "'dataset': 'kitti' is not one of"),
    (["scheduler_mean='mean'"], "is not one of"),
    (["eval_class_ids=[2]"], "outside"),
    (["train_batch_size=0"], "must be >= 1"),
    (["num_filters=[8]"], "at least 2 levels"),
    (["gamma_scheduler_options={'value': [1.0], 'patience': 3}"], "did you mean 'values'"),
    (["S_scheduler_options={'values': [2.5], 'patience': 3}"], "is not int"),
    (["G_scheduler_options={'values': [0.9], 'patience': -1}"], "'patience' must be"),
    (["G_scheduler_options={'values': [0.9]}"], "either 'patience'"),
    (["G_scheduler_options={'values': [0.9], 'patience': 1, 'milestones': [3]}"], "either"),
    (["G_scheduler_options={'values': [0.9, 0.8], 'milestones': [3]}"], "one epoch per value"),
    (["scheduler_options={'factor': 0.5, 'patiense': 3}"], "did you mean 'patience'"),
    (["coupling='exact'", "sample_per_mode=2", "gamma0=0.0625"], r"N·γ >= 1.*gives 0\.5"),
    (["gate_tta=True"], "needs gate_input='image'"),
])
def test_invalid_values(items, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, items)


def test_attribute_access_suggests():
    cfg = load_config()
    with pytest.raises(AttributeError, match="did you mean 'num_expert'"):
        cfg.num_experts  # noqa: B018


def test_help_and_config_errors_do_not_import_torch():
    # a fast start: `--help` and a mistyped setting answer before any heavy import
    code = ("import sys, main\n"
            "from utils.config.config import ConfigError, load_config\n"
            "load_config('experiments/synthetic_lidc.py', ['lr=5e-4'])\n"
            "try:\n    main.main(['experiments/synthetic_lidc.py', '--set', 'lrr=1'])\n"
            "except ConfigError:\n    pass\n"
            "heavy = [m for m in ('torch', 'torchvision', 'numpy', 'matplotlib')\n"
            "         if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)
