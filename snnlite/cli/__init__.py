"""Command line: ``snnlite COMMAND`` (also ``python -m snnlite``). One module per command,
each with ``add_parser(subparsers)`` and ``run(args)``, listed in :data:`COMMANDS`; shared
helpers (data arguments, tables, the help formatter, the first screen of a run) in
:mod:`.common` and :mod:`.banner`."""
import argparse
import errno
import os
import pickle
import signal
import sys

from .._memory import tune_malloc
from .._version import __version__
from . import (
    audit,
    bench,
    data,
    eval,
    export,
    import_torch,
    plot,
    quantize,
    targets,
    train,
    transfer,
)
from .common import HelpFormatter, check_numbers

COMMANDS = (train, eval, bench, data, transfer, quantize, audit, targets, plot, import_torch,
            export)
"""The command modules, in the order ``snnlite --help`` lists them."""


class _Parser(argparse.ArgumentParser):
    """An argument error is one line (and status 2), pointing to ``--help``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    p = _Parser(
        prog="snnlite", formatter_class=HelpFormatter,
        description="snnlite: spiking neural networks on NumPy and Numba. Train on the CPU, "
                    "transfer direct-coded models to event input (D2E), count every spike "
                    "and synaptic operation.",
        epilog="snnlite COMMAND --help describes each command. python -m snnlite works "
               "too.")
    p.add_argument("--version", action="version", version=f"snnlite {__version__}")
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an error (also anywhere after the command)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           title="commands")
    for command in COMMANDS:
        command.add_parser(sub).formatter_class = HelpFormatter
    return p


def main(argv=None):
    """Run one command; returns its exit status. Any error is one line on stderr, ``snnlite
    COMMAND: error: ...``, and status 2 (1 for an internal error, 130 after Ctrl-C, 143 after
    SIGTERM); with ``--debug`` (anywhere on the line) or ``SNNLITE_DEBUG=1`` the traceback is
    shown too."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("SNNLITE_DEBUG", "") not in ("", "0")
    argv = (["--debug"] if "--debug" in argv else []) + [a for a in argv if a != "--debug"]
    args = build_parser().parse_args(argv)
    tune_malloc()  # a setting of this whole process, which the command owns
    try:
        check_numbers(args)
        return args.func(args)
    except KeyboardInterrupt as e:
        print(f"\n{e or 'interrupted'}", file=sys.stderr)
        return 128 + int(getattr(e, "signum", signal.SIGINT))
    except Exception as e:  # noqa: BLE001 - every error becomes one line (or --debug)
        if debug:
            raise
        internal = not isinstance(e, _EXPECTED)
        print(f"snnlite {args.command}: error: {error_line(e, internal)}", file=sys.stderr)
        return 1 if internal else 2


_EXPECTED = (ValueError, TypeError, OSError, KeyError, RuntimeError, MemoryError,
             FloatingPointError, pickle.UnpicklingError)
"""Errors about the input, the files or the machine; anything else is an internal error."""


def error_line(e, internal=False):
    """One line saying what went wrong and, where it helps, what to do."""
    if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str):
        msg = e.args[0]
    else:
        msg = str(e)
    msg = " ".join(msg.split()) or type(e).__name__
    if isinstance(e, MemoryError):
        return f"out of memory ({msg}); try a smaller --batch-size or fewer images"
    if isinstance(e, OSError):
        hint = {errno.ENOSPC: "free some disk space or choose another folder",
                errno.EDQUOT: "free some disk space or choose another folder",
                errno.EROFS: "choose a writable folder",
                errno.EACCES: "choose a folder you can write to",
                errno.EPERM: "choose a folder you can write to"}.get(e.errno)
        if hint and "choose another" not in msg:
            msg = f"{msg}; {hint}"
    if internal:
        msg = f"{type(e).__name__}: {msg} (an internal error; --debug shows where)"
    return msg


__all__ = ["COMMANDS", "build_parser", "main"]
