"""BLAS thread limiter: OpenBLAS held to one thread while the kernel pool splits the work.

OpenBLAS keeps its own worker threads spinning after each call; next to the workers of
:mod:`snnlite._pool` they would fight over the cores. The functional layer therefore runs
kernels that call GEMM inside :func:`blas_threads` (1), each pool worker then making its own
single-threaded BLAS calls. numpy and scipy each bundle an OpenBLAS (numba's ``np.dot``
calls scipy's), so both are limited, at run time, through the libraries' own C entry
points (the way threadpoolctl does it, without the dependency).
"""
import contextlib
import ctypes
import os

_SETTERS = ("openblas_set_num_threads", "scipy_openblas_set_num_threads",
            "scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")
_GETTERS = ("openblas_get_num_threads", "scipy_openblas_get_num_threads",
            "scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_")
_CORENAMES = ("openblas_get_corename", "scipy_openblas_get_corename",
              "scipy_openblas_get_corename64_", "openblas_get_corename64_")
# OpenBLAS cores whose sgemm/dgemm take unpacked "small matrix" kernels when M*N*K <= 1e6
# (kernel/x86_64/KERNEL.SKYLAKEX, which the other two include; AMD Zen 4/5 run them)
_SMALL_KERNEL_CORES = ("skylakex", "cooperlake", "sapphirerapids")
_libs = None
_cores = None


def _find_symbol(lib, names):
    for name in names:
        fn = getattr(lib, name, None)
        if fn is not None:
            return fn
    return None


def _blas_libs():
    """(getter, setter) pairs of every OpenBLAS loaded in this process."""
    global _libs, _cores
    if _libs is None:
        import numpy  # noqa: F401  (loads numpy's OpenBLAS)
        import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls)
        paths = set()
        try:
            with open("/proc/self/maps") as f:
                for line in f:
                    path = line.rsplit(None, 1)[-1]
                    name = os.path.basename(path).lower()
                    if "openblas" in name and ".so" in name:
                        paths.add(path)
        except OSError:  # not Linux: leave BLAS threading alone
            pass
        found, cores = [], []
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            get, set_ = _find_symbol(lib, _GETTERS), _find_symbol(lib, _SETTERS)
            if get is not None and set_ is not None:
                get.restype = ctypes.c_int
                set_.argtypes = [ctypes.c_int]
                found.append((get, set_))
            core = _find_symbol(lib, _CORENAMES)
            if core is not None:
                core.restype = ctypes.c_char_p
                cores.append((core() or b"").decode(errors="replace"))
        _libs, _cores = found, cores
    return _libs


def blas_cores() -> list[str]:
    """Core names the loaded OpenBLAS libraries run kernels for ("Haswell", "SkylakeX", ...)."""
    _blas_libs()
    return list(_cores)


def small_gemm_limit() -> float:
    """M*N*K up to which a loaded OpenBLAS multiplies with its unpacked small-matrix kernels
    (its AVX-512 cores), else 0. Those run the narrow products of a convolution far below
    the packed kernels' speed, so callers batch work until each product exceeds this."""
    return 1e6 if any(c.lower() in _SMALL_KERNEL_CORES for c in blas_cores()) else 0.0


def get_blas_threads() -> list[int]:
    """Thread counts of the loaded OpenBLAS libraries."""
    return [get() for get, _ in _blas_libs()]


@contextlib.contextmanager
def blas_threads(n: int):
    """Limit every loaded OpenBLAS to ``n`` threads inside the block."""
    libs = _blas_libs()
    old = [get() for get, _ in libs]
    for _, set_ in libs:
        set_(n)
    try:
        yield
    finally:
        for (_, set_), k in zip(libs, old):
            set_(k)
