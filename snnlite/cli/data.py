"""``snnlite data``: fetch, verify and convert a dataset to HDF5 (:mod:`data_tools`)."""
from .common import DATASETS


def add_parser(subparsers):
    d = subparsers.add_parser("data", help="fetch, verify and convert a dataset to HDF5")
    d.add_argument("name", choices=list(DATASETS), help="dataset")
    d.add_argument("--from", dest="src", default=None,
                   help="local archive or folder to read (default: download)")
    d.add_argument("--out", default=None, help="output folder (default: the user cache)")
    d.set_defaults(func=run)
    return d


def run(args):
    from data_tools import cli_main  # data_tools' own argparse front end

    argv = [args.name] + (["--from", args.src] if args.src else []) + \
        (["--out", args.out] if args.out else [])
    return cli_main(argv, prog="snnlite data")
