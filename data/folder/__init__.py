"""Your own multi-annotator data: the generic folder dataset (`dataset = "folder"`).

Layout, one folder per split (train, val, test):

    ROOT/<split>/images/<id>.png|.jpg|.jpeg|.npy
    ROOT/<split>/annotations/<id>/<rater>.png      (8-bit label maps holding class indices)

- Images: PNG/JPEG (grey = 1 channel, RGB or palette = 3) or npy ((H, W), (H, W, C) or
  (C, H, W) with C <= 4, channels-last tried first). Their channel count must equal the
  config's `input_channels`. Every image is standardised on its own, (x - mean) / std over all
  its pixels and channels (std taken as 1 for a constant image), as the LIDC loader does; this
  makes 8-bit, 16-bit and float inputs alike, so no dataset statistics are needed.
- Annotations: single-channel PNGs (mode L, P, 1 or 16-bit) of the image's size with values in
  [0, n_classes); class 0 is the background the IoU cost leaves out. Any rater names, any
  number of raters per image (at least one).
- A varying rater count M_i is batched by padding every image to the split's largest M with
  copies of its own annotations (annotation j % M_i) whose weight is 0; the real ones weigh
  1 / M_i. Copies (not blank maps) keep the metrics' undefined-distance pattern unchanged, and
  zero weights drop out of the GED, the ECE and the exact and nearest couplings; the greedy
  coupling and the M-IoU matching must treat them as absent too (`tests/test_data_folder.py`
  proves each of these: padded results equal unpadded ones).
- Image size: any H, W >= 1 runs through the U-Net (ceil-mode pooling, upsampling to the skip
  size); batching needs one size per split. Training with batch size 1 additionally needs a
  bottleneck of more than one pixel (batch norm).
- Training augmentation (train split, optional): LIDC's flips and +-10 degree rotation.

Parts, each importing only those above it: `layout` (reading files and splits), `check` (every
problem of a dataset), `dataset` (`FolderDataset`, needs torch), `example` (an example dataset
from the synthetic LIDC generator), `__main__` (the command line):
`python -m data.folder check ROOT --n-classes C` lists every problem of a dataset;
`python -m data.folder example OUT` writes an example dataset.
"""

from __future__ import annotations

from data.folder.layout import (
    ANNOTATION_EXT,
    CHECK_HINT,
    IMAGE_EXTS,
    FolderItem,
    image_channels,
    natural_key,
    read_annotation,
    read_image,
    scan_split,
)

__all__ = ["ANNOTATION_EXT", "CHECK_HINT", "IMAGE_EXTS", "FolderItem", "FolderDataset",
           "image_channels", "natural_key", "read_annotation", "read_image", "scan_split"]


def __getattr__(name: str):
    # FolderDataset needs torch; the checker and the example writer start without it.
    if name == "FolderDataset":
        from data.folder.dataset import FolderDataset

        return FolderDataset
    raise AttributeError(f"module 'data.folder' has no attribute {name!r}")
