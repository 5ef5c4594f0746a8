"""Numba kernels. Importing this package compiles nothing and changes no numba setting: each
kernel's on-disk cache goes to :func:`snnlite._config.kernel_cache_dir` through the cache
locator its decorator gives it (see :mod:`snnlite._config`)."""
from . import batchnorm, conv, event, fused, lif, linear, pool, util, winograd  # noqa: F401
