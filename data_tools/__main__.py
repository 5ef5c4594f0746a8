"""``python -m data_tools cifar10|cifar100 [--from PATH] [--out DIR]``."""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from ._io import default_cache_dir
from .cache import prepare
from .hdf5 import check_h5
from .specs import SPECS, get_spec


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """Argument parser of the dataset command line."""
    parser = argparse.ArgumentParser(
        prog=prog or "python -m data_tools",
        description="Verify a CIFAR archive (downloading it if no --from is given) and "
                    "convert it to one HDF5 file in the cache directory.")
    parser.add_argument("dataset", choices=sorted(SPECS), help="dataset to prepare")
    parser.add_argument("--from", dest="src", metavar="PATH",
                        help="local archive, or a directory holding it under its official "
                             "name (default: download the official archive)")
    parser.add_argument("--out", metavar="DIR",
                        help=f"output directory (default: {default_cache_dir()}; "
                             "set by $SNNLITE_CACHE or $XDG_CACHE_HOME)")
    parser.add_argument("--force", action="store_true",
                        help="convert again even if a valid file exists")
    parser.add_argument("--no-progress", action="store_true", help="hide the download bar")
    return parser


def _checksum_status(official_md5: str, md5: str, match: bool) -> str:
    if match:
        return f"MD5 {md5} matches the official archive"
    return (f"MD5 {md5} differs from the official archive ({official_md5}); "
            "structure verified instead")


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the command line; return 0 on success, 1 on a data error (message on stderr)."""
    args = build_parser(prog).parse_args(argv)
    spec = get_spec(args.dataset)
    try:
        with warnings.catch_warnings():
            # the checksum status is printed below from the file's attributes
            warnings.simplefilter("ignore")
            path = prepare(spec.name, src=args.src, cache_dir=args.out, force=args.force,
                           progress=not args.no_progress, log=print)
        info = check_h5(path, spec.name)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{spec.name}: {path}")
    print(f"  train: {info.counts['train']} images, test: {info.counts['test']} images, "
          f"{info.num_classes} classes")
    print(f"  source: {info.source_archive}, "
          f"{_checksum_status(spec.md5, info.source_md5, info.official_md5_match)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
