"""BatchNorm -> LIF (-> average pooling) in one pass over memory, forward and backward.

The unfused chain writes and rereads the normalised currents, the spikes and the pooled
spikes, each as large as the layer's activation; here every (sample, channel) plane is
handled by one worker, with the time loop inside, and only the pre-spike membrane ``h``
(for backward) and the layer's output are written. Small planes go in blocks of several
(consecutive planes are one contiguous row per time step), so that the inner loops stay
long: per-plane loop overheads made 8x8 maps 3x slower per value than 32x32 ones.
Arithmetic is the same as the unfused kernels' (batch norm in float64, rounded to the array
dtype before the LIF charge; pooling as count * (1/k^2)), and the LIF step is
:mod:`.lif`'s own (inlined), so forward results are bit-identical to the unfused chain.

Each call computes planes k = b*C + c in lo..hi-1.
Arrays: x (Tx, B, C, H*W) with Tx = T or 1 (time broadcast); h (T, B, C, H*W);
out (T, B, C, Ho*Wo) pooled or (T, B, C, H*W) spikes.
"""
import numpy as np

from .._config import njit_exact
from .lif import bptt_step, charge, fire, reciprocal, reset
from .util import fill

PLANES = 1024
"""Values per block of (sample, channel) planes that the kernels below handle together:
one plane if larger, else as many whole planes as fit (small maps run as long rows)."""


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
    Tx, B, C, HW = x.shape
    bx = Tx == 1
    has_res = res.size > 0
    r = v_reset if hard_reset else v_reset - v_reset
    one = np.ones(1, x.dtype)[0]  # not tau / tau: NaN for an IF (tau = inf)
    itau, pow2 = reciprocal(tau)
    zero = one - one
    inv = 1.0 / (pool * pool)
    HWo = HW // (pool * pool)
    # planes k = b*C + c are contiguous in every time step: a block of nb of them is one
    # row of nb*HW values, and the inner loops run over whole blocks
    nb = max(1, PLANES // HW)
    xf = x.reshape(Tx, B * C * HW)
    of = out.reshape(T, B * C * HWo)
    hf = h.reshape(h.shape[0], h.size // h.shape[0])
    rf = res.reshape(res.shape[0], res.size // max(res.shape[0], 1))
    hs = np.empty(nb * HW, x.dtype)  # stands in for h when it is not kept
    v = np.empty(nb * HW, x.dtype)  # per-block buffers, allocated once per call
    cur = np.empty(nb * HW, x.dtype)
    tot_in = np.empty(nb * HW, x.dtype)
    spk = np.empty(nb * HW, x.dtype)
    tot = np.empty(nb * HW, x.dtype)
    for k0 in range(lo, hi, nb):
        k1 = min(hi, k0 + nb)
        e0, n = k0 * HW, (k1 - k0) * HW
        fill(v, r)  # at rest: v_reset, or 0 under soft reset
        fill(tot, 0)
        # Inner loops index 1-D rows only: unit stride is then known, and they vectorise.
        for t in range(T):
            if t == 0 or not bx:
                xt = xf[0 if bx else t, e0:e0 + n]
                for k in range(k0, k1):
                    c = k % C
                    m, rs, g, bb = mean[c], rstd[c], np.float64(gamma[c]), np.float64(beta[c])
                    cr = cur[(k - k0) * HW:(k - k0 + 1) * HW]
                    xr = xt[(k - k0) * HW:(k - k0 + 1) * HW]
                    for p in range(HW):
                        cr[p] = (xr[p] - m) * rs * g + bb  # rounded to the dtype on store
            if has_res:
                rt = rf[t, e0:e0 + n]
                for p in range(n):
                    tot_in[p] = cur[p] + rt[p]
            inp = tot_in if has_res else cur
            ht = hf[t, e0:e0 + n] if save_h else hs
            st = spk if pool > 1 else of[t, e0:e0 + n]  # unpooled spikes go straight out
            for p in range(n):
                hj = charge(v[p], inp[p], tau, itau, pow2, r, decay_input)
                ht[p] = hj
                f = fire(hj, v_th)
                sp = one if f else zero
                st[p] = sp
                v[p] = reset(hj, f, v_reset, v_th, hard_reset)
                tot[p] += sp
            if pool > 1:
                for k in range(k0, k1):
                    _pool_sum(of[t, k * HWo:(k + 1) * HWo],
                              spk[(k - k0) * HW:(k - k0 + 1) * HW], pool, W, inv)
        for k in range(k0, k1):
            q = (k - k0) * HW
            ns = 0
            for p in range(HW):
                ns += int(tot[q + p])
            counts[k] = ns


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
    Tx = x.shape[0]
    bx = Tx == 1
    one = np.ones(1, h.dtype)[0]
    itau, pow2 = reciprocal(tau)
    inv = 1.0 / (pool * pool)
    HWo = HW // (pool * pool)
    nb = max(1, PLANES // HW)  # planes per block, as in bn_lif_forward
    hf = h.reshape(T, B * C * HW)
    xf = x.reshape(Tx, B * C * HW)
    df = dcur.reshape(Tx, B * C * HW)
    of = dout.reshape(T, B * C * HWo)
    carry = np.empty(nb * HW, h.dtype)  # per-block buffers, allocated once per call
    ds = np.empty(nb * HW, h.dtype)
    sb = np.empty(nb * HW, np.float64)
    sg = np.empty(nb * HW, np.float64)
    for k0 in range(lo, hi, nb):
        k1 = min(hi, k0 + nb)
        e0, n = k0 * HW, (k1 - k0) * HW
        fill(carry, 0)
        fill(sb, 0)
        fill(sg, 0)
        if bx:
            fill(df[0, e0:e0 + n], 0)
        for t in range(T - 1, -1, -1):
            if pool > 1:
                for k in range(k0, k1):
                    _unpool(ds[(k - k0) * HW:(k - k0 + 1) * HW], of[t, k * HWo:(k + 1) * HWo],
                            pool, W, inv)
                dst = ds
            else:
                dst = of[t, e0:e0 + n]
            ht = hf[t, e0:e0 + n]
            dt = df[0 if bx else t, e0:e0 + n]
            for p in range(n):
                d, carry[p] = bptt_step(dst[p], carry[p], ht[p], tau, itau, pow2, v_th,
                                        v_reset, decay_input, hard_reset, detach_reset,
                                        sg_half_alpha, sg_scale, one)
                if bx:
                    dt[p] += d
                else:
                    dt[p] = d
            if not bx:
                _accumulate(sb, sg, dt, xf[t, e0:e0 + n])
        if bx:
            _accumulate(sb, sg, df[0, e0:e0 + n], xf[0, e0:e0 + n])
        for k in range(k0, k1):
            q = (k - k0) * HW
            s0 = 0.0
            s1 = 0.0
            for p in range(HW):
                s0 += sb[q + p]
                s1 += sg[q + p]
            c = k % C
            sums[k, 0] = s0
            sums[k, 1] = rstd[c] * (s1 - mean[c] * s0)  # sum of dcur * xhat, xhat = (x - m) * rs
