"""BatchNorm -> LIF (-> average pooling) in one pass over memory, forward and backward.

The unfused chain writes and rereads the normalised currents, the spikes and the pooled
spikes, each as large as the layer's activation; here every (sample, channel) plane is
handled by one worker, with the time loop inside, and only the pre-spike membrane ``h``
(for backward) and the layer's output are written. Arithmetic is the same as the unfused
kernels' (batch norm in float64, rounded to the array dtype before the LIF charge; pooling
as count * (1/k^2)), and the LIF step is :mod:`.lif`'s own (inlined), so forward results
are bit-identical to the unfused chain.

Each call computes planes k = b*C + c in lo..hi-1.
Arrays: x (Tx, B, C, H*W) with Tx = T or 1 (time broadcast); h (T, B, C, H*W);
out (T, B, C, Ho*Wo) pooled or (T, B, C, H*W) spikes.
"""
import numpy as np

from .._config import njit_exact
from .lif import bptt_step, charge, fire, reciprocal, reset
from .util import copy, fill


@njit_exact
def _pool_sum(out, spk, k, W, inv):
    """out (Ho*Wo,) <- k x k window sums of spk (H*W,) times inv. Spikes are 0 or 1, so
    the sums are exact in any order; the order is chosen for unit-stride inner loops."""
    Wo = W // k
    for q in range(out.shape[0]):
        out[q] = 0  # (Ho*Wo,): a short loop
    for y in range(spk.shape[0] // W):
        o = out[(y // k) * Wo:(y // k + 1) * Wo]
        r = spk[y * W:(y + 1) * W]
        for b in range(k):
            for xo in range(Wo):
                o[xo] += r[xo * k + b]
    for q in range(out.shape[0]):
        out[q] = out[q] * inv


@njit_exact
def _unpool(ds, g, k, W, inv):
    """ds (H*W,) <- g (Ho*Wo,) * inv spread over each k x k window."""
    Wo = W // k
    for y in range(ds.shape[0] // W):
        gr = g[(y // k) * Wo:(y // k + 1) * Wo]
        r = ds[y * W:(y + 1) * W]
        for b in range(k):
            for xo in range(Wo):
                r[xo * k + b] = gr[xo] * inv


@njit_exact
def bn_lif_forward(out, h, counts, x, res, mean, rstd, gamma, beta, tau, v_th, v_reset,
                   decay_input, hard_reset, pool, W, save_h, lo, hi):
    """out <- LIF(BN(x) + res) (average-pooled by ``pool`` if > 1), h <- pre-spike membrane
    (if save_h), counts (B*C,) int64 <- spikes per plane. mean/rstd float64 (C,).
    res (T, B, C, HW) is a residual added after the norm; an empty res (size 0) adds none."""
    T = out.shape[0]
    C, HW = x.shape[2], x.shape[3]
    bx = x.shape[0] == 1
    has_res = res.size > 0
    r = v_reset if hard_reset else v_reset - v_reset
    one = np.ones(1, x.dtype)[0]  # not tau / tau: NaN for an IF (tau = inf)
    itau, pow2 = reciprocal(tau)
    zero = one - one
    inv = 1.0 / (pool * pool)
    hs = np.empty(HW, x.dtype)  # stands in for h when it is not kept
    v = np.empty(HW, x.dtype)  # per-plane buffers, allocated once per call
    cur = np.empty(HW, x.dtype)
    tot_in = np.empty(HW, x.dtype)
    spk = np.empty(HW, x.dtype)
    tot = np.empty(HW, x.dtype)
    for k in range(lo, hi):
        b, c = k // C, k % C
        m, rs, g, bb = mean[c], rstd[c], np.float64(gamma[c]), np.float64(beta[c])
        fill(v, r)  # at rest: v_reset, or 0 under soft reset
        fill(tot, 0)
        # Inner loops index 1-D rows only: unit stride is then known, and they vectorise.
        for t in range(T):
            if t == 0 or not bx:
                xt = x[0 if bx else t, b, c]
                for p in range(HW):
                    cur[p] = (xt[p] - m) * rs * g + bb  # rounded to the dtype on store
            if has_res:
                rt = res[t, b, c]
                for p in range(HW):
                    tot_in[p] = cur[p] + rt[p]
            inp = tot_in if has_res else cur
            ht = h[t, b, c] if save_h else hs
            for p in range(HW):
                hj = charge(v[p], inp[p], tau, itau, pow2, r, decay_input)
                ht[p] = hj
                f = fire(hj, v_th)
                spk[p] = one if f else zero
                v[p] = reset(hj, f, v_reset, v_th, hard_reset)
                tot[p] += spk[p]
            if pool > 1:
                _pool_sum(out[t, b, c], spk, pool, W, inv)
            else:
                copy(out[t, b, c], spk)
        n = 0
        for p in range(HW):
            n += int(tot[p])
        counts[k] = n


@njit_exact
def _accumulate(sb, sx, d, x):
    """sb += d, sx += d * x elementwise, in float64."""
    for p in range(d.shape[0]):
        sb[p] += d[p]
    for p in range(d.shape[0]):
        sx[p] += np.float64(d[p]) * x[p]


@njit_exact
def lif_bn_backward(dcur, sums, dout, h, x, mean, rstd, tau, v_th, v_reset, decay_input,
                    hard_reset, detach_reset, sg_half_alpha, sg_scale, pool, W, lo, hi):
    """BPTT through LIF (and the pooling after it) down to the BN output.

    dout: gradient of the output (pooled or not); dcur <- gradient wrt the normalised
    current: (T, B, C, HW), or (1, B, C, HW) summed over time when x is time-broadcast.
    sums (B*C, 2) float64 <- per-plane sum of dcur and of dcur * xhat (BN reductions).
    """
    T, B, C, HW = h.shape
    bx = x.shape[0] == 1
    one = np.ones(1, h.dtype)[0]
    itau, pow2 = reciprocal(tau)
    inv = 1.0 / (pool * pool)
    carry = np.empty(HW, h.dtype)  # per-plane buffers, allocated once per call
    ds = np.empty(HW, h.dtype)
    sb = np.empty(HW, np.float64)
    sg = np.empty(HW, np.float64)
    for k in range(lo, hi):
        b, c = k // C, k % C
        m, rs = mean[c], rstd[c]
        fill(carry, 0)
        fill(sb, 0)
        fill(sg, 0)
        if bx:
            fill(dcur[0, b, c], 0)
        for t in range(T - 1, -1, -1):
            if pool > 1:
                _unpool(ds, dout[t, b, c], pool, W, inv)
            else:
                copy(ds, dout[t, b, c])
            ht = h[t, b, c]
            dt = dcur[0 if bx else t, b, c]
            for p in range(HW):
                d, carry[p] = bptt_step(ds[p], carry[p], ht[p], tau, itau, pow2, v_th,
                                        v_reset, decay_input, hard_reset, detach_reset,
                                        sg_half_alpha, sg_scale, one)
                if bx:
                    dt[p] += d
                else:
                    dt[p] = d
            if not bx:
                _accumulate(sb, sg, dt, x[t, b, c])
        if bx:
            _accumulate(sb, sg, dcur[0, b, c], x[0, b, c])
        s0 = 0.0
        s1 = 0.0
        for p in range(HW):
            s0 += sb[p]
            s1 += sg[p]
        sums[k, 0] = s0
        sums[k, 1] = rs * (s1 - m * s0)  # sum of dcur * xhat, xhat = (x - m) * rs
