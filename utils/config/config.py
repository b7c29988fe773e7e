"""Experiment settings: defaults, config files, `--set` overrides and validation.

A config file is a Python module in `experiments/` whose module-level names are settings (the
authors' names where they exist). It holds only what differs from `DEFAULTS`, nanoGPT style, or
from the base config it names (`_base_ = "other.py"`, utils/config/files.py).
Resolution order: `DEFAULTS` -> base configs -> config file -> `--set KEY=VALUE` overrides ->
derived settings (from the dataset's spec, `data.specs`, and the method's, `utils.methods`).
Every unknown or mistyped name is an error that names the closest valid setting.
"""

import ast
import difflib
from typing import Any, Iterable, Optional

from data.specs import dataset_names, dataset_spec
from utils.config.defaults import ALIASES as _ALIASES
from utils.config.defaults import CHOICES as _CHOICES
from utils.config.defaults import DEFAULTS
from utils.config.defaults import TYPES as _TYPES
from utils.config.files import load_settings
from utils.methods import SWITCHED_OFF, method_names, method_spec

__all__ = ["DEFAULTS", "Config", "ConfigError", "load_config", "parse_override"]


class ConfigError(ValueError):
    """A setting is unknown, has the wrong type or an invalid value."""


class Config(dict):
    """A dict of resolved settings with attribute access (`cfg.lr`)."""

    def __getattr__(self, name: str) -> Any:
        if name in self:
            return self[name]
        raise AttributeError(f"no setting {name!r}{_suggest(name, self)}")


def _suggest(name: str, valid: Iterable[str]) -> str:
    valid = list(valid)
    aliases = {a: t for a, t in _ALIASES.items() if t in valid}
    close = difflib.get_close_matches(name, valid + list(aliases), n=1, cutoff=0.5)
    return f"; did you mean {aliases.get(close[0], close[0])!r}?" if close else ""


def _unknown(name: str, where: str) -> ConfigError:
    return ConfigError(f"unknown setting {name!r} in {where}{_suggest(name, DEFAULTS)}")


def _type_name(types_: tuple) -> str:
    return " or ".join("None" if t is type(None) else t.__name__ for t in types_)


def check_type(name: str, value: Any, where: str = "config") -> Any:
    """Check `value` against the accepted types of setting `name`; return it normalised.

    Ints are accepted for float settings and tuples for list settings (converted).

    Args:
        name: a setting name (must be in `DEFAULTS`).
        value: the given value.
        where: where it came from, for the error message.
    Returns:
        The value, with int -> float and tuple -> list where the setting expects it.
    """
    expected = _TYPES.get(name, (type(DEFAULTS[name]),))
    if float in expected and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if list in expected and isinstance(value, tuple):
        return list(value)
    bool_ok = bool in expected
    if isinstance(value, expected) and (bool_ok or not isinstance(value, bool)):
        return value
    raise ConfigError(
        f"setting {name!r} in {where}: expected {_type_name(expected)}, "
        f"got {type(value).__name__} ({value!r})"
    )


def parse_override(item: str) -> tuple:
    """Parse one `--set KEY=VALUE` item; the value is a Python literal.

    A value that is not a literal is taken as a plain string when the setting accepts strings,
    so `--set experiment_name=run2` works without quotes.

    Args:
        item: the text after `--set`.
    Returns:
        (name, value) with the value type-checked against the setting.
    """
    if "=" not in item:
        raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
    name, text = (s.strip() for s in item.split("=", 1))
    if name not in DEFAULTS:
        raise _unknown(name, "--set")
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if str not in _TYPES.get(name, (type(DEFAULTS[name]),)):
            raise ConfigError(
                f"--set {name}={text}: not a Python literal "
                f"(expected {_type_name(_TYPES.get(name, (type(DEFAULTS[name]),)))})"
            ) from None
        value = text
    return name, check_type(name, value, where="--set")


def load_config(path: Optional[str] = None, overrides: Iterable[str] = ()) -> Config:
    """Resolve the settings of a run: defaults, then the config file, then `--set` items.

    Args:
        path: config file, or None for the defaults only.
        overrides: `KEY=VALUE` strings (Python literals).
    Returns:
        The validated `Config`, derived settings filled in, plus `config_file`.
    """
    cfg = Config({k: _copy(v) for k, v in DEFAULTS.items()})
    settings, origin = load_settings(path) if path is not None else ({}, {})
    for name, value in settings.items():
        if name not in DEFAULTS:
            raise _unknown(name, origin[name])
        cfg[name] = check_type(name, value, where=origin[name])
    explicit = set(settings)
    for item in overrides:
        name, value = parse_override(item)
        cfg[name] = value
        explicit.add(name)
    _check_fastest(cfg, explicit)
    _derive(cfg)
    _derive_method(cfg)
    validate(cfg)
    cfg["config_file"] = None if path is None else str(path)
    return cfg


def _check_fastest(cfg: Config, explicit: set) -> None:
    """`fastest=True` chooses amp and compile_head for the device (utils/runtime/fastest.py);
    either of them given as well (config file, base config or --set) is a contradiction."""
    given = sorted(explicit & {"amp", "compile_head"})
    if cfg.fastest and given:
        settings = ", ".join(f"{name}={cfg[name]}" for name in given)
        raise ConfigError(f"fastest=True chooses amp and compile_head for the device; it does "
                          f"not combine with {settings} given as well: drop one or the other")


def _copy(value: Any) -> Any:
    return ast.literal_eval(repr(value)) if isinstance(value, (list, dict)) else value


def _derive(cfg: Config) -> None:
    """Fill the settings the dataset's spec gives (`data.specs`): input_channels, n_classes,
    eval_class_ids; check those a dataset does not take.

    Cityscapes: 4 channels with use_bbpred, else 3. `input_channels=4` with `use_bbpred=False`
    is allowed: the 4th channel is then all zeros (a 4-channel model run without predictions).
    Folder: the channels of data_folder's first image unless given.
    """
    _check_choice(cfg, "dataset", dataset_names())
    spec = dataset_spec(cfg.dataset)
    channels, allowed = _from_spec(spec.channels, cfg)
    if cfg.input_channels is None:
        cfg["input_channels"] = channels
    elif allowed and cfg.input_channels not in allowed:
        raise ConfigError(
            f"input_channels={cfg.input_channels} contradicts dataset={cfg.dataset!r}, "
            f"use_bbpred={cfg.use_bbpred} (which give {channels}); leave input_channels unset"
        )
    if cfg.n_classes is None:
        cfg["n_classes"] = spec.num_classes
    if cfg.eval_class_ids is None:
        cfg["eval_class_ids"] = list(spec.eval_class_ids or range(1, cfg.n_classes))
    if cfg.label_range is not None and not spec.takes_label_range:
        raise ConfigError(f"label_range selects the training annotations of a dataset with fixed "
                          f"raters (lidc); dataset {cfg.dataset!r} does not take it: leave it None")
    if cfg.masked_pred and not spec.void:
        raise ConfigError(f"masked_pred predicts class 0 on void pixels; dataset {cfg.dataset!r} "
                          "has no void label: set masked_pred=False")
    _check_synthetic(cfg)


def _check_synthetic(cfg: Config) -> None:
    """`synthetic` names the dataset itself, which must have a generator."""
    if cfg.synthetic is None:
        return
    makers = [name for name in dataset_names() if dataset_spec(name).synthetic is not None]
    if cfg.synthetic != cfg.dataset or cfg.synthetic not in makers:
        raise ConfigError(f"synthetic={cfg.synthetic!r} with dataset={cfg.dataset!r}: synthetic "
                          f"generates a set of the config's own dataset, one of {makers}; "
                          f"for your own data write an example with python -m data.folder example")


def _check_choice(cfg: Config, name: str, registered: list) -> None:
    """The dataset or method must be a registered one."""
    if cfg[name] not in registered:
        raise ConfigError(f"setting {name!r}: {cfg[name]!r} is not one of {registered}")


def _from_spec(check: Any, cfg: Config) -> Any:
    """Call a spec's function on the settings; its ValueError becomes a ConfigError."""
    try:
        return check(cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _derive_method(cfg: Config) -> None:
    """The method's spec (`utils.methods`): MoSE's schedules and extensions that it does not
    take are switched off, so that any MoSE config runs with `--set method=...`."""
    _check_choice(cfg, "method", method_names())
    spec = method_spec(cfg.method)
    for name, off in SWITCHED_OFF.items():
        if name not in spec.settings:
            cfg[name] = off


def _check_param_scheduler(cfg: Config, name: str, value_type: type) -> None:
    options = cfg[name]
    if options is None:
        return
    keys = ("values", "patience", "milestones")
    for key in options:
        if key not in keys:
            raise ConfigError(f"{name}: unknown key {key!r}{_suggest(key, keys)}")
    values, patience = options.get("values"), options.get("patience")
    if not isinstance(values, (list, tuple)) or not values:
        raise ConfigError(f"{name}: 'values' must be a non-empty list (the values after the first)")
    accepted = (int, float) if value_type is float else (int,)
    for v in values:
        if not isinstance(v, accepted) or isinstance(v, bool):
            raise ConfigError(f"{name}: value {v!r} is not {value_type.__name__}")
    if ("patience" in options) == ("milestones" in options):
        raise ConfigError(f"{name}: give either 'patience' (plateau rule) or 'milestones'")
    if "milestones" in options:
        milestones = options["milestones"]
        if not isinstance(milestones, (list, tuple)) or len(milestones) != len(values):
            raise ConfigError(f"{name}: 'milestones' must list one epoch per value in 'values'")
    elif not isinstance(patience, int) or isinstance(patience, bool) or patience < 0:
        raise ConfigError(f"{name}: 'patience' must be an int >= 0, got {patience!r}")


# keyword arguments of torch.optim.lr_scheduler.ReduceLROnPlateau (listed here: checking a config
# must not import torch, so that a mistyped setting is reported at once)
PLATEAU_ARGUMENTS = ("mode", "factor", "patience", "threshold", "threshold_mode", "cooldown",
                     "min_lr", "eps")


def _check_revive(options: Optional[dict]) -> None:
    if options is None:
        return
    if set(options) != {"threshold", "epochs"}:
        raise ConfigError(f"revive_experts: give exactly the keys 'threshold' and 'epochs', got "
                          f"{sorted(options)}")
    threshold, epochs = options["threshold"], options["epochs"]
    if not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ConfigError(f"revive_experts: 'threshold' must be in (0, 1), got {threshold!r}")
    if (not isinstance(epochs, (list, tuple)) or len(epochs) != 2
            or not all(isinstance(e, int) and e >= 1 for e in epochs) or epochs[0] > epochs[1]):
        raise ConfigError(f"revive_experts: 'epochs' must be [first, last] with 1 <= first <= "
                          f"last, got {epochs!r}")


def _check_plateau_options(options: dict) -> None:
    valid = PLATEAU_ARGUMENTS
    for key in options:
        if key not in valid:
            raise ConfigError(
                f"scheduler_options: {key!r} is not a ReduceLROnPlateau argument"
                f"{_suggest(key, valid)}"
            )


def _check_gate_refit(cfg: Config) -> None:
    """gate_refit_steps: an int >= 0; the refit's targets are per expert, so no grouping."""
    steps = cfg.gate_refit_steps
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise ConfigError(f"gate_refit_steps must be an int >= 0, got {steps!r}")
    if steps and (cfg.G0 < 1 or cfg.G_scheduler_options):
        raise ConfigError("gate_refit_steps fits the gate to per-expert targets; it does not "
                          "combine with expert grouping (G0 < 1 or G_scheduler_options)")


def validate(cfg: Config) -> None:
    """Check values (not just types) of a resolved config; raise `ConfigError` if wrong.

    Args:
        cfg: the resolved settings.
    """
    for name, choices in _CHOICES.items():
        if cfg[name] not in choices:
            raise ConfigError(f"setting {name!r}: {cfg[name]!r} is not one of {list(choices)}")
    positive = ("n_classes", "latent_dim", "num_expert", "sample_per_mode", "num_chunks",
                "train_batch_size", "val_batch_size", "test_batch_size",
                "logging_frequency", "validation_frequency", "prob_unet_latent_dim", "ssn_rank",
                "ssn_mc_samples")
    for name in positive:
        if cfg[name] < 1:
            raise ConfigError(f"setting {name!r} must be >= 1, got {cfg[name]}")
    if len(cfg.num_filters) < 2:
        raise ConfigError(f"num_filters needs at least 2 levels, got {cfg.num_filters}")
    if not all(0 <= c < cfg.n_classes for c in cfg.eval_class_ids):
        raise ConfigError(
            f"eval_class_ids {cfg.eval_class_ids} outside [0, n_classes={cfg.n_classes})"
        )
    if cfg.eval_sample_num is not None and cfg.eval_sample_num < 1:
        raise ConfigError(f"eval_sample_num must be None or >= 1, got {cfg.eval_sample_num}")
    if cfg.num_figures < 0:
        raise ConfigError(f"num_figures must be >= 0, got {cfg.num_figures}")
    counts = cfg.sweep_counts
    if not counts or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                             for n in counts):
        raise ConfigError(f"sweep_counts must be a non-empty list of ints >= 1, got {counts}")
    _check_param_scheduler(cfg, "gamma_scheduler_options", float)
    _check_param_scheduler(cfg, "S_scheduler_options", int)
    _check_param_scheduler(cfg, "G_scheduler_options", float)
    _check_plateau_options(cfg.scheduler_options)
    _check_revive(cfg.revive_experts)
    _check_gate_refit(cfg)
    check = method_spec(cfg.method).check
    if check is not None:
        _from_spec(check, cfg)
