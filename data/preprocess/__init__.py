"""Builders from the public downloads to the processed npy layouts (docs/datasets.md).

- LIDC: `python -m data.preprocess.build_lidc --pickle FILE --out DIR [--hdf5 FILE]`
- Cityscapes, step 1: `python -m data.preprocess.resize_cityscapes --raw RAW --out PROCESSED`
- Cityscapes, step 2: `python -m data.preprocess.build_cityscapes_layout --processed PROCESSED
  --out OUT [--bbpreds BB] [--bbpred-format labelids|trainids]`
- Cityscapes, both steps: `python -m data.preprocess.build_cityscapes --raw RAW --out OUT
  [--bbpreds BB]`
"""
