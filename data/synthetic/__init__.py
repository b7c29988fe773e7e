"""Synthetic datasets with known true label distributions (docs/datasets.md).

`make_lidc` and `make_cityscapes` write the same on-disk layouts as the real builders, plus
per item `modes/<i>.npy` (T, H, W) and `mode_probs/<i>.npy` (T,), so the real loaders read them
and a benchmark can compare a model with the truth. Command line:
`python -m data.synthetic {lidc,cityscapes} OUT [--train N --val N --test N --size ... --seed K]`.
"""

from data.synthetic.cityscapes import make_cityscapes
from data.synthetic.lidc import make_lidc

__all__ = ["make_cityscapes", "make_lidc"]
