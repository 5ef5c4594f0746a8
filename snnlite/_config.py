"""Numba compilation flags and the kernel cache, in one place.

Compiled kernels are cached on disk (``SNNLITE_NO_CACHE=1`` turns that off) in a folder
keyed by a hash of the kernel sources, under ``$NUMBA_CACHE_DIR`` if set, else the user
cache folder (see :func:`kernel_cache_dir`). Each function the decorators here compile gets
its own numba cache whose locator puts the files of functions defined in ``snnlite/kernels``
in that folder (others go where numba puts them); numba's global settings are left alone,
so importing snnlite changes nothing for other numba code.

``fastmath`` never includes ``nnan``/``ninf``, so NaN and infinity checks keep working inside
kernels; kernels whose results are matched bit for bit against SpikingJelly (the LIF
kernels) are compiled without fastmath at all.
"""
import functools
import hashlib
import os
from pathlib import Path

import numba
from numba.core import caching
from numba.core.dispatcher import Dispatcher

CACHE = os.environ.get("SNNLITE_NO_CACHE", "") in ("", "0")
FASTMATH = {"contract", "arcp", "nsz", "reassoc"}


def _vector_bits():
    """Width of the float vectors LLVM generates for the CPU numba compiles for: 512 where it
    has AVX-512 and LLVM does not prefer 256-bit vectors on it (AMD Zen 4 and later; LLVM's
    Intel models prefer 256 bits), else 256. Kernels size their register blocks by it."""
    import llvmlite.binding as ll
    name = numba.config.CPU_NAME
    if not name or name == "host":
        name = ll.get_host_cpu_name()
    features = numba.config.CPU_FEATURES or ll.get_host_cpu_features().flatten()
    return 512 if "+avx512f" in features.split(",") and name.startswith("znver") else 256


VECTOR_BITS = _vector_bits()
_KERNELS = Path(__file__).resolve().parent / "kernels"


def _jit(**options):
    """``numba.njit(**options)``, cached on disk (if CACHE) through :class:`_KernelCache`."""
    jit = numba.njit(**options)

    def decorate(fn):
        disp = jit(fn)
        if CACHE and isinstance(disp, Dispatcher):  # not under NUMBA_DISABLE_JIT
            disp._cache = _KernelCache(disp.py_func)  # what cache=True does, our locator first
        return disp
    return decorate


njit = _jit(nogil=True, fastmath=FASTMATH, error_model="numpy")
"""Serial kernel with reassociating float maths (reductions vectorise)."""

njit_exact = _jit(nogil=True, error_model="numpy")
"""Serial kernel with IEEE float maths, for results matched bit for bit."""

njit_inline = numba.njit(inline="always", nogil=True, error_model="numpy")
"""Scalar step maths (the LIF step) inlined into its callers in Numba's IR, so one
definition serves every kernel at no call cost; IEEE float maths like ``njit_exact``
(inlined code takes the caller's flags: call it from ``njit_exact`` kernels). It is cached
as part of its callers."""


njit_part = numba.njit(inline="always", nogil=True, fastmath=FASTMATH, error_model="numpy")
"""A piece of one ``njit`` kernel, inlined into it in Numba's IR. numba compiles a callee
jitted on its own once alone and then again inside every caller (it links the callee's code
in and re-optimises it there); a large piece that one kernel calls compiles once this way
(Winograd's transforms: ``correlate`` 6.6 -> 4.9 s). numba's inliner reruns the piece's
front end at every call site, though, so pieces that several kernels call stay jitted on
their own (measured: the event convolution's pieces compiled slower inlined). Called from
Python (as tests do) it compiles alone, uncached."""


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


@functools.cache
def _kernel_cache_dir():
    return kernel_cache_dir()  # hashed once per process


class _KernelCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Numba cache locator that claims the functions defined in ``snnlite/kernels`` and keeps
    their cache files in :func:`kernel_cache_dir`. Source stamps stay numba's (a hash of the
    function's own file); the folder's name covers the other kernel files."""

    def __init__(self, py_func, py_file):
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = _kernel_cache_dir()

    def get_cache_path(self):
        return self._cache_path

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != _KERNELS:
            return None  # not a kernel: numba's own locators decide
        return super().from_function(py_func, py_file)  # None if the folder is not writable


class _KernelCacheImpl(caching.CompileResultCacheImpl):
    # $NUMBA_CACHE_LOCATOR_CLASSES, if set, replaces this list (numba's own override)
    _locator_classes = [_KernelCacheLocator, *caching.CompileResultCacheImpl._locator_classes]


class _KernelCache(caching.FunctionCache):
    """numba's per-function cache (``cache=True``), with :class:`_KernelCacheLocator` tried
    before numba's locators."""

    _impl_class = _KernelCacheImpl
