"""The integer network of a bundle, run step by step with numpy (the rules of
``snnlite.quant.formats``, the integer engine's arithmetic).

Per population and step: currents (int64) = bias + the projections of the sources' spikes
(or of the dense input's integer codes), then the integer LIF step (leak ``(d * M) >> F``,
saturation to the state width, fire on ``h >= v_th``, reset) or the readout's sum. The
convolutions and matrix products run in float64 on integer values: exact, because the
bundle's check proves every partial sum stays within int32 (far below 2^53).
"""
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass
class RuntimeResult:
    """logits [B, K] float64 (acc * step / T); acc [B, K] int64; saturated {layer: [B, T]}
    clipped membranes; spikes {layer: [T, B, C, H, W] uint8} when recorded."""

    logits: np.ndarray
    acc: np.ndarray
    saturated: dict
    spikes: dict | None = None


def prepare(bundle, images, encoding=None, T=None):
    """The model input [T, B, C, H, W] of raw images (uint8, or float in [0, 1]) [B, C, H, W]
    under ``encoding`` (default: the bundle's) with ``T`` steps: direct coding normalises
    with the training set's mean and std (float32); ttfs and latency encode the raw image
    (as ``snnlite.encoding`` does)."""
    m = bundle.model
    enc = encoding or bundle.encoding
    T = int(T or bundle.T)
    x = np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255)
    if x.dtype.kind != "f" or x.ndim != 4:
        raise ValueError(f"images: expected uint8 or float [B, C, H, W], got {x.dtype} "
                         f"{x.shape}")
    if T < 1:
        raise ValueError(f"T: expected a positive integer, got {T}")
    if enc == "direct":
        mean = np.asarray(m["mean"], np.float32)[:, None, None]
        std = np.asarray(m["std"], np.float32)[:, None, None]
        z = ((x.astype(np.float32, copy=False) - mean) / std).astype(np.float32, copy=False)
        return np.broadcast_to(z[None], (T,) + z.shape)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError("images: spike encoders take values in [0, 1]")
    if enc == "ttfs":
        thr = np.linspace(1.0, 1.0 / T, T)
        t = np.searchsorted(-thr, -x.astype(np.float64), side="right")
        t = np.where(t < T, t, -1)
    elif enc == "latency":
        t = np.round((T - 1) * (1.0 - x.astype(np.float64))).astype(np.int64)
    else:
        raise ValueError(f"encoding: expected direct, ttfs or latency, got {enc!r}")
    out = np.zeros((T,) + x.shape, x.dtype)
    fired = t >= 0
    out[(t[fired],) + np.nonzero(fired)] = 1
    return out


def _conv(x, w, stride, pad):
    """(N, O, Ho, Wo) int64: x (N, C, H, W) integers convolved with w (O, C, k, k)."""
    k = w.shape[-1]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.tensordot(win, w.astype(np.float64), axes=([1, 4, 5], [1, 2, 3]))
    return np.rint(y).astype(np.int64).transpose(0, 3, 1, 2)


def _sum_pool(s, p):
    if p == 1:
        return s
    N, C, H, W = s.shape
    return s.reshape(N, C, H // p, p, W // p, p).sum((3, 5))


def _current(q, src, kind_dense):
    """int64 (B, O, Ho, Wo) current of projection q from source values src (B, C, H, W)."""
    B = src.shape[0]
    if q["kind"] == "identity":
        return src.astype(np.int64) * q["w"].reshape(-1, 1, 1)
    pooled = _sum_pool(src, q["pool"])
    if q["kind"] == "conv":
        return _conv(pooled, q["w"], q["stride"], q["padding"])
    y = pooled.reshape(B, -1).astype(np.float64) @ q["w"].T.astype(np.float64)
    return np.rint(y).astype(np.int64).reshape((B,) + q["out_shape"])


def _lif(cur, p, lo, hi):
    """Spikes (T, B, ...) uint8 and saturations (B, T) of the integer LIF on cur (T, B, C,
    H, W)."""
    T, B = cur.shape[:2]
    shape = (1, -1, 1, 1)
    th = p["v_th"].reshape(shape)
    rest = p["v_reset"].reshape(shape)  # 0 under soft reset (the charge leaks towards 0)
    M, F = p["leak"]
    v = np.broadcast_to(rest, cur.shape[1:]).copy()
    spikes = np.zeros(cur.shape, np.uint8)
    sat = np.zeros((B, T), np.int64)
    for t in range(T):
        x = cur[t]
        # charge (>> on int64 is an arithmetic shift: rounding towards minus infinity)
        h = v + (((x - (v - rest)) * M) >> F) if p["decay_input"] else \
            v - (((v - rest) * M) >> F) + x
        clipped = (h > hi) | (h < lo)
        sat[:, t] = clipped.reshape(B, -1).sum(1)
        h = np.clip(h, lo, hi)
        # fire
        s = h >= th
        spikes[t] = s
        # reset
        v = np.where(s, np.broadcast_to(rest, h.shape) if p["hard_reset"] else h - th, h)
    return spikes, sat


def run(bundle, x, record=False):
    """Run the bundle's network on x [T, B, C, H, W] (binary spikes, or dense floats under
    direct coding; see :func:`prepare`). Returns :class:`RuntimeResult`."""
    x = np.asarray(x)
    if x.ndim != 5 or tuple(x.shape[2:]) != bundle.input_shape or min(x.shape[:2]) < 1:
        raise ValueError(f"x: expected shape [T, B, {', '.join(map(str, bundle.input_shape))}],"
                         f" got {x.shape}")
    if x.dtype.kind not in "fiub" or (x.dtype.kind == "f" and not np.isfinite(x).all()):
        raise ValueError("x: expected finite numbers")
    T, B = x.shape[:2]
    fmt = bundle.fmt
    lo, hi = -2 ** (fmt["state_bits"] - 1), 2 ** (fmt["state_bits"] - 1) - 1
    if bundle.input_kind == "dense":
        xm = 2 ** (fmt["input_bits"] - 1) - 1
        xin = np.clip(np.rint(x.astype(np.float64) / bundle.input_step), -xm, xm) \
            .astype(np.int64)
    else:
        if not np.isin(x, (0, 1)).all():
            raise ValueError("x: this integer model takes binary event input (it was "
                             "quantized for events)")
        xin = x.astype(np.int64)
    maps, saturated, acc = {-1: xin}, {}, None
    for i, p in enumerate(bundle.pops):
        if p["kind"] == "maxpool":
            src, k = maps[p["source"]], p["pool"]
            Tn, Bn, C, H, W = src.shape
            maps[i] = src.reshape(Tn, Bn, C, H // k, k, W // k, k).max((4, 6))
            continue
        C = p["shape"][0]
        cur = np.zeros((T, B) + p["shape"], np.int64)
        if p["bias"] is not None:
            cur += p["bias"].reshape(C, 1, 1)
        for q in p["projections"]:
            src = maps[q["source"]]
            if q["source"] < 0 and bundle.input_kind == "dense" and \
                    (T == 1 or (src == src[:1]).all()):
                cur += _current(q, src[0], True)[None]  # the same frame at every step
                continue
            for t in range(T):
                cur[t] += _current(q, src[t], q["source"] < 0)
        if p["kind"] == "readout":
            acc = cur.sum(0).reshape(B, -1)
            step = p["step"]
            continue
        maps[i], saturated[p["name"]] = _lif(cur, p, lo, hi)
    logits = acc.astype(np.float64) * step[None, :] / float(T)
    spikes = None
    if record:
        spikes = {p["name"]: maps[i].astype(np.uint8) for i, p in enumerate(bundle.pops)
                  if p["kind"] != "readout"}
    return RuntimeResult(logits, acc, saturated, spikes)
