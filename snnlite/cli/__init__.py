"""Command line: ``snnlite train | eval | bench | data | transfer | audit | targets |
import-torch | export`` (also ``python -m snnlite``). One module per command, each with
``add_parser(subparsers)`` and ``run(args)``; shared helpers in :mod:`.common`."""
import argparse
import sys

from .._memory import tune_malloc
from . import audit, bench, data, eval, export, import_torch, targets, train, transfer

COMMANDS = (train, eval, bench, data, transfer, audit, targets, import_torch, export)
"""The command modules, in the order ``snnlite --help`` lists them."""


def build_parser():
    p = argparse.ArgumentParser(prog="snnlite", description=__doc__.split(" (also")[0])
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    tune_malloc()  # a setting of this whole process, which the command owns
    try:
        return args.func(args)
    except KeyboardInterrupt as e:
        print(f"\n{e}", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as e:
        print(f"snnlite {args.command}: error: {e}", file=sys.stderr)
        return 2


__all__ = ["COMMANDS", "build_parser", "main"]
