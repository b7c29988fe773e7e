"""Command line of the folder dataset: `python -m data.folder check ROOT --n-classes C` or
`python -m data.folder example OUT`."""

from __future__ import annotations

import argparse
import sys

from data.npy_folder import SPLITS


def main(argv: list[str] | None = None) -> None:
    """Command line: `check ROOT --n-classes C [--input-channels N]` or `example OUT`."""
    parser = argparse.ArgumentParser(
        prog="python -m data.folder",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="validate a dataset; lists every problem, exit 1 if any")
    check.add_argument("root")
    check.add_argument("--n-classes", type=int, required=True, help="C: labels lie in [0, C)")
    check.add_argument(
        "--input-channels",
        type=int,
        default=None,
        help="channels every image must have (default: those of the first image)",
    )
    check.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    example = sub.add_parser("example", help="write an example dataset (synthetic LIDC blobs)")
    example.add_argument("out")
    example.add_argument("--train", type=int, default=2000)
    example.add_argument("--val", type=int, default=200)
    example.add_argument("--test", type=int, default=200)
    example.add_argument("--size", type=int, default=32, help="image side")
    example.add_argument("--seed", type=int, default=0)
    example.add_argument("--overwrite", action="store_true", help="replace existing splits")
    args = parser.parse_args(argv)
    if args.command == "check":
        from data.folder.check import run_check

        sys.exit(run_check(args.root, args.n_classes, args.input_channels, args.splits))
    from data.folder.example import write_example

    try:
        counts = write_example(
            args.out,
            args.train,
            args.val,
            args.test,
            args.size,
            args.seed,
            overwrite=args.overwrite,
        )
    except (ValueError, FileNotFoundError) as err:
        sys.exit(f"error: {err}")
    sys.stdout.write(f"example dataset written to {args.out}: {counts}\n")


if __name__ == "__main__":
    main()
