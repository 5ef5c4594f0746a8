"""snnlite: spiking neural networks on NumPy and Numba.

CPU training of convolutional SNNs (LIF, BPTT with a surrogate gradient), direct-to-event
transfer by self-knowledge distillation, and exact spike/synop accounting. Importing
snnlite never imports torch.
"""
from ._memory import tune_malloc

tune_malloc()

from . import encoding, losses, models, nn, optim  # noqa: E402
from ._parallel import get_num_threads, set_num_threads  # noqa: E402

__version__ = "0.1.0"
__all__ = ["encoding", "losses", "models", "nn", "optim", "get_num_threads", "set_num_threads",
           "__version__"]
