"""Command line for the synthetic generators.

    python -m data.synthetic lidc OUT [--train 2000 --val 200 --test 200 --size 32 --seed 0]
        [--jitter 0.75] [--wobble 0] [--exclusive]
    python -m data.synthetic cityscapes OUT [--train 300 --val 50 --test 50 --size 64 128]

`--size` takes one value (the side) for lidc and H W for cityscapes. The lidc options
`--jitter`, `--wobble` and `--exclusive` (halo and satellite never together) are those of
`data.synthetic.lidc.make_lidc`; the set of `experiments/synthetic_lidc.py` is
`--jitter 0 --wobble 0.6 --exclusive`. An existing synthetic set
in OUT is replaced; other existing data there is kept unless `--overwrite` is given.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys

from data.synthetic.cityscapes import make_cityscapes
from data.synthetic.lidc import make_lidc

logger = logging.getLogger("data.synthetic")
GENERATORS = {"lidc": make_lidc, "cityscapes": make_cityscapes}


def _defaults(kind: str) -> dict:
    """Keyword defaults of a generator, for the help text and missing options."""
    params = inspect.signature(GENERATORS[kind]).parameters
    return {name: p.default for name, p in params.items() if p.default is not p.empty}


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and generate the requested dataset."""
    parser = argparse.ArgumentParser(description="Generate a synthetic dataset.")
    parser.add_argument("kind", choices=sorted(GENERATORS))
    parser.add_argument("out", help="output root")
    parser.add_argument("--train", type=int, default=None, help="training images")
    parser.add_argument("--val", type=int, default=None, help="validation images")
    parser.add_argument("--test", type=int, default=None, help="test images")
    parser.add_argument(
        "--size",
        type=int,
        nargs="+",
        default=None,
        help="lidc: S (default 32); cityscapes: H W (default 64 128)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jitter", type=float, default=None,
                        help="lidc: largest change of an annotation's boundary radius (px)")
    parser.add_argument("--wobble", type=float, default=None,
                        help="lidc: amplitude of each outline harmonic of an annotation (px)")
    parser.add_argument("--exclusive", action="store_true",
                        help="lidc: halo and satellite never in the same image")
    parser.add_argument("--overwrite", action="store_true", help="replace existing splits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    defaults = _defaults(args.kind)
    kwargs = {"n_train": args.train, "n_val": args.val, "n_test": args.test, "seed": args.seed}
    kwargs = {k: (defaults[k] if v is None else v) for k, v in kwargs.items()}
    if args.size is not None:
        expected = 1 if args.kind == "lidc" else 2
        if len(args.size) != expected:
            parser.error(f"--size takes {expected} value(s) for {args.kind}")
        kwargs["size"] = args.size[0] if args.kind == "lidc" else tuple(args.size)
    lidc_only = {"jitter": args.jitter, "wobble": args.wobble,
                 "satellite_with_halo": False if args.exclusive else None}
    given = {k: v for k, v in lidc_only.items() if v is not None}
    if given and args.kind != "lidc":
        parser.error("--jitter, --wobble and --exclusive apply to lidc only")
    kwargs.update(given)
    try:
        counts = GENERATORS[args.kind](args.out, overwrite=args.overwrite or None, **kwargs)
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    logger.info("synthetic %s written to %s: %s", args.kind, args.out, counts)


if __name__ == "__main__":
    main()
