"""The kernel thread pool: the one pool that every parallel kernel call runs on.

Kernels are serial Numba functions compiled with ``nogil=True``; this module splits their
outermost loop into one contiguous range (:func:`chunks`) or one interleaved share
(:func:`shares`) per worker and runs the shares on a small pool of Python threads, the
caller's thread taking the last one. Compared with Numba's ``parallel=True`` this compiles
in a fraction of the time (no parfor lowering per kernel), keeps a single pool next to BLAS
(which the kernels call single-threaded, see :mod:`snnlite._blas`) and makes the work split
explicit and deterministic.

``SNNLITE_NUM_THREADS`` sets the worker count (default: the CPUs this process may use).
"""
import os
from concurrent.futures import ThreadPoolExecutor

_pool = None
_workers = None


def get_num_threads():
    global _workers
    if _workers is None:
        env = os.environ.get("SNNLITE_NUM_THREADS")
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
        _workers = max(1, int(env)) if env else cpus
    return _workers


def set_num_threads(n):
    """Use ``n`` workers from now on."""
    global _workers, _pool
    if int(n) < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {n}")
    _workers = int(n)
    if _pool is not None:
        _pool.shutdown(wait=True)
        _pool = None


def _run(calls):
    """Run the zero-argument callables, the last in this thread; re-raise the first error."""
    global _pool
    if len(calls) == 1:
        calls[0]()
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=get_num_threads() - 1,
                                   thread_name_prefix="snnlite-kernel")
    futures = [_pool.submit(c) for c in calls[:-1]]
    calls[-1]()
    for f in futures:
        f.result()


def chunks(fn, total, *args):
    """``fn(*args, lo, hi)`` for contiguous ranges [lo, hi) covering range(total)."""
    P = max(1, min(get_num_threads(), total))
    bounds = [total * i // P for i in range(P + 1)]
    _run([lambda lo=lo, hi=hi: fn(*args, lo, hi) for lo, hi in zip(bounds, bounds[1:])])


def shares(fn, *args):
    """``fn(*args, tid, P)`` for tid in range(P): each worker takes items tid, tid + P, ..."""
    P = get_num_threads()
    _run([lambda tid=tid: fn(*args, tid, P) for tid in range(P)])
