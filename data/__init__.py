"""Datasets, transforms, synthetic generators and builders: LIDC, multimodal Cityscapes and your
own multi-annotator data in the folder layout (`data.folder`); what is particular to each is its
spec (`data.specs`).

`from data import build_dataloaders` is the engine's entry point. The names below are loaded
lazily so that the builders (`python -m data.preprocess...`, `python -m data.synthetic`) and a
config check start without importing torch/torchvision.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "build_dataloaders": "data.loaders",
    "build_dataset": "data.loaders",
    "seed_worker": "data.loaders",
    "LIDCDataset": "data.lidc",
    "CityscapesDataset": "data.cityscapes",
    "FolderDataset": "data.folder.dataset",
    "check_folder": "data.folder.check",
    "DatasetSpec": "data.specs",
    "dataset_spec": "data.specs",
    "register_dataset": "data.specs",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
