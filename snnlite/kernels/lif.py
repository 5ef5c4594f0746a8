"""Multi-step LIF neuron: forward and BPTT backward, the time loop inside each kernel.

Per step t with input x_t and membrane v (v_0 given, usually v_reset):

    charge:  h_t = v + (x_t - (v - v_r)) / tau          (decay_input)
             h_t = v - (v - v_r) / tau + x_t            (otherwise)
    fire:    s_t = 1 if h_t >= v_th else 0              (a tie spikes)
    reset:   v = v_reset if s_t else h_t                (hard reset)
             v = h_t - s_t * v_th                       (soft reset, v_r = 0 in the charge)

This is SpikingJelly's LIFNode, operation for operation: the kernels are compiled without
fastmath and every scalar arrives in the array's dtype, so float32 results agree bit for bit.
Only the pre-spike membrane ``h`` is kept for backward; spikes and surrogate gradients are
recomputed from it in reverse time. The surrogate is ATan:
``sg(u) = (alpha / 2) / (1 + (pi / 2 * alpha * u)^2)``.

Arrays are (T, M) with the neurons flattened; an input with a leading dimension of 1 is the
same current at every step (direct coding). Each call computes neurons lo..hi-1, in blocks
with the time loop outside the block so that the inner loop vectorises.
"""
import math

import numpy as np

from .._config import njit_exact

BLOCK = 512


@njit_exact
def _reciprocal(tau):
    """(1 / tau, whether tau is a power of two): then x * (1 / tau) is exactly x / tau
    (both round the same real number once), and a multiplication is far cheaper."""
    return (tau / tau) / tau, math.frexp(tau)[0] == 0.5


@njit_exact
def _div(x, tau, itau, pow2):
    return x * itau if pow2 else x / tau


@njit_exact
def lif_forward(s, h, v, x, tau, v_th, v_reset, decay_input, hard_reset, lo, hi):
    """s (T, M) spikes, h (T, M) pre-spike membrane; v (M,) initial membrane, updated in
    place to the final one; x (T or 1, M) input current. Scalars in the arrays' dtype."""
    T, M = s.shape
    bx = x.shape[0] == 1
    r = v_reset if hard_reset else v_reset - v_reset  # the charge leaks towards 0 under soft reset
    one = tau / tau
    itau, pow2 = _reciprocal(tau)
    zero = tau - tau
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        for t in range(T):
            xt = x[0] if bx else x[t]
            ht, st = h[t], s[t]  # 1-D rows in the inner loop: it vectorises
            for j in range(b0, b1):
                vj = v[j]
                if decay_input:
                    hj = vj + _div(xt[j] - (vj - r), tau, itau, pow2)
                else:
                    hj = vj - _div(vj - r, tau, itau, pow2) + xt[j]
                ht[j] = hj
                if hj >= v_th:
                    st[j] = one
                    v[j] = v_reset if hard_reset else hj - v_th
                else:
                    st[j] = zero
                    v[j] = hj


@njit_exact
def lif_backward(dx, ds, h, tau, v_th, v_reset, decay_input, hard_reset, detach_reset,
                 sg_half_alpha, sg_scale, lo, hi):
    """dx (T, M) <- gradient wrt the input current given ds (T, M), the gradient wrt the
    spikes, and h (T, M) from the forward. The final membrane carries no gradient.

    ``sg_half_alpha = alpha / 2`` and ``sg_scale = pi / 2 * alpha`` (the ATan surrogate).
    """
    T, M = h.shape
    one = tau / tau
    itau, pow2 = _reciprocal(tau)
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        carry = np.zeros(b1 - b0, h.dtype)
        for t in range(T - 1, -1, -1):
            ht, dst, dxt = h[t], ds[t], dx[t]
            for j in range(b0, b1):
                hj = ht[j]
                z = (hj - v_th) * sg_scale
                sg = sg_half_alpha / (one + z * z)
                if hard_reset:
                    rg = one - one if hj >= v_th else one
                    if not detach_reset:
                        rg = rg + (v_reset - hj) * sg
                else:
                    rg = one if detach_reset else one - v_th * sg
                gh = dst[j] * sg + carry[j - b0] * rg
                gt = _div(gh, tau, itau, pow2)
                dxt[j] = gt if decay_input else gh
                carry[j - b0] = gh - gt
