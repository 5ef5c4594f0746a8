"""Numba compilation flags and the kernel cache, in one place.

Compiled kernels are cached on disk (``SNNLITE_NO_CACHE=1`` turns that off) in a folder
keyed by a hash of the kernel sources, under ``$NUMBA_CACHE_DIR`` if set, else the user
cache folder (see :func:`kernel_cache_dir`). ``fastmath`` never includes ``nnan``/``ninf``, so
NaN and infinity checks keep working inside kernels; kernels whose results are matched
bit for bit against SpikingJelly (the LIF kernels) are compiled without fastmath at all.
"""
import hashlib
import os
from pathlib import Path

import numba

CACHE = os.environ.get("SNNLITE_NO_CACHE", "") in ("", "0")
FASTMATH = {"contract", "arcp", "nsz", "reassoc"}

njit = numba.njit(cache=CACHE, nogil=True, fastmath=FASTMATH, error_model="numpy")
"""Serial kernel with reassociating float maths (reductions vectorise)."""

njit_exact = numba.njit(cache=CACHE, nogil=True, error_model="numpy")
"""Serial kernel with IEEE float maths, for results matched bit for bit."""

njit_inline = numba.njit(inline="always", nogil=True, error_model="numpy")
"""Scalar step maths (the LIF step) inlined into its callers in Numba's IR, so one
definition serves every kernel at no call cost; IEEE float maths like ``njit_exact``
(inlined code takes the caller's flags: call it from ``njit_exact`` kernels). It is cached
as part of its callers."""


def kernel_cache_dir(root=None):
    """Where numba caches snnlite's kernels: ``<base>/kernels-<hash of their sources>``.

    Numba revalidates a cached kernel against the timestamp of its own source file only, so
    after a change to a kernel that it calls from another file (conv -> winograd, say) it
    would go on running the stale compiled copy. Keying the folder on all kernel sources
    (and this file) rules that out. ``<base>`` is ``$NUMBA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/snnlite/numba`` (``~/.cache/snnlite/numba``).
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent
    h = hashlib.sha256()
    for p in sorted((root / "kernels").glob("*.py")) + [root / "_config.py"]:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "snnlite", "numba")
    return os.path.join(base, "kernels-" + h.hexdigest()[:16])
