"""snnlite: spiking neural networks on NumPy and Numba.

CPU training of convolutional SNNs (LIF, BPTT with a surrogate gradient), direct-to-event
transfer by self-knowledge distillation, and exact spike/synop accounting. Importing
snnlite never imports torch, and leaves the process's malloc settings alone (the ``snnlite``
command and :class:`snnlite.train.Trainer` call :func:`tune_malloc`; see its docstring).

The subpackages below load on first use (``snnlite.nn``, ``from snnlite import models``), so
that ``snnlite.runtime`` (numpy only) imports without numba or h5py.
"""
import importlib

from ._memory import tune_malloc
from ._pool import get_num_threads, set_num_threads
from ._precompile import precompile
from ._version import __version__

_LAZY = ("encoding", "losses", "models", "nn", "optim")


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'snnlite' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["encoding", "losses", "models", "nn", "optim", "get_num_threads", "set_num_threads",
           "precompile", "tune_malloc", "__version__"]
