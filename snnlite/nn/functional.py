"""The functional layer: checks arguments, coerces dtype and layout, allocates, calls kernels.

Kernels run on :mod:`snnlite._pool`'s pool, each worker taking a share of the outermost
loop. Functions here are stateless apart from an optional :class:`Workspace` of scratch
buffers that a layer keeps between calls (large allocations per step cost page faults).
Stateless layers take ``[N, ...]`` arrays (time folded into the batch by the caller).
"""
import math
import time

import numpy as np

from .. import _blas, _pool
from ..kernels import batchnorm as kbn
from ..kernels import conv as kconv
from ..kernels import conv_event as kevent
from ..kernels import conv_lif as kconvlif
from ..kernels import cuba as kcuba
from ..kernels import fused as kfused
from ..kernels import lif as klif
from ..kernels import linear as klin
from ..kernels import pool as kpool
from ..kernels import recurrent as krec
from ..kernels import winograd as kwino

FLOATS = (np.float32, np.float64)


class Workspace:
    """Scratch buffers reused across calls, keyed by name; reallocated when shape or dtype
    change. Contents are undefined on return: callers overwrite before reading."""

    def __init__(self):
        self._bufs = {}

    def get(self, name, shape, dtype):
        buf = self._bufs.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = np.empty(shape, dtype)
            self._bufs[name] = buf
        return buf


def check_float(name, x, ndim=None, dtype=None):
    """Return ``x`` if it is a finite-typed float32/float64 ndarray of rank ``ndim``."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    if x.dtype.type not in FLOATS:
        raise TypeError(f"{name}: expected float32 or float64, got {x.dtype}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {x.shape}")
    return x


def _scratch(ws, name, shape, dtype):
    return np.empty(shape, dtype) if ws is None else ws.get(name, shape, dtype)


PROFILE = None
"""When a dict, the convolutions add to it, per kernel class (``"conv fwd event"``,
``"conv fwd winograd"``, ``"conv dx"``, ``"conv dw"``, ...), the seconds spent and the FLOPs
done (``"<class> flop"``: multiply-adds x 2 that the path really executes, nonzero inputs
only on the event path). Set by :func:`snnlite.bench.kernel_profile`."""


def _timed(kind, flop, fn, *args):
    if PROFILE is None:
        return fn(*args)
    t = time.perf_counter()
    out = fn(*args)
    PROFILE[kind] = PROFILE.get(kind, 0.0) + time.perf_counter() - t
    PROFILE[kind + " flop"] = PROFILE.get(kind + " flop", 0.0) + flop()
    return out


def _flop(nz, event_flop, dense_flop):
    """FLOPs of a batch from the kernels' per-image nonzero counts nz (-1: dense image)."""
    dense = nz < 0
    return event_flop * float(nz[~dense].sum()) + dense_flop * float(dense.sum())


def _padded(O):
    """O rounded up to whole register blocks (see :func:`.conv_event.block_width`)."""
    b = kevent.block_width(O)
    return -(-O // b) * b


def _narrow_or(O, wide, narrow):
    """The driver compiled for O output channels' register block width."""
    return wide if kevent.block_width(O) == kevent.OB else narrow


def _event_scratch(ws, P, C, H, W, dtype):
    """Per-worker event lists of one image (see :func:`.conv_event.channel_events`)."""
    return (_scratch(ws, "ev_cnt", (P, C), np.int64),
            _scratch(ws, "ev_idx", (P, C, H * W), np.int32),
            _scratch(ws, "ev_val", (P, C, H * W), dtype))


def _event_weights(weight):
    """The event path's weights: (kh*kw*C, O') rows in (ky, kx, c) order, O' >= O columns
    (whole register blocks), zero past O."""
    O, C, kh, kw = weight.shape
    wt = np.zeros((kh * kw * C, _padded(O)), weight.dtype)
    wt[:, :O] = weight.transpose(2, 3, 1, 0).reshape(kh * kw * C, O)
    return wt


def _csr_scratch(ws, P, C, H, W, padding, dtype):
    """Per-worker events sorted by pixel (see :func:`.conv_event.pixel_csr`)."""
    return (_scratch(ws, "ev_ptr", (P, (H + 2 * padding) * (W + 2 * padding) + 1), np.int64),
            _scratch(ws, "ev_key", (P, C * H * W), np.int32),
            _scratch(ws, "ev_kval", (P, C * H * W), dtype))


def _wino_scratch(ws, P, Cin, Cout, H, W, dtype):
    """(images per GEMM group, per-worker scratch) of the Winograd kernels."""
    group = kwino.group_size(Cin, Cout, H, W, _blas.small_gemm_limit())
    return group, _scratch(ws, "wino", (P, kwino.scratch_size(Cin, Cout, H, W, group)), dtype)


def conv2d_forward(x, weight, bias=None, stride=1, padding=0, sparse_below=0.2, ws=None,
                   winograd=True):
    """y (N, O, Ho, Wo) = conv(x (N, C, H, W), weight (O, C, kh, kw)) + bias (O,).

    Images whose fraction of nonzero inputs is below ``sparse_below`` use the event path
    (:mod:`snnlite.kernels.conv_event`); ``sparse_below=0`` forces the dense path
    everywhere. The dense path is Winograd F(2x2, 3x3) for 3x3 stride-1 padding-1
    convolutions of even size (with ``winograd``), else im2col + GEMM.
    """
    check_float("x", x, 4)
    check_float("weight", weight, 4, x.dtype)
    N, C, H, W = x.shape
    O, Cw, kh, kw = weight.shape
    if Cw != C:
        raise ValueError(f"x: expected {Cw} input channels for weight {weight.shape}, got {C}")
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"x: spatial size {(H, W)} too small for kernel {(kh, kw)}, "
                         f"padding {padding}, stride {stride}")
    x = np.ascontiguousarray(x)
    w2 = np.ascontiguousarray(weight.reshape(O, -1))
    wt = _event_weights(weight)
    P = _pool.get_num_threads()
    wino = winograd and kwino.usable(kh, kw, stride, padding, H, W) and kwino.worth(C, O)
    cols = _scratch(ws, "cols", (P, 0 if wino else C * kh * kw, Ho * Wo), x.dtype)
    ev = _event_scratch(ws, P, C, H, W, x.dtype)
    ptr, key, kval = _csr_scratch(ws, P, C, H, W, padding, x.dtype)
    yrow = _scratch(ws, "ev_yrow", (P, Wo, kevent.block_width(O)), x.dtype)
    y = np.empty((N, O, Ho, Wo), x.dtype)
    nz = np.zeros(N, np.int64)
    with _blas.blas_threads(1):
        _timed("conv fwd event" if wino else "conv fwd event + im2col",
               lambda: _flop(nz, 2.0 * kh * kw * O, 0.0 if wino else 2.0 * C * kh * kw * O * Ho
                             * Wo), _pool.shares, _narrow_or(O, kconv.conv2d_forward,
                                                           kconv.conv2d_forward_narrow),
               y.reshape(N, O, Ho * Wo), nz, x, w2, wt, kh, kw, stride, padding,
               float(sparse_below), wino, cols, *ev, ptr, key, kval, yrow)
        images = np.flatnonzero(nz < 0)
        if wino and images.size:
            U = _scratch(ws, "wino_Uf", (16, O, C), x.dtype)
            kwino.weight_transform_forward(U, weight)
            group, scratch = _wino_scratch(ws, P, C, O, H, W, x.dtype)
            _timed("conv fwd winograd", lambda: 2.0 * 16 * O * C * (H // 2) * (W // 2)
                   * images.size, _pool.shares, kwino.correlate, y, x, U, images, scratch,
                   group)
    if bias is not None:
        y += bias.reshape(1, O, 1, 1)
    return y


def conv2d_backward(dy, x, weight, stride=1, padding=0, need_dx=True, need_dw=True,
                    sparse_below=0.2, ws=None, winograd=True):
    """Return (dx or None, dweight or None) for y = conv(x, weight) given dy.

    The weight gradient of an image whose fraction of nonzero inputs is below
    ``sparse_below`` takes the event path (stride 1), the others im2col + GEMM. With
    ``winograd`` (the default), 3x3 stride-1 padding-1 convolutions of even size get their
    input gradient by Winograd F(2x2, 3x3): 2.25x fewer multiplications, rounding within a
    few ulps of the direct sum.
    """
    N, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    check_float("dy", dy, 4, x.dtype)
    if dy.shape != (N, O, Ho, Wo):
        raise ValueError(f"dy: expected shape {(N, O, Ho, Wo)}, got {dy.shape}")
    dy = np.ascontiguousarray(dy)
    x = np.ascontiguousarray(x)
    w2 = np.ascontiguousarray(weight.reshape(O, -1))
    wT = np.ascontiguousarray(w2.T)
    P = _pool.get_num_threads()
    Ckk = C * kh * kw
    wino = need_dx and winograd and kwino.usable(kh, kw, stride, padding, H, W)
    cols = _scratch(ws, "cols", (P, Ckk, Ho * Wo), x.dtype)
    tmp = _scratch(ws, "tmp", (P, Ckk, O), x.dtype)
    dwT = _scratch(ws, "dwT", (P, Ckk, O), x.dtype)
    dwT[:] = 0
    ev = _event_scratch(ws, P, C, H, W, x.dtype)
    rows = (Ho + 2 * (kh - 1)) * (Wo + 2 * (kw - 1)) if need_dw and stride == 1 else 0
    dyp = _scratch(ws, "ev_dyp", (P, rows, _padded(O)), x.dtype)
    dyp[:] = 0  # the border (and the padding channels) must be zero; the kernel writes the rest
    dx = np.empty_like(x) if need_dx else np.empty((0, C, H, W), x.dtype)
    nz = np.zeros(N, np.int64)
    with _blas.blas_threads(1):
        if need_dw or (need_dx and not wino):
            kind = "conv dw" if wino or not need_dx else "conv dx" if not need_dw else \
                "conv dw + dx im2col"
            _timed(kind, lambda: _flop(nz, 2.0 * kh * kw * O, 2.0 * Ckk * O * Ho * Wo)
                   if need_dw else 0.0, _pool.shares,
                   _narrow_or(O, kconv.conv2d_backward, kconv.conv2d_backward_narrow), dx, dwT,
                   nz, dy, x, w2, wT, kh, kw, stride, padding, float(sparse_below),
                   need_dx and not wino, need_dw, cols, tmp, *ev, dyp)
        if wino:
            U = _scratch(ws, "wino_Ub", (16, C, O), x.dtype)
            kwino.weight_transform(U, weight)
            group, scratch = _wino_scratch(ws, P, O, C, H, W, x.dtype)
            _timed("conv dx", lambda: 2.0 * 16 * O * C * (H // 2) * (W // 2) * N,
                   _pool.shares, kwino.correlate, dx, dy, U, np.arange(N), scratch, group)
    dw = dwT.sum(0).T.reshape(weight.shape) if need_dw else None
    return (dx if need_dx else None), dw


# ---------------------------------------------------------------------------- batch norm

def batch_norm_stats(x):
    """Per-channel mean and biased variance (float64) of x (N, C, L)."""
    check_float("x", x, 3)
    mean = np.empty(x.shape[1], np.float64)
    var = np.empty(x.shape[1], np.float64)
    _pool.chunks(kbn.bn_stats, x.shape[1], mean, var, np.ascontiguousarray(x))
    return mean, var


def batch_norm_train(x, gamma, beta, eps):
    """Training-mode batch norm over x (N, C, L). Returns (y, mean, var, rstd), stats float64."""
    check_float("x", x, 3)
    C = x.shape[1]
    if gamma.shape != (C,):
        raise ValueError(f"x: expected {gamma.shape[0]} channels, got {C} (shape {x.shape})")
    x = np.ascontiguousarray(x)
    mean, var = batch_norm_stats(x)
    rstd = 1.0 / np.sqrt(var + eps)
    y = np.empty_like(x)
    _pool.chunks(kbn.bn_normalize, x.shape[0] * C, y, x, mean, rstd, gamma, beta)
    return y, mean, var, rstd


def batch_norm_eval(x, gamma, beta, running_mean, running_var, eps):
    """Eval-mode batch norm over x (N, C, L) with the running statistics."""
    check_float("x", x, 3)
    C = x.shape[1]
    if gamma.shape != (C,):
        raise ValueError(f"x: expected {gamma.shape[0]} channels, got {C} (shape {x.shape})")
    x = np.ascontiguousarray(x)
    mean = running_mean.astype(np.float64)
    rstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    y = np.empty_like(x)
    _pool.chunks(kbn.bn_normalize, x.shape[0] * C, y, x, mean, rstd, gamma, beta)
    return y


def batch_norm_train_backward(dy, x, gamma, mean, rstd):
    """Return (dx, dgamma, dbeta) of training-mode batch norm over (N, C, L)."""
    dy = np.ascontiguousarray(dy)
    C = x.shape[1]
    dgamma = np.empty(C, np.float64)
    dbeta = np.empty(C, np.float64)
    _pool.chunks(kbn.bn_backward_reduce, C, dgamma, dbeta, dy, x, mean, rstd)
    dx = np.empty_like(x)
    _pool.chunks(kbn.bn_backward_input, x.shape[0] * C, dx, dy, x, mean, rstd, gamma,
                     dgamma, dbeta)
    return dx, dgamma, dbeta


def bn_lif_forward(x, mean, rstd, gamma, beta, T, tau, v_threshold, v_reset, decay_input,
                   pool, save_h, residual=None):
    """Fused batch norm (given statistics) [+ residual] -> LIF -> optional k x k average
    pooling.

    x (Tx, B, C, H, W) with Tx = T or 1; residual (T, B, C, H, W) or None. Returns
    (out (T, B, C, Ho, Wo), h (T, B, C, H*W) or None, spike count).
    """
    Tx, B, C, H, W = x.shape
    k = max(int(pool), 1)
    if H % k or W % k:
        raise ValueError(f"x: spatial size {(H, W)} is not divisible by pooling size {k}")
    dt = x.dtype.type
    hard = v_reset is not None
    xs = np.ascontiguousarray(x).reshape(Tx, B, C, H * W)
    out = np.empty((T, B, C, (H // k) * (W // k)), x.dtype)
    h = np.empty((T, B, C, H * W), x.dtype) if save_h else np.empty((1, 1, 1, 1), x.dtype)
    counts = np.empty(B * C, np.int64)
    if residual is None:
        res = np.empty((0, 1, 1, 1), x.dtype)
    else:
        check_float("residual", residual, 5, x.dtype)
        if residual.shape != (T, B, C, H, W):
            raise ValueError(f"residual: expected shape {(T, B, C, H, W)}, got {residual.shape}")
        res = np.ascontiguousarray(residual).reshape(T, B, C, H * W)
    _pool.chunks(kfused.bn_lif_forward, B * C, out, h, counts, xs, res, mean, rstd, gamma,
                     beta, dt(tau), dt(v_threshold), dt(v_reset if hard else 0.0),
                     bool(decay_input), hard, k, W, bool(save_h))
    return out.reshape(T, B, C, H // k, W // k), (h if save_h else None), int(counts.sum())


def conv_bn_lif_forward(x, weight, bias, stride, padding, sparse_below, mean, rstd, gamma,
                        beta, T, tau, v_threshold, v_reset, decay_input, pool, residual=None,
                        ws=None):
    """Inference of conv -> batch norm (given statistics) [+ residual] -> LIF -> optional
    k x k average pooling, sample by sample on the event path
    (:mod:`snnlite.kernels.conv_lif`); bit-identical to :func:`conv2d_forward` then
    :func:`bn_lif_forward` for every sample it takes.

    x (Tx, B, C, H, W) with Tx = T or 1; residual (T, B, O, Ho, Wo) or None. Returns
    (out (T, B, O, Ho/k, Wo/k), spikes per (sample, channel) (B, O), ok (B,) bool): a
    sample with an image whose nonzero fraction is at least ``sparse_below`` is not
    computed (ok False; its outputs and counts undefined).
    """
    check_float("x", x, 5)
    check_float("weight", weight, 4, x.dtype)
    Tx, B, C, H, W = x.shape
    O, Cw, kh, kw = weight.shape
    if Cw != C:
        raise ValueError(f"x: expected {Cw} input channels for weight {weight.shape}, got {C}")
    if not sparse_below > 0:
        raise ValueError(f"sparse_below: expected a positive fraction, got {sparse_below}")
    Ho = (H + 2 * padding - kh) // stride + 1
    Wo = (W + 2 * padding - kw) // stride + 1
    k = max(int(pool), 1)
    if Ho < 1 or Wo < 1 or Ho % k or Wo % k:
        raise ValueError(f"x: spatial size {(H, W)} does not fit kernel {(kh, kw)}, padding "
                         f"{padding}, stride {stride} and pooling {k}")
    dt = x.dtype.type
    hard = v_reset is not None
    x = np.ascontiguousarray(x)
    if residual is None:
        res = np.empty((1, 1, 0, 0), x.dtype)
    else:
        check_float("residual", residual, 5, x.dtype)
        if residual.shape != (T, B, O, Ho, Wo):
            raise ValueError(f"residual: expected shape {(T, B, O, Ho, Wo)}, got "
                             f"{residual.shape}")
        res = np.ascontiguousarray(residual).reshape(T, B, O, Ho * Wo)
    b = np.empty(0, x.dtype) if bias is None else np.ascontiguousarray(bias, x.dtype)
    P = _pool.get_num_threads()
    ev = _event_scratch(ws, P, C, H, W, x.dtype)
    csr = _csr_scratch(ws, P, C, H, W, padding, x.dtype)
    width = kevent.block_width(O)
    nblk, HWo = _padded(O) // width, Ho * Wo
    v = _scratch(ws, "cbl_v", (P, nblk, HWo, width), x.dtype)
    y = _scratch(ws, "cbl_y", (P, nblk, HWo, width) if Tx == 1 else (P, 1, 1, 1), x.dtype)
    q = _scratch(ws, "cbl_q", (P, nblk, HWo // (k * k) if k > 1 else 1, width), x.dtype)
    out = np.empty((T, B, O, (Ho // k) * (Wo // k)), x.dtype)
    counts = np.empty(B * O, np.int64)
    ok = np.zeros(B, np.uint8)
    f64 = [np.ascontiguousarray(a, np.float64) for a in (mean, rstd, gamma, beta)]
    _pool.shares(_narrow_or(O, kconvlif.conv_bn_lif, kconvlif.conv_bn_lif_narrow), out,
                 counts, ok, x, res, b, _event_weights(weight), kh, kw, stride, padding,
                 float(sparse_below), *ev, *csr, v, y, q, *f64, dt(tau), dt(v_threshold),
                 dt(v_reset if hard else 0.0), bool(decay_input), hard, k)
    return out.reshape(T, B, O, Ho // k, Wo // k), counts.reshape(B, O), ok.astype(bool)


def lif_bn_backward(dout, h, x, mean, rstd, gamma, tau, v_threshold, v_reset, decay_input,
                    detach_reset, alpha, pool, need_dx=True, need_dcur=False):
    """Backward of :func:`bn_lif_forward` in training mode.

    Returns (dx (Tx, B, C, H, W) or None, dgamma, dbeta, dcur or None); for a time-broadcast
    x (Tx = 1) dx is the gradient summed over time. ``dcur`` (the gradient of the LIF input,
    which is also the residual's) is returned if ``need_dcur``.
    """
    Tx, B, C, H, W = x.shape
    T = h.shape[0]
    dt = h.dtype.type
    hard = v_reset is not None
    xs = np.ascontiguousarray(x).reshape(Tx, B, C, H * W)
    dcur = np.empty((Tx, B, C, H * W), h.dtype)
    sums = np.empty((B * C, 2), np.float64)
    _pool.chunks(kfused.lif_bn_backward, B * C, dcur, sums,
                     np.ascontiguousarray(dout).reshape(T, B, C, -1), h, xs, mean, rstd,
                     dt(tau), dt(v_threshold), dt(v_reset if hard else 0.0), bool(decay_input),
                     hard, bool(detach_reset), dt(alpha / 2), dt(math.pi / 2 * alpha),
                     max(int(pool), 1), W)
    sums = sums.reshape(B, C, 2).sum(0)
    dbeta, dgamma = sums[:, 0].copy(), sums[:, 1].copy()
    dcur_out = dcur.reshape(Tx, B, C, H, W) if need_dcur else None
    if not need_dx:
        return None, dgamma, dbeta, dcur_out
    d3 = dcur.reshape(Tx * B, C, H * W)
    dx = np.empty_like(d3) if need_dcur else d3  # in place unless dcur is returned too
    _pool.chunks(kbn.bn_backward_input, Tx * B * C, dx, d3, xs.reshape(Tx * B, C, H * W),
                     mean, rstd, gamma, dgamma, dbeta)
    return dx.reshape(Tx, B, C, H, W), dgamma, dbeta, dcur_out


# ---------------------------------------------------------------------------- LIF

def lif_forward(x, tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True, v0=None, T=None):
    """Run LIF over x (T, M) (or (1, M) with ``T`` steps of the same current).

    Returns (spikes (T, M), h (T, M) pre-spike membrane, v (M,) final membrane).
    ``v_reset=None`` is soft reset. ``v0`` (M,) is the initial membrane (default v_reset,
    or 0 under soft reset).
    """
    check_float("x", x, 2)
    steps = x.shape[0] if T is None else T
    if x.shape[0] not in (1, steps):
        raise ValueError(f"x: expected {steps} or 1 time steps, got shape {x.shape}")
    dt = x.dtype.type
    hard = v_reset is not None
    vr = dt(v_reset if hard else 0.0)
    M = x.shape[1]
    if v0 is None:
        v = np.full(M, vr, x.dtype)
    else:
        check_float("v0", v0, 1, x.dtype)
        if v0.shape != (M,):
            raise ValueError(f"v0: expected shape {(M,)}, got {v0.shape}")
        v = v0.copy()
    s = np.empty((steps, M), x.dtype)
    h = np.empty((steps, M), x.dtype)
    _pool.chunks(klif.lif_forward, M, s, h, v, np.ascontiguousarray(x), dt(tau),
                     dt(v_threshold), vr, bool(decay_input), hard)
    return s, h, v


def lif_backward(ds, h, tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True,
                 detach_reset=False, alpha=2.0):
    """Gradient wrt the input current of :func:`lif_forward` given ds (T, M)."""
    dt = h.dtype.type
    hard = v_reset is not None
    dx = np.empty_like(h)
    _pool.chunks(klif.lif_backward, h.shape[1], dx, np.ascontiguousarray(ds, h.dtype), h,
                     dt(tau), dt(v_threshold), dt(v_reset if hard else 0.0), bool(decay_input),
                     hard, bool(detach_reset), dt(alpha / 2), dt(math.pi / 2 * alpha))
    return dx


def _state(name, a, M, dtype, default):
    if a is None:
        return np.full(M, default, dtype)
    check_float(name, a, 1, dtype)
    if a.shape != (M,):
        raise ValueError(f"{name}: expected shape {(M,)}, got {a.shape}")
    return a.copy()


def cuba_forward(x, tau_syn, tau_mem, w_in=1.0, r=1.0, v_leak=0.0, v_threshold=1.0,
                 v_reset=0.0, v0=None, i0=None, T=None):
    """Run CubaLIF (see :mod:`snnlite.kernels.lif`) over x (T, M) (or (1, M) with ``T``
    steps of the same input). Returns (spikes (T, M), h (T, M), v (M,), i (M,)): the final
    membrane and synaptic current. ``v0``/``i0`` default to rest (v_reset, or 0 under soft
    reset; current 0)."""
    check_float("x", x, 2)
    steps = x.shape[0] if T is None else T
    if x.shape[0] not in (1, steps):
        raise ValueError(f"x: expected {steps} or 1 time steps, got shape {x.shape}")
    dt = x.dtype.type
    hard = v_reset is not None
    vr = dt(v_reset if hard else 0.0)
    M = x.shape[1]
    v, i = _state("v0", v0, M, x.dtype, vr), _state("i0", i0, M, x.dtype, 0.0)
    s = np.empty((steps, M), x.dtype)
    h = np.empty((steps, M), x.dtype)
    _pool.chunks(kcuba.cuba_forward, M, s, h, v, i, np.ascontiguousarray(x), dt(tau_syn),
                 dt(tau_mem), dt(w_in), dt(r), dt(v_leak), dt(v_threshold), vr, hard)
    return s, h, v, i


def cuba_backward(ds, h, tau_syn, tau_mem, w_in=1.0, r=1.0, v_threshold=1.0, v_reset=0.0,
                  detach_reset=False, alpha=2.0):
    """Gradient wrt the input of :func:`cuba_forward` given ds (T, M)."""
    dt = h.dtype.type
    hard = v_reset is not None
    dx = np.empty_like(h)
    _pool.chunks(kcuba.cuba_backward, h.shape[1], dx, np.ascontiguousarray(ds, h.dtype), h,
                 dt(tau_syn), dt(tau_mem), dt(w_in), dt(r), dt(v_threshold),
                 dt(v_reset if hard else 0.0), hard, bool(detach_reset), dt(alpha / 2),
                 dt(math.pi / 2 * alpha))
    return dx


def _neuron_args(n, dt):
    """(cuba, tau, v_th, v_reset, decay_input, hard, tau_syn, w_in, r, v_leak) of neuron
    module ``n`` (LIF, IF or CubaLIF) in dtype ``dt``, for the recurrent kernels."""
    hard = n.v_reset is not None
    vr = dt(n.v_reset if hard else 0.0)
    if n.dynamics == "cuba_lif":
        return (True, dt(n.tau_mem), dt(n.v_threshold), vr, False, hard, dt(n.tau_syn),
                dt(n.w_in), dt(n.r), dt(n.v_leak))
    one = dt(1.0)
    return (False, dt(n.tau), dt(n.v_threshold), vr, bool(n.decay_input), hard, one, one,
            one, dt(0.0))


def recurrent_forward(x, weight, bias, neuron, T=None):
    """Spikes and pre-spike membranes (T, B, M) of ``neuron`` (a LIF, IF or CubaLIF module)
    fed x (T or 1, B, M) plus its own previous spikes through ``weight`` (M, M) and
    ``bias`` (M,) or None (see :mod:`snnlite.kernels.recurrent`)."""
    check_float("x", x, 3)
    check_float("weight", weight, 2, x.dtype)
    steps = x.shape[0] if T is None else T
    B, M = x.shape[1:]
    if weight.shape != (M, M):
        raise ValueError(f"weight: expected shape {(M, M)} for {M} neurons, got "
                         f"{weight.shape}")
    dt = x.dtype.type
    s = np.empty((steps, B, M), x.dtype)
    h = np.empty((steps, B, M), x.dtype)
    b = np.zeros(M, x.dtype) if bias is None else np.ascontiguousarray(bias, x.dtype)
    _pool.chunks(krec.recurrent_forward, B, s, h, np.ascontiguousarray(x),
                 np.ascontiguousarray(weight.T), b, bias is not None,
                 *_neuron_args(neuron, dt))
    return s, h


def recurrent_backward(ds, h, s, weight, neuron, has_bias):
    """(dx (T, B, M), dweight, dbias or None) of :func:`recurrent_forward` given ds (wrt
    the spikes s), h and s from the forward."""
    dt = h.dtype.type
    cuba, tau, v_th, vr, decay_input, hard, tau_syn, w_in, r, _ = _neuron_args(neuron, dt)
    dcur = np.empty_like(h)
    _pool.chunks(krec.recurrent_backward, h.shape[1], dcur, np.ascontiguousarray(ds, h.dtype),
                 h, np.ascontiguousarray(weight), cuba, tau, v_th, vr, decay_input, hard,
                 bool(neuron.detach_reset), tau_syn, w_in, r,
                 dt(neuron.surrogate_alpha / 2), dt(math.pi / 2 * neuron.surrogate_alpha))
    M = h.shape[2]
    later, before = dcur[1:].reshape(-1, M), s[:-1].reshape(-1, M)  # cur_t reads s_{t-1}
    dw = later.T @ before
    db = later.sum(0) if has_bias else None
    return dcur, dw, db


# ---------------------------------------------------------------------------- pooling

def _pool_shape(x, k):
    check_float("x", x, 4)
    N, C, H, W = x.shape
    if H % k or W % k:
        raise ValueError(f"x: spatial size {(H, W)} is not divisible by pooling size {k}")
    return N, C, H // k, W // k


def avg_pool_forward(x, k):
    N, C, Ho, Wo = _pool_shape(x, k)
    y = np.empty((N, C, Ho, Wo), x.dtype)
    _pool.chunks(kpool.avg_pool_forward, N * C, y.reshape(N * C, Ho, Wo),
                     np.ascontiguousarray(x).reshape(N * C, Ho * k, Wo * k), k)
    return y


def avg_pool_backward(dy, k):
    N, C, Ho, Wo = dy.shape
    dx = np.empty((N, C, Ho * k, Wo * k), dy.dtype)
    _pool.chunks(kpool.avg_pool_backward, N * C, dx.reshape(N * C, Ho * k, Wo * k),
                     np.ascontiguousarray(dy).reshape(N * C, Ho, Wo), k)
    return dx


def max_pool_forward(x, k):
    """Return (y, idx) with idx the uint8 window index of each maximum."""
    N, C, Ho, Wo = _pool_shape(x, k)
    y = np.empty((N, C, Ho, Wo), x.dtype)
    idx = np.empty((N, C, Ho, Wo), np.uint8)
    _pool.chunks(kpool.max_pool_forward, N * C, y.reshape(N * C, Ho, Wo),
                     idx.reshape(N * C, Ho, Wo),
                     np.ascontiguousarray(x).reshape(N * C, Ho * k, Wo * k), k)
    return y, idx


def max_pool_backward(dy, idx, k):
    N, C, Ho, Wo = dy.shape
    dx = np.empty((N, C, Ho * k, Wo * k), dy.dtype)
    _pool.chunks(kpool.max_pool_backward, N * C, dx.reshape(N * C, Ho * k, Wo * k),
                     np.ascontiguousarray(dy).reshape(N * C, Ho, Wo), idx.reshape(N * C, Ho, Wo),
                     k)
    return dx


# ---------------------------------------------------------------------------- linear

def linear_forward(x, weight, bias=None):
    """y (N, O) = x (N, F) @ weight.T + bias."""
    check_float("x", x, 2)
    check_float("weight", weight, 2, x.dtype)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"x: expected {weight.shape[1]} features, got {x.shape[1]}")
    y = np.empty((x.shape[0], weight.shape[0]), x.dtype)
    b = bias if bias is not None else np.zeros(weight.shape[0], x.dtype)
    with _blas.blas_threads(1):
        _pool.chunks(klin.linear_forward, x.shape[0], y, np.ascontiguousarray(x),
                         np.ascontiguousarray(weight), b, bias is not None)
    return y


def linear_backward(dy, x, weight, need_dx=True):
    """Return (dx or None, dweight, dbias) of y = x @ weight.T + b."""
    dy = np.ascontiguousarray(dy, x.dtype)
    dw = dy.T @ x
    db = dy.sum(0)
    dx = None
    if need_dx:
        dx = np.empty_like(x)
        with _blas.blas_threads(1):
            _pool.chunks(klin.linear_backward_input, x.shape[0], dx, dy,
                             np.ascontiguousarray(weight))
    return dx, dw, db
