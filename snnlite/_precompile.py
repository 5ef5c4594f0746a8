"""Compiling a model's kernels before their first call, on every core.

numba compiles a kernel on its first call, one kernel at a time (its compiler holds a
process-wide lock), so the first training step of a convolutional model on a machine waits
for some 15 kernels compiled back to back. The kernel cache (:mod:`snnlite._config`) keeps
them after that, so this is paid once per machine and kernel version.

:func:`precompile` compiles the kernels a built-in model calls from Python (their argument
types are recorded in ``signatures.json`` next to this file) in a pool of processes that
write the same cache, so that first start waits for the slowest share instead of the sum.
It returns at once when the cache already holds them all. Kernels it does not know (another
model, another dtype) compile on first call as before.

``examples/benchmarks/kernel_signatures.py`` rewrites ``signatures.json`` from a training
step and an evaluation of each built-in model, with direct and TTFS input, each model in a
process with an empty cache (a test checks that it is current).
"""
import itertools
import json
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

SIGNATURES = Path(__file__).resolve().parent / "signatures.json"
_MODULE = "snnlite.kernels."
_helpers = []  # helper processes started by precompile, possibly still compiling


def _encode(t):
    """A numba argument type as JSON, or None where it is not one this module handles."""
    from numba.core import types
    if isinstance(t, types.Array) and t.aligned and isinstance(t.dtype, (types.Number,
                                                                           types.Boolean)):
        return ("array", str(t.dtype), t.ndim, t.layout, not t.mutable)
    if isinstance(t, (types.Integer, types.Float, types.Boolean)) and not isinstance(
            t, types.Literal):
        return str(t)
    return None


def _decode(x):
    from numba.core import types
    if isinstance(x, (list, tuple)):
        _, dtype, ndim, layout, readonly = x
        return types.Array(_decode(dtype), ndim, layout, readonly=readonly)
    return types.boolean if x == "bool" else getattr(types, x)


def _kernel(name):
    """The dispatcher ``<module>.<function>`` of snnlite.kernels."""
    import importlib
    mod, fn = name.rsplit(".", 1)
    return getattr(importlib.import_module(_MODULE + mod), fn)


@contextmanager
def recording():
    """Collect the kernels first called from Python in this block: yields a dict
    {(kernel name, tuple of encoded argument types): seconds spent compiling or loading}.

    It watches numba's ``Dispatcher._compile_for_args``, which a call from Python reaches
    when no compiled version in memory fits its arguments; kernels calling kernels do not go
    through it."""
    from numba.core.dispatcher import Dispatcher
    seen = {}
    original = Dispatcher._compile_for_args

    def watch(self, *args, **kws):
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kws)
        finally:
            fn = self.py_func
            if fn.__module__.startswith(_MODULE):
                sig = tuple(_encode(self.typeof_pyval(a)) for a in args)
                key = (fn.__module__[len(_MODULE):] + "." + fn.__name__, sig)
                # pool threads calling a kernel at once all wait for the one compile
                seen[key] = max(seen.get(key, 0.0), time.perf_counter() - t0)
    Dispatcher._compile_for_args = watch
    try:
        yield seen
    finally:
        Dispatcher._compile_for_args = original


def load(path=SIGNATURES):
    """{model: {phase: [(kernel, argument types as JSON, seconds), ...]}} from
    ``signatures.json``; the phases are "train" (what a training step calls) and "eval" (what
    an evaluation calls besides)."""
    with open(path) as f:
        raw = json.load(f)
    kernels = raw["kernels"]
    return {m: {ph: [tuple(kernels[i]) for i in ids] for ph, ids in phases.items()}
            for m, phases in raw["models"].items()}


def _is_cached(disp, argtypes):
    """Whether the kernel cache holds ``disp`` compiled for ``argtypes`` (reads its index
    only; numba's cache internals, as in :mod:`snnlite._config`)."""
    cache = getattr(disp, "_cache", None)
    if cache is None or not hasattr(cache, "_index_key"):
        return False  # caching off (SNNLITE_NO_CACHE, NUMBA_DISABLE_JIT): nothing to gain
    try:  # the key numba files a compile for these argument types under
        key = cache._index_key(tuple(argtypes), disp.targetctx.codegen())
        return key in cache._cache_file._load_index()
    except Exception:  # unreadable index: numba recompiles, and so do we
        return False


def missing(model, path=SIGNATURES):
    """The recorded kernels of ``model`` that the cache lacks, by phase (see :func:`load`);
    empty when caching is off, the model is not a recorded one or the record is unreadable
    (precompiling only ever saves time: it never stops a run)."""
    from . import _config
    if not _config.CACHE:
        return {}
    try:
        table = load(path).get(model, {})
        out = {}
        for phase, jobs in table.items():
            out[phase] = []
            for name, sig, seconds in jobs:
                try:
                    disp, argtypes = _kernel(name), tuple(_decode(a) for a in sig)
                except (ImportError, AttributeError, ValueError, TypeError):
                    continue  # renamed since recorded, or a damaged entry: on first call
                if not hasattr(disp, "compile"):
                    continue  # NUMBA_DISABLE_JIT: plain Python
                if not _is_cached(disp, argtypes):
                    out[phase].append((name, sig, float(seconds)))
        return out
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return {}  # no usable record (a damaged install): kernels compile on first call


def _shares(jobs, n):
    """Split jobs [(name, sig, seconds)] into n lists of near-equal total seconds (longest
    first onto the least loaded)."""
    shares = [[] for _ in range(n)]
    load_ = [0.0] * n
    for job in sorted(jobs, key=lambda j: -j[2]):
        i = load_.index(min(load_))
        shares[i].append(job)
        load_[i] += job[2]
    return shares


def _compile(jobs, done=None):
    """Compile ``jobs`` [(name, sig, seconds)] in this process, into the cache;
    ``done(i)`` after job i."""
    for i, (name, sig, _) in enumerate(jobs):
        try:
            _kernel(name).compile(tuple(_decode(a) for a in sig))
        except Exception as e:  # it will compile (and fail visibly) on its first call
            print(f"snnlite: precompiling {name} failed ({type(e).__name__}: {e})",
                  file=sys.stderr)
        if done is not None:
            done(i)


def wait():
    """Wait for the helper processes of :func:`precompile` still compiling (the kernels only
    an evaluation calls) to finish."""
    while _helpers:
        _helpers.pop().wait()


_HELPER = "import sys; from snnlite._precompile import _helper; _helper(sys.argv[1])"


def _helper(jobs):
    """A helper process of :func:`precompile`: compile ``jobs`` (JSON), printing each job's
    index when done."""
    jobs = [tuple(j) for j in json.loads(jobs)]

    def done(i):
        try:
            print(i, flush=True)
        except OSError:  # the parent stopped listening (it went on, or ended): keep going
            pass
    _compile(jobs, done)


def precompile(model, processes=None, progress=True, path=SIGNATURES):
    """Compile the kernels that ``model`` (a built-in model's name) calls into the kernel
    cache, on ``processes`` processes (default: the CPUs this process may use), from the
    signatures in ``path``.

    Returns when those of a training step are compiled; those only an evaluation calls go
    on compiling in the helper processes meanwhile (with one process they are left to
    their first call). Returns the number of kernels waited for: 0 when all were cached (at
    the cost of reading the cache's indexes)."""
    todo = missing(model, path)
    first, later = todo.get("train", []), todo.get("eval", [])
    if not first:
        return 0
    from ._pool import get_num_threads
    n = max(1, min(processes or get_num_threads(), len(first)))
    shares = _shares(first, n)
    counts = [len(share) for share in shares]  # each share leads with training kernels
    for job, share in zip(sorted(later, key=lambda j: -j[2]), itertools.cycle(shares[1:])):
        share.append(job)  # after them: nobody waits for these
    seconds = max(sum(job[2] for job in share[:c]) for share, c in zip(shares, counts))
    print(f"compiling the kernels of {model} on {n} {'processes' if n > 1 else 'process'} "
          f"(once; about {seconds:.0f} s on the 2-CPU machine they were timed on)", flush=True)
    waiting = threading.Condition()
    left = [len(first)]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(first), unit="kernel", desc="compiling", leave=False)

    def marker(count):
        def mark(i):  # job i of a share is compiled
            if int(i) < count:
                with waiting:
                    left[0] -= 1
                    if bar is not None:
                        bar.update(1)
                    waiting.notify()
        return mark

    helpers, mine = [], shares[0][:counts[0]]
    for share, count in zip(shares[1:], counts[1:]):
        try:
            p = subprocess.Popen([sys.executable, "-c", _HELPER, json.dumps(share)],
                                 stdout=subprocess.PIPE, text=True)
        except OSError:  # no process to spare: its training kernels compile here
            mine += share[:count]
            continue
        threading.Thread(target=lambda p=p, mark=marker(count): [mark(i) for i in p.stdout],
                         daemon=True).start()
        helpers.append(p)
    _helpers.extend(helpers)
    _compile(mine, marker(len(mine)))
    with waiting:  # a helper that died reports nothing: stop once every helper has ended
        while left[0] > 0 and not all(p.poll() is not None for p in helpers):
            waiting.wait(timeout=0.5)
    if bar is not None:
        bar.close()
    return len(first)
