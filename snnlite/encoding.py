"""Input encoders: images ``[B, C, H, W]`` to time-major inputs ``[T, B, C, H, W]``.

- ``direct``: the float image at every step (a stride-0 view, so layers compute it once).
- ``ttfs``: time to first spike, the D2E paper's encoder. Intensity x in [0, 1] fires once,
  at the first step t (0-based) where x > thr_t with thr = linspace(1, 1/T, T), i.e.
  t = floor(T (1 - x)) + 1; x <= 1/T never fires; step 0 stays empty.
- ``latency``: SpikingJelly's linear latency code, t = round((T - 1)(1 - x)) (0-based);
  every element fires exactly once, x = 1 at step 0, x = 0 at step T-1.

TTFS and latency take the raw image in [0, 1], before any normalisation;
:func:`model_input` applies that rule (normalise for direct coding only) to raw images.
"""
import numpy as np


def _check_image(x, unit_range):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy array, got {type(x).__name__}")
    if x.dtype.type not in (np.float32, np.float64):
        raise TypeError(f"x: expected float32 or float64, got {x.dtype}")
    if x.ndim != 4:
        raise ValueError(f"x: expected shape [B, C, H, W], got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("x: contains NaN or infinity")
    if unit_range and x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x: expected values in [0, 1], got [{x.min()}, {x.max()}]")


def _check_T(T):
    if not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T: expected a positive integer, got {T!r}")


def direct(x, T):
    """``[T, B, C, H, W]`` read-only view repeating x at every step."""
    _check_image(x, unit_range=False)
    _check_T(T)
    return np.broadcast_to(x[None], (T,) + x.shape)


def ttfs_times(x, T):
    """Firing step (0-based) of each element under :func:`ttfs`, or -1 if it never fires."""
    _check_image(x, unit_range=True)
    _check_T(T)
    thr = np.linspace(1.0, 1.0 / T, T)
    # the first t with x > thr[t]; thr is decreasing, so count the thresholds x does not pass
    t = np.searchsorted(-thr, -x.astype(np.float64), side="right")
    return np.where(t < T, t, -1)


def ttfs(x, T):
    """Binary ``[T, B, C, H, W]``: each element spikes at most once (see module doc)."""
    return _one_hot_time(ttfs_times(x, T), T, x.dtype)


def latency(x, T):
    """Binary ``[T, B, C, H, W]``: SpikingJelly's linear latency code (see module doc)."""
    _check_image(x, unit_range=True)
    _check_T(T)
    t = np.round((T - 1) * (1.0 - x.astype(np.float64))).astype(np.int64)
    return _one_hot_time(t, T, x.dtype)


def _one_hot_time(t, T, dtype):
    out = np.zeros((T,) + t.shape, dtype)
    fired = t >= 0
    idx = np.nonzero(fired)
    out[(t[fired],) + idx] = 1
    return out


ENCODERS = {"direct": direct, "ttfs": ttfs, "latency": latency}


def encode(name, x, T):
    """Encode with the encoder called ``name`` (direct, ttfs or latency)."""
    if name not in ENCODERS:
        raise ValueError(f"encoding: expected one of {sorted(ENCODERS)}, got {name!r}")
    return ENCODERS[name](x, T)


def model_input(x, enc, T, mean, std):
    """Encode raw images x [B, 3, H, W] in [0, 1]: direct coding sees the image normalised
    by the dataset's ``mean`` and ``std``, event encoders (TTFS, latency) the raw one."""
    from .data import normalize  # here: the encoders themselves need numpy only

    if enc == "direct":
        return direct(normalize(x, mean, std), T)
    return encode(enc, x, T)
