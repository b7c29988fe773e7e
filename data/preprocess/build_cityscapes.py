"""Cityscapes in one command: step 1 (resize to npy) then step 2 (splits, modes, bbpreds).

    python -m data.preprocess.build_cityscapes --raw CITYSCAPES_ROOT --out OUT \
        [--processed PROCESSED] [--bbpreds BB_ROOT] [--bbpred-format labelids|trainids] \
        [--size 256 512] [--overwrite]

The resized npy files of step 1 go to `--processed` (default `<OUT>/processed`; delete it
afterwards if disk space matters). See `data.preprocess.resize_cityscapes` and
`data.preprocess.build_cityscapes_layout` for the details of each step.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from data.preprocess.build_cityscapes_layout import add_bbpred_arguments, build_cityscapes
from data.preprocess.resize_cityscapes import add_size_argument, preprocess


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--raw", required=True, help="Cityscapes root (leftImg8bit/, gtFine/)")
    parser.add_argument("--out", required=True, help="output root")
    parser.add_argument("--processed", default=None, help="step-1 folder (default OUT/processed)")
    add_bbpred_arguments(parser)
    add_size_argument(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing splits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    processed = args.processed or os.path.join(args.out, "processed")
    try:
        preprocess(args.raw, processed, tuple(args.size))
        build_cityscapes(processed, args.out, args.bbpreds, args.bbpred_format, args.overwrite)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
