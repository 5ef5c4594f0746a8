"""A restricted unpickler for the Python 2 pickles inside the CIFAR archives.

It resolves only the globals numpy needs to rebuild arrays; a pickle that asks for anything
else is refused, so a tampered archive cannot run code.
"""
from __future__ import annotations

import io
import pickle

import numpy as np


def numpy_multiarray():
    """numpy's ``multiarray`` module under its numpy 2 or numpy 1 name."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 1.26
        from numpy.core import multiarray
    return multiarray


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR pickle may reference: numpy array reconstruction."""
    ma = numpy_multiarray()
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = ma._reconstruct
        allowed[(module, "scalar")] = ma.scalar
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves numpy array reconstruction globals and refuses all others."""

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': only numpy array "
                "reconstruction globals are allowed in a dataset pickle") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent id in a dataset pickle")


def restricted_loads(data: bytes):
    """Unpickle ``data`` (Python 2 pickle, bytes keys) with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()

