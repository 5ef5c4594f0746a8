"""Event convolution -> batch norm (running statistics) [+ residual] -> LIF or IF [->
average pooling], one sample at a time, for inference.

Run as separate passes, the chain writes the convolution output of every image (T*B*O*H*W
floats), reads it back for the norm and the neuron, and writes the spikes. Here a worker
takes one sample, its time steps in order, and keeps in its own scratch the convolution
output of one image, ``y (O, Ho*Wo)``, and the sample's membranes, ``v (O, Ho*Wo)``: both
stay in cache, and only the spikes (pooled or not) go to memory.

Results are bit-identical to the separate passes: the convolution is
:func:`.conv_event.forward_image` itself, the norm and the neuron step :mod:`.fused`'s own
inlined helpers. A sample with an image the event path would not take (nonzero fraction
>= ``sparse_below``: a dense one, for Winograd or im2col) is left to the caller, with
``ok[b] = 0``; its outputs and counts are then undefined.

Arrays: x (Tx, B, C, H, W) with Tx = T or 1 (time broadcast: one convolution per sample);
res (T, B, O, Ho*Wo) or empty; bias (O,) or empty; out (T, B, O, Ho*Wo / pool^2); counts
(B*O,) int64 <- spikes per plane; ok (B,). Scratch of worker tid: the event lists and
buffers of :func:`.conv_event.forward_image` (cnt, idx, val, ptr, key, kval, yrow), y[tid]
and v[tid] (O, Ho*Wo), tot[tid] (O, Ho*Wo) (spikes per neuron).
"""
import numpy as np

from .._config import njit, njit_exact
from .conv_event import OB, channel_events, forward_image
from .fused import add_residual, emit, lif_plane, normalize, spike_total
from .lif import reciprocal
from .util import fill


@njit
def _reaches(a, limit):
    """Whether a (1-D) holds at least ``limit`` nonzeros (counted in runs of 512)."""
    n = 0
    for i0 in range(0, a.size, 512):
        for i in range(i0, min(i0 + 512, a.size)):
            n += a[i] != 0
        if n >= limit:
            return True
    return False


@njit_exact
def _conv_bn_lif(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below, cnt,
                 idx, val, ptr, key, kval, yrow, y, v, tot, mean, rstd, gamma, beta, tau,
                 v_th, v_reset, decay_input, hard_reset, pool, width, tid, P):
    """Samples tid, tid + P, ... of worker tid of P (see the module docstring)."""
    Tx, B, C, H, W = x.shape
    T = out.shape[0]
    O, HWo = y.shape[1], y.shape[2]
    Wo = yrow.shape[1]
    Wp = W + 2 * pad
    limit = sparse_below * (C * H * W)
    has_res, has_bias = res.size > 0, bias.size > 0
    r = v_reset if hard_reset else v_reset - v_reset
    one = np.ones(1, y.dtype)[0]  # not tau / tau: NaN for an IF (tau = inf)
    zero = one - one
    itau, pow2 = reciprocal(tau)
    inv = 1.0 / (pool * pool)
    hs = np.empty(HWo, y.dtype)  # the pre-spike membrane, not kept
    cur = np.empty(HWo, y.dtype)
    tot_in = np.empty(HWo, y.dtype)
    spk = np.empty(HWo, y.dtype)
    yt, vt, nt = y[tid], v[tid], tot[tid]
    c_, i_, v_, p_, k_, kv_, r_ = cnt[tid], idx[tid], val[tid], ptr[tid], key[tid], kval[tid], \
        yrow[tid]
    for b in range(tid, B, P):
        ok[b] = 0
        dense = False
        for t in range(Tx):  # a dense image anywhere: before any work
            dense = dense or _reaches(x[t, b].reshape(C * H * W), limit)
        if dense:
            continue
        fill(vt, r)  # at rest: v_reset, or 0 under soft reset
        fill(nt, 0)
        for t in range(T):
            if t == 0 or Tx > 1:
                n = channel_events(c_, i_, v_, x[t if Tx > 1 else 0, b].reshape(C, H * W), W,
                                   Wp, pad * Wp + pad, limit)
                if n == 0:  # a silent input
                    fill(yt, 0)
                else:
                    forward_image(yt, c_, i_, v_, wt, kh, kw, stride, Wp, p_, k_, kv_, r_,
                                  width)
                if has_bias:
                    for o in range(O):
                        yo, bo = yt[o], bias[o]
                        for q in range(HWo):
                            yo[q] += bo
            for o in range(O):
                normalize(cur, yt[o], mean[o], rstd[o], np.float64(gamma[o]),
                          np.float64(beta[o]))
                inp = cur
                if has_res:
                    add_residual(tot_in, cur, res[t, b, o])
                    inp = tot_in
                lif_plane(hs, spk, vt[o], nt[o], inp, tau, itau, pow2, r, v_th, v_reset,
                          decay_input, hard_reset, one, zero)
                emit(out[t, b, o], spk, pool, Wo, inv)
        ok[b] = 1
        for o in range(O):
            counts[b * O + o] = spike_total(nt[o])


# One driver per register-block width of the convolution (see .conv_event.block_width).

@njit_exact
def conv_bn_lif(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below, cnt,
                idx, val, ptr, key, kval, yrow, y, v, tot, mean, rstd, gamma, beta, tau, v_th,
                v_reset, decay_input, hard_reset, pool, tid, P):
    """:func:`_conv_bn_lif` with blocks of OB output channels."""
    _conv_bn_lif(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below, cnt,
                 idx, val, ptr, key, kval, yrow, y, v, tot, mean, rstd, gamma, beta, tau,
                 v_th, v_reset, decay_input, hard_reset, pool, OB, tid, P)


@njit_exact
def conv_bn_lif_narrow(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below,
                       cnt, idx, val, ptr, key, kval, yrow, y, v, tot, mean, rstd, gamma, beta,
                       tau, v_th, v_reset, decay_input, hard_reset, pool, tid, P):
    """:func:`_conv_bn_lif` with blocks of 16 output channels."""
    _conv_bn_lif(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below, cnt,
                 idx, val, ptr, key, kval, yrow, y, v, tot, mean, rstd, gamma, beta, tau,
                 v_th, v_reset, decay_input, hard_reset, pool, 16, tid, P)
