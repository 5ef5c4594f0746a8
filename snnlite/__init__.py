"""snnlite: spiking neural networks on NumPy and Numba.

CPU training of convolutional SNNs (LIF, BPTT with a surrogate gradient), direct-to-event
transfer by self-knowledge distillation, and exact spike/synop accounting. Importing
snnlite never imports torch, and leaves the process's malloc settings alone (the ``snnlite``
command and :class:`snnlite.train.Trainer` call :func:`tune_malloc`; see its docstring).
"""
from . import encoding, losses, models, nn, optim
from ._memory import tune_malloc
from ._pool import get_num_threads, set_num_threads
from ._version import __version__

__all__ = ["encoding", "losses", "models", "nn", "optim", "get_num_threads", "set_num_threads",
           "tune_malloc", "__version__"]
