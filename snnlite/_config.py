"""Numba compilation flags, in one place.

``SNNLITE_NO_CACHE=1`` turns the on-disk kernel cache off (numba's own ``NUMBA_CACHE_DIR``
still chooses where the cache lives). ``fastmath`` never includes ``nnan``/``ninf``, so
NaN and infinity checks keep working inside kernels; kernels whose results are matched
bit for bit against SpikingJelly (the LIF kernels) are compiled without fastmath at all.
"""
import os

import numba

CACHE = os.environ.get("SNNLITE_NO_CACHE", "") in ("", "0")
FASTMATH = {"contract", "arcp", "nsz", "reassoc"}

njit = numba.njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy")
"""Serial kernel with reassociating float maths (reductions vectorise)."""

njit_exact = numba.njit(cache=CACHE, nogil=True, error_model="numpy")
"""Serial kernel with IEEE float maths, for results matched bit for bit."""
