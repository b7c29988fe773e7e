"""Config files: running one after its `_base_` chain, and the copy kept in a run folder.

A config file may name a base config and set only what differs from it:

    _base_ = "synthetic_cityscapes.py"  # a path relative to this file's folder
    experiment_name = "synthetic_cityscapes_long"
    epochs = 60

The base runs first; its settings are the starting values of the file, which replaces some
(and may read them: `synthetic_options = dict(synthetic_options, n_train=4000)`). A base may
name a base of its own. `_base_` must be a module-level string literal, so the chain is known
before any file runs; a missing base or a circular chain is a `ValueError` naming the files.

Standard library only: checking a config must not import torch.
"""

import ast
import runpy
import shutil
import types
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

BASE_KEY = "_base_"
_NOT_SETTINGS = (types.ModuleType, types.FunctionType, type)

PathLike = Union[str, Path]


def settings_of(namespace: Dict[str, Any]) -> Dict[str, Any]:
    """The settings of a config file's namespace: every public name that is not a module,
    function or class.

    Args:
        namespace: the module-level names of a config file after it ran.
    Returns:
        Dict name -> value, in the namespace's order.
    """
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and not isinstance(v, _NOT_SETTINGS)}


def base_of(path: Path) -> Optional[Path]:
    """The base config a file names (`_base_ = "..."`), resolved against its folder, or None.

    Args:
        path: a config file.
    Returns:
        The base's path (not checked for existence), or None without `_base_`.
    """
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        targets = (node.targets if isinstance(node, ast.Assign)
                   else [node.target] if isinstance(node, ast.AnnAssign) else [])
        if not any(isinstance(t, ast.Name) and t.id == BASE_KEY for t in targets):
            continue
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            raise ValueError(f"{path}, line {node.lineno}: {BASE_KEY} must be a string literal, "
                             f"the base config's path relative to {path.parent}")
        return path.parent / node.value.value
    return None


def config_chain(path: PathLike) -> List[Path]:
    """A config file and its bases: the file first, then its base, its base's base, ...

    Args:
        path: a config file.
    Returns:
        The chain of files, each one existing.
    """
    current: Optional[Path] = Path(path)
    if not current.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} not found "
                                "(see experiments/ for examples)")
    chain: List[Path] = []
    while current is not None:
        if current.resolve() in [c.resolve() for c in chain]:
            files = " -> ".join(str(c) for c in [*chain, current])
            raise ValueError(f"circular {BASE_KEY} chain: {files}")
        chain.append(current)
        base = base_of(current)
        if base is not None and not base.is_file():
            raise ValueError(f"{current}: base config {str(base)!r} not found ({BASE_KEY} is a "
                             f"path relative to the config's folder, {current.parent})")
        current = base
    return chain


def load_settings(path: PathLike) -> Tuple[Dict[str, Any], Dict[str, str]]:
    """Run a config file after its bases; its settings and the file that set each.

    Args:
        path: a config file.
    Returns:
        (settings, origin): name -> value of every setting the chain sets (the file's value
        where it replaces its base's), and name -> path of the file that set it.
    """
    chain = config_chain(path)
    settings: Dict[str, Any] = {}
    origin: Dict[str, str] = {}
    for depth in range(len(chain) - 1, -1, -1):
        file = chain[depth]
        namespace = runpy.run_path(str(file), init_globals=dict(settings))
        if BASE_KEY in namespace and depth == len(chain) - 1:
            raise ValueError(f"{file}: {BASE_KEY} must be assigned at module level, as a string "
                             "literal, so that the base is known before the file runs")
        mine = settings_of(namespace)
        origin.update({k: str(file) for k, v in mine.items()
                       if k not in settings or v is not settings[k]})
        settings = mine
    return settings, origin


def copy_config(path: PathLike, run_dir: PathLike) -> Path:
    """Keep a config file in a run folder, loadable from there.

    Without a base the file is copied as it is. With one, the bases are not in the run folder,
    so the copy (same name) lists the settings of the whole chain, one per line, and names the
    files they came from; `python main.py <run folder>/<name>.py --demo test` then loads it.

    Args:
        path: the config file of the run.
        run_dir: the run folder (exists).
    Returns:
        The copy's path.
    """
    path, dest = Path(path), Path(run_dir) / Path(path).name
    if dest.exists() and dest.resolve() == path.resolve():
        return dest  # the run was started from its own copy
    chain = config_chain(path)
    if len(chain) == 1:
        shutil.copyfile(path, dest)
        return dest
    settings, _ = load_settings(path)
    sources = ", based on ".join(str(c) for c in chain)
    lines = [f'"""The settings of {sources}, resolved into one file."""', ""]
    lines += [f"{name} = {value!r}" for name, value in settings.items()]
    dest.write_text("\n".join(lines) + "\n")
    return dest
