"""Event convolution -> batch norm (running statistics) [+ residual] -> LIF or IF [->
average pooling], one sample at a time, for inference.

Run as separate passes, the chain writes the convolution output of every image (T*B*O*H*W
floats), reads it back for the norm and the neuron, and writes the spikes. Here the sums
of each output row (:func:`.conv_event.row_sums`, a block of channels held in vector
registers per pixel) are normalised and fired at once against the sample's membranes,
kept channel-last per block in the worker's scratch; only the spikes (pooled or not) go
to memory. A worker takes one sample, its time steps in order.

Results are bit-identical to the separate passes: the sums are those of
:func:`.conv_event.forward_image` (the same function), the norm and the neuron step
:mod:`.fused`'s arithmetic element by element (the LIF step of :mod:`.lif`, without
fastmath). A sample with an image the event path would not take (nonzero fraction >=
``sparse_below``: a dense one, for Winograd or im2col) is left to the caller, with
``ok[b] = 0``; its outputs and counts are then undefined.

Arrays: x (Tx, B, C, H, W) with Tx = T or 1 (time broadcast: one convolution per
sample); res (T, B, O, Ho*Wo) or (1, 1, 0, 0) for none; bias (O,) or empty; mean, rstd,
gamma, beta float64 (O,); out (T, B, O, Ho*Wo / pool^2); counts (B*O,) int64 <- spikes
per plane; ok (B,). Scratch of worker tid: the event lists of
:func:`.conv_event.channel_events` (cnt, idx, val) and the CSR of
:func:`.conv_event.pixel_csr` (ptr, key, kval); per block of ``width`` channels (``nblk``
of them, nblk * width the padded channel count of wt) v[tid] (nblk, Ho*Wo, width)
membranes, y[tid] (nblk, Ho*Wo, width) the sums of a time-broadcast input (else any (1,
1, 1)), q[tid] (nblk, Ho*Wo / pool^2, width) pooled spike counts (else any (nblk, 1,
width)).
"""
import numpy as np

from .._config import njit, njit_exact
from .conv_event import NONNEG, OB, channel_events, pixel_csr, row_sums
from .lif import charge, fire, reciprocal, reset
from .util import copy, fill


@njit
def _reaches(a, limit):
    """Whether a (1-D) holds at least ``limit`` nonzeros (counted in runs of 512)."""
    n = 0
    for i0 in range(0, a.size, 512):
        for i in range(i0, min(i0 + 512, a.size)):
            n += a[i & NONNEG] != 0
        if n >= limit:
            return True
    return False


@njit_exact
def _fire_row(yrow, nb, oy, v, tot, q, out, cur, bias, res, mean, rstd, gamma, beta, pool,
              tau, itau, pow2, r, v_th, v_reset, decay_input, hard_reset, one, zero):
    """Norm and neuron step of output row oy of one block of nb channels, from its sums
    yrow (Wo, width): v (Ho*Wo, width) the block's membranes, updated; tot += its spikes
    per channel; the spikes added into q (Ho*Wo / pool^2, width) if pool > 1, else
    written to out (nb, Ho*Wo). tot, bias, res, mean, rstd, gamma and beta start at the
    block's first channel. The arithmetic of :func:`.fused.bn_lif_forward` (and ``y +=
    bias`` before it), in IEEE maths. Inner loops index by the channel alone: nothing
    else varies in them, so they vectorise."""
    Wo = yrow.shape[0]
    Wq = Wo // pool
    has_bias, has_res = bias.size > 0, res.size > 0
    for ox in range(Wo):
        p = (oy * Wo + ox) & NONNEG
        if has_bias:
            for o in range(nb):
                cur[o] = (yrow[ox, o] + bias[o] - mean[o]) * rstd[o] * gamma[o] + beta[o]
        else:
            for o in range(nb):
                cur[o] = (yrow[ox, o] - mean[o]) * rstd[o] * gamma[o] + beta[o]
        if has_res:
            for o in range(nb):
                cur[o] = cur[o] + res[o, p]
        for o in range(nb):
            h = charge(v[p, o], cur[o], tau, itau, pow2, r, decay_input)
            f = fire(h, v_th)
            v[p, o] = reset(h, f, v_reset, v_th, hard_reset)
            cur[o] = one if f else zero
        for o in range(nb):
            tot[o] += cur[o]
        if pool > 1:
            j = ((oy // pool) * Wq + ox // pool) & NONNEG
            for o in range(nb):
                q[j, o] += cur[o]
        else:
            for o in range(nb):
                out[o, p] = cur[o]


@njit
def _conv_bn_lif(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below, cnt,
                 idx, val, ptr, key, kval, v, y, q, mean, rstd, gamma, beta, tau, v_th,
                 v_reset, decay_input, hard_reset, pool, width, tid, P):
    """Samples tid, tid + P, ... of worker tid of P (see the module docstring)."""
    Tx, B, C, H, W = x.shape
    T, O = out.shape[0], out.shape[2]
    HWo = v.shape[2]
    Wo = (W + 2 * pad - kw) // stride + 1
    Ho = HWo // Wo
    Wp = W + 2 * pad
    limit = sparse_below * (C * H * W)
    r = v_reset if hard_reset else v_reset - v_reset
    one = np.ones(1, wt.dtype)[0]  # not tau / tau: NaN for an IF (tau = inf)
    zero = one - one
    itau, pow2 = reciprocal(tau)
    inv = 1.0 / (pool * pool)
    yrow = np.empty((Wo, width), wt.dtype)  # a row's sums, then its spikes
    cur = np.empty(width, wt.dtype)
    tot = np.empty(O, np.float64)  # spikes per channel of the sample
    vt, yt, qt = v[tid], y[tid], q[tid]
    c_, i_, v_, p_, k_, kv_ = cnt[tid], idx[tid], val[tid], ptr[tid], key[tid], kval[tid]
    for b in range(tid, B, P):
        ok[b] = 0
        dense = False
        for t in range(Tx):  # a dense image anywhere: before any work
            dense = dense or _reaches(x[t, b].reshape(C * H * W), limit)
        if dense:
            continue
        fill(vt, r)  # at rest: v_reset, or 0 under soft reset
        fill(tot, 0)
        for t in range(T):
            conv = t == 0 or Tx > 1
            if conv:
                channel_events(c_, i_, v_, x[t if Tx > 1 else 0, b].reshape(C, H * W), W, Wp,
                               pad * Wp + pad, limit)
                pixel_csr(p_, k_, kv_, c_, i_, v_, Wp)
            if pool > 1:
                fill(qt, 0)
            rt = res[t if res.shape[0] > 1 else 0, b if res.shape[1] > 1 else 0]
            ot = out[t, b]
            for ob in range(0, O, width):
                nb = min(width, O - ob)
                k = ob // width
                vk, qk, yk = vt[k], qt[k], yt[k if Tx == 1 else 0]
                tk, otk, bk, rk = tot[ob:], ot[ob:], bias[ob:], rt[ob:]
                mk, sk, gk, bek = mean[ob:], rstd[ob:], gamma[ob:], beta[ob:]
                for oy in range(Ho):
                    if conv:
                        row_sums(yrow, oy, ob, p_, k_, kv_, wt, C, kh, kw, stride, Wp, width)
                        if Tx == 1:  # kept for the later steps
                            copy(yk[oy * Wo:(oy + 1) * Wo], yrow)
                    else:
                        copy(yrow, yk[oy * Wo:(oy + 1) * Wo])
                    _fire_row(yrow, nb, oy, vk, tk, qk, otk, cur, bk, rk, mk, sk, gk, bek,
                              pool, tau, itau, pow2, r, v_th, v_reset, decay_input,
                              hard_reset, one, zero)
            if pool > 1:  # (blocks, Ho*Wo / pool^2, width) -> out[t, b] (O, Ho*Wo / pool^2)
                for o in range(O):
                    qo = qt[o // width, :, o % width]
                    oo = ot[o]
                    for j in range(oo.shape[0]):
                        oo[j] = qo[j] * inv
        ok[b] = 1
        for o in range(O):
            counts[b * O + o] = int(tot[o])


# One driver per register-block width of the convolution (see .conv_event.block_width).

@njit
def conv_bn_lif(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below, cnt,
                idx, val, ptr, key, kval, v, y, q, mean, rstd, gamma, beta, tau, v_th, v_reset,
                decay_input, hard_reset, pool, tid, P):
    """:func:`_conv_bn_lif` with blocks of OB output channels."""
    _conv_bn_lif(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below, cnt,
                 idx, val, ptr, key, kval, v, y, q, mean, rstd, gamma, beta, tau, v_th,
                 v_reset, decay_input, hard_reset, pool, OB, tid, P)


@njit
def conv_bn_lif_narrow(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below,
                       cnt, idx, val, ptr, key, kval, v, y, q, mean, rstd, gamma, beta, tau,
                       v_th, v_reset, decay_input, hard_reset, pool, tid, P):
    """:func:`_conv_bn_lif` with blocks of 16 output channels."""
    _conv_bn_lif(out, counts, ok, x, res, bias, wt, kh, kw, stride, pad, sparse_below, cnt,
                 idx, val, ptr, key, kval, v, y, q, mean, rstd, gamma, beta, tau, v_th,
                 v_reset, decay_input, hard_reset, pool, 16, tid, P)
