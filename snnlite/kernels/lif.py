"""The LIF step, written once, and the multi-step LIF kernels built on it.

Per step t with input x_t and membrane v (v_0 given, usually v_reset):

    # charge
    h_t = v + (x_t - (v - v_r)) / tau          (decay_input)
    h_t = v - (v - v_r) / tau + x_t            (otherwise)
    # fire
    s_t = 1 if h_t >= v_th else 0              (a tie spikes)
    # reset
    v = v_reset if s_t else h_t                (hard reset)
    v = h_t - s_t * v_th                       (soft reset, v_r = 0 in the charge)

This is SpikingJelly's LIFNode, operation for operation: the kernels are compiled without
fastmath and every scalar arrives in the array's dtype, so float32 results agree bit for bit.
A power-of-two tau divides by multiplying with its exact reciprocal (the same result, see
:func:`reciprocal`). Only the pre-spike membrane ``h`` is kept for backward; spikes and
surrogate gradients are recomputed from it in reverse time. The surrogate is ATan:
``sg(u) = (alpha / 2) / (1 + (pi / 2 * alpha * u)^2)``.

:func:`charge`, :func:`fire`, :func:`reset` and, for BPTT, :func:`surrogate` and
:func:`bptt_step` are the only place this maths is written: every kernel that updates a
membrane (here, :mod:`.fused`, :mod:`.event`, :mod:`.cuba`, :mod:`.recurrent`) inlines
them into its own loops.

IF (integrate-and-fire, SpikingJelly's ``IFNode``) is this LIF with ``tau = inf`` and
``decay_input`` off: the leak ``(v - v_r) / inf`` is an exact zero, so the charge is
``h = v + x`` operation for operation (``reciprocal(inf)`` reports no power of two, so the
leak divides). Constants of 1 are therefore never made as ``tau / tau``.

CubaLIF (current-based LIF, NIR's ``CubaLIF``) puts a synaptic current i in front of the
membrane, with its own step :func:`cuba_current` and :func:`cuba_charge`, then the same
fire and reset; :func:`cuba_bptt_step` is its BPTT step::

    # synaptic current
    i_t = i - i / tau_syn + w_in * x_t
    # charge
    h_t = v - (v - v_leak) / tau_mem + r * i_t

Arrays are (T, M) with the neurons flattened; an input with a leading dimension of 1 is the
same current at every step (direct coding). Each call computes neurons lo..hi-1, in blocks
with the time loop outside the block so that the inner loop vectorises.
"""
import math

import numpy as np

from .._config import njit_exact, njit_inline

BLOCK = 512


@njit_exact
def reciprocal(tau):
    """(1 / tau, whether tau is a power of two): then x * (1 / tau) is exactly x / tau
    (both round the same real number once), and a multiplication is far cheaper."""
    return (tau / tau) / tau, math.frexp(tau)[0] == 0.5


@njit_inline
def _div(x, tau, itau, pow2):
    """x / tau, by the exact reciprocal ``itau`` when ``pow2`` (see :func:`reciprocal`)."""
    return x * itau if pow2 else x / tau


@njit_inline
def charge(v, x, tau, itau, pow2, r, decay_input):
    """Pre-spike membrane h from membrane v and input x; r is the rest the charge leaks
    towards (v_reset, or 0 under soft reset); (itau, pow2) = ``reciprocal(tau)``."""
    if decay_input:
        return v + _div(x - (v - r), tau, itau, pow2)
    return v - _div(v - r, tau, itau, pow2) + x


@njit_inline
def fire(h, v_th):
    """Whether the neuron spikes: a tie h == v_th does."""
    return h >= v_th


@njit_inline
def reset(h, fired, v_reset, v_th, hard_reset):
    """Membrane after the step."""
    if fired:
        return v_reset if hard_reset else h - v_th
    return h


@njit_inline
def surrogate(h, v_th, half_alpha, scale, one):
    """ATan surrogate of dH/dh at h: half_alpha / (1 + ((h - v_th) * scale)^2)."""
    z = (h - v_th) * scale
    return half_alpha / (one + z * z)


@njit_inline
def bptt_step(ds, carry, h, tau, itau, pow2, v_th, v_reset, decay_input, hard_reset,
              detach_reset, half_alpha, scale, one):
    """One step of BPTT, backwards: (gradient wrt x_t, gradient wrt v_{t-1}) from ds (wrt
    s_t), carry (wrt v_t) and h = h_t. The charge is linear in v and x: dh/dx = 1 / tau
    (1 with decay_input off) and dh/dv = 1 - 1 / tau."""
    gh = grad_h(ds, carry, h, v_th, v_reset, hard_reset, detach_reset, half_alpha, scale, one)
    gt = _div(gh, tau, itau, pow2)
    return (gt if decay_input else gh), gh - gt


@njit_inline
def grad_h(ds, carry, h, v_th, v_reset, hard_reset, detach_reset, half_alpha, scale, one):
    """Gradient wrt the pre-spike membrane h_t from ds (wrt s_t) and carry (wrt v_t):
    through the spike (surrogate) and through the reset."""
    sg = surrogate(h, v_th, half_alpha, scale, one)
    if hard_reset:  # v = h (1 - s) + v_reset s
        rg = one - one if fire(h, v_th) else one
        if not detach_reset:
            rg = rg + (v_reset - h) * sg
    else:  # v = h - s v_th
        rg = one if detach_reset else one - v_th * sg
    return ds * sg + carry * rg


@njit_inline
def cuba_current(i, x, tau_syn, itau_syn, pow2_syn, w_in):
    """CubaLIF synaptic current after input x: i - i / tau_syn + w_in * x."""
    return i - _div(i, tau_syn, itau_syn, pow2_syn) + w_in * x


@njit_inline
def cuba_charge(v, i, tau_mem, itau_mem, pow2_mem, v_leak, r):
    """CubaLIF pre-spike membrane from membrane v and current i:
    v - (v - v_leak) / tau_mem + r * i."""
    return v - _div(v - v_leak, tau_mem, itau_mem, pow2_mem) + r * i


@njit_inline
def cuba_bptt_step(ds, carry_v, carry_i, h, tau_syn, itau_syn, pow2_syn, tau_mem, itau_mem,
                   pow2_mem, w_in, r, v_th, v_reset, hard_reset, detach_reset, half_alpha,
                   scale, one):
    """One CubaLIF BPTT step, backwards: (gradient wrt x_t, wrt v_{t-1}, wrt i_{t-1}) from
    ds (wrt s_t), carry_v (wrt v_t), carry_i (wrt i_t, through i_{t+1}) and h = h_t. Both
    updates are linear: dh/dv = 1 - 1 / tau_mem, dh/di = r, di/di_prev = 1 - 1 / tau_syn,
    di/dx = w_in."""
    gh = grad_h(ds, carry_v, h, v_th, v_reset, hard_reset, detach_reset, half_alpha, scale,
                one)
    gi = carry_i + r * gh
    return w_in * gi, gh - _div(gh, tau_mem, itau_mem, pow2_mem), \
        gi - _div(gi, tau_syn, itau_syn, pow2_syn)


@njit_exact
def lif_forward(s, h, v, x, tau, v_th, v_reset, decay_input, hard_reset, lo, hi):
    """s (T, M) spikes, h (T, M) pre-spike membrane; v (M,) initial membrane, updated in
    place to the final one; x (T or 1, M) input current. Scalars in the arrays' dtype."""
    T, M = s.shape
    bx = x.shape[0] == 1
    r = v_reset if hard_reset else v_reset - v_reset  # the charge leaks towards 0 under soft reset
    one = np.ones(1, s.dtype)[0]  # not tau / tau: NaN for an IF's tau = inf
    zero = one - one
    itau, pow2 = reciprocal(tau)
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        vb = v[b0:b1]
        for t in range(T):
            # 1-D rows of the block, indexed from 0 (no wrap-around to check): it vectorises
            xt, ht, st = x[0 if bx else t, b0:b1], h[t, b0:b1], s[t, b0:b1]
            for j in range(b1 - b0):
                hj = charge(vb[j], xt[j], tau, itau, pow2, r, decay_input)
                ht[j] = hj
                f = fire(hj, v_th)
                st[j] = one if f else zero
                vb[j] = reset(hj, f, v_reset, v_th, hard_reset)


@njit_exact
def lif_backward(dx, ds, h, tau, v_th, v_reset, decay_input, hard_reset, detach_reset,
                 sg_half_alpha, sg_scale, lo, hi):
    """dx (T, M) <- gradient wrt the input current given ds (T, M), the gradient wrt the
    spikes, and h (T, M) from the forward. The final membrane carries no gradient.

    ``sg_half_alpha = alpha / 2`` and ``sg_scale = pi / 2 * alpha`` (the ATan surrogate).
    """
    T, M = h.shape
    one = np.ones(1, h.dtype)[0]
    itau, pow2 = reciprocal(tau)
    buf = np.empty(BLOCK, h.dtype)  # gradient wrt the membrane, flowing back in time
    for b0 in range(lo, hi, BLOCK):
        b1 = min(hi, b0 + BLOCK)
        carry = buf[:b1 - b0]
        carry[:] = 0
        for t in range(T - 1, -1, -1):
            ht, dst, dxt = h[t, b0:b1], ds[t, b0:b1], dx[t, b0:b1]  # indexed from 0
            for j in range(b1 - b0):
                dxt[j], carry[j] = bptt_step(dst[j], carry[j], ht[j], tau, itau, pow2, v_th,
                                             v_reset, decay_input, hard_reset, detach_reset,
                                             sg_half_alpha, sg_scale, one)
