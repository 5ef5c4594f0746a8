"""Keep large buffers on the heap.

glibc serves allocations above a threshold (at most 32 MB) with fresh ``mmap`` pages and
unmaps them on free, so every training step pays page faults to zero 30-70 MB activations
again (a third of the step time measured on cifarnet_small, T=8, B=32). Raising the mmap
and trim thresholds lets freed activations be reused by the next step.

These are settings of the whole host process, so ``import snnlite`` does not touch them:
the ``snnlite`` command (:func:`snnlite.cli.main`) and :class:`snnlite.train.Trainer` apply
them, once, on glibc systems; a program with its own training loop calls
``snnlite.tune_malloc()`` itself. ``SNNLITE_MALLOC_TUNE=0`` leaves malloc alone everywhere.
"""
import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_applied = False


def tune_malloc(mmap_threshold=1 << 30, trim_threshold=(1 << 31) - 1):
    """Raise glibc's mmap/trim thresholds; returns True if applied."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("SNNLITE_MALLOC_TUNE") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _applied = bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and \
        bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
    return _applied
