"""Numba kernels. Importing this package compiles nothing; it loads every kernel module
with numba's cache pointed at :func:`snnlite._config.kernel_cache_dir`, then restores
numba's setting for other code."""
import numba

from .. import _config

_saved = numba.config.CACHE_DIR
if _config.CACHE:
    numba.config.CACHE_DIR = _config.kernel_cache_dir()
try:
    from . import batchnorm, conv, event, fused, lif, linear, pool, util, winograd  # noqa: F401
finally:
    numba.config.CACHE_DIR = _saved
