"""Multi-step CubaLIF kernels (current-based LIF, NIR's ``CubaLIF``), built on the step of
:mod:`.lif` (:func:`~.lif.cuba_current`, :func:`~.lif.cuba_charge`, fire, reset and
:func:`~.lif.cuba_bptt_step`).

Arrays are (T, M) with the neurons flattened; an input with a leading dimension of 1 is the
same input at every step. Only the pre-spike membrane ``h`` is kept for backward: the
dynamics are linear in the current, so its gradient needs no saved current. Each call
computes neurons lo..hi-1, in blocks with the time loop outside the block.
"""
import numpy as np

from .._config import njit_exact
from .lif import BLOCK, cuba_bptt_step, cuba_charge, cuba_current, fire, reciprocal, reset


@njit_exact
def cuba_forward(s, h, v, i, x, tau_syn, tau_mem, w_in, r, v_leak, v_th, v_reset, hard_reset,
                 lo, hi):
    """s (T, M) spikes, h (T, M) pre-spike membrane; v (M,) and i (M,) initial membrane and
    synaptic current, updated in place to the final ones; x (T or 1, M) input. Scalars in
    the arrays' dtype."""
    T, M = s.shape
    bx = x.shape[0] == 1
    one = np.ones(1, s.dtype)[0]
    zero = one - one
    its, p2s = reciprocal(tau_syn)
    itm, p2m = reciprocal(tau_mem)
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        vb, ib = v[b0:b1], i[b0:b1]
        for t in range(T):
            xt, ht, st = x[0 if bx else t, b0:b1], h[t, b0:b1], s[t, b0:b1]
            for j in range(b1 - b0):
                cj = cuba_current(ib[j], xt[j], tau_syn, its, p2s, w_in)
                ib[j] = cj
                hj = cuba_charge(vb[j], cj, tau_mem, itm, p2m, v_leak, r)
                ht[j] = hj
                f = fire(hj, v_th)
                st[j] = one if f else zero
                vb[j] = reset(hj, f, v_reset, v_th, hard_reset)


@njit_exact
def cuba_backward(dx, ds, h, tau_syn, tau_mem, w_in, r, v_th, v_reset, hard_reset,
                  detach_reset, sg_half_alpha, sg_scale, lo, hi):
    """dx (T, M) <- gradient wrt the input given ds (T, M), the gradient wrt the spikes,
    and h (T, M) from the forward. The final membrane and current carry no gradient."""
    T, M = h.shape
    one = np.ones(1, h.dtype)[0]
    its, p2s = reciprocal(tau_syn)
    itm, p2m = reciprocal(tau_mem)
    bv = np.empty(BLOCK, h.dtype)  # gradients wrt membrane and current, back in time
    bi = np.empty(BLOCK, h.dtype)
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        cv, ci = bv[:b1 - b0], bi[:b1 - b0]
        cv[:] = 0
        ci[:] = 0
        for t in range(T - 1, -1, -1):
            ht, dst, dxt = h[t, b0:b1], ds[t, b0:b1], dx[t, b0:b1]
            for j in range(b1 - b0):
                dxt[j], cv[j], ci[j] = cuba_bptt_step(
                    dst[j], cv[j], ci[j], ht[j], tau_syn, its, p2s, tau_mem, itm, p2m, w_in,
                    r, v_th, v_reset, hard_reset, detach_reset, sg_half_alpha, sg_scale, one)
