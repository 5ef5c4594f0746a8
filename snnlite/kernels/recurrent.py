"""Recurrent neuron layers: a neuron (LIF, IF or CubaLIF) whose own spikes come back as input
through a linear feedback ``W`` (M, M) and bias ``b``, one step late (NIR's convention for
a cycle: the edge carries the previous step's output, zero at the first step)::

    cur_t = x_t + (W s_{t-1} + b  if t > 0 else 0)
    s_t, state = neuron step(cur_t, state)

The neuron step is :mod:`.lif`'s (inlined); ``cuba`` selects CubaLIF, whose extra
parameters (``tau_syn, w_in, r, v_leak``) are ignored otherwise. The feedback is event
driven: the spikes of step t-1 add rows of ``Wt = W.T`` (contiguous), in index order.

Arrays are (T, B, M); each call computes samples lo..hi-1 (a sample's steps depend on each
other, its neurons on each other through W). Backward returns the gradient wrt the total
current ``cur`` (= wrt x); the weight and bias gradients follow from it and the spikes
(:func:`snnlite.nn.functional.recurrent_backward`).
"""
import numpy as np

from .._config import njit_exact
from .lif import (
    bptt_step,
    charge,
    cuba_bptt_step,
    cuba_charge,
    cuba_current,
    fire,
    reciprocal,
    reset,
)


@njit_exact
def recurrent_forward(s, h, x, Wt, b, has_bias, cuba, tau, v_th, v_reset, decay_input,
                      hard_reset, tau_syn, w_in, r, v_leak, lo, hi):
    """s (T, B, M) spikes, h (T, B, M) pre-spike membranes from x (T or 1, B, M) currents.
    Every sample starts at rest (v = v_reset, or 0 under soft reset; i = 0)."""
    T, B, M = s.shape
    bx = x.shape[0] == 1
    one = np.ones(1, s.dtype)[0]
    zero = one - one
    rest = v_reset if hard_reset else zero
    itau, pow2 = reciprocal(tau)
    its, p2s = reciprocal(tau_syn)
    v = np.empty(M, s.dtype)
    i = np.empty(M, s.dtype)
    cur = np.empty(M, s.dtype)
    for n in range(lo, hi):
        for j in range(M):
            v[j] = rest
            i[j] = zero
        for t in range(T):
            xt = x[0 if bx else t, n]
            for j in range(M):
                cur[j] = xt[j]
            if t > 0:
                if has_bias:
                    for j in range(M):
                        cur[j] += b[j]
                prev = s[t - 1, n]
                for k in range(M):
                    if prev[k] != 0:
                        wk = Wt[k]
                        for j in range(M):
                            cur[j] += wk[j]
            ht, st = h[t, n], s[t, n]
            for j in range(M):
                if cuba:
                    i[j] = cuba_current(i[j], cur[j], tau_syn, its, p2s, w_in)
                    hj = cuba_charge(v[j], i[j], tau, itau, pow2, v_leak, r)
                else:
                    hj = charge(v[j], cur[j], tau, itau, pow2, rest, decay_input)
                ht[j] = hj
                f = fire(hj, v_th)
                st[j] = one if f else zero
                v[j] = reset(hj, f, v_reset, v_th, hard_reset)


@njit_exact
def recurrent_backward(dcur, ds, h, W, cuba, tau, v_th, v_reset, decay_input, hard_reset,
                       detach_reset, tau_syn, w_in, r, sg_half_alpha, sg_scale, lo, hi):
    """dcur (T, B, M) <- gradient wrt the total current of each step given ds (T, B, M)
    (wrt the spikes) and h from the forward. The spikes of step t also reach step t + 1
    through W: their gradient gains ``dcur_{t+1} @ W``."""
    T, B, M = h.shape
    one = np.ones(1, h.dtype)[0]
    itau, pow2 = reciprocal(tau)
    its, p2s = reciprocal(tau_syn)
    cv = np.empty(M, h.dtype)
    ci = np.empty(M, h.dtype)
    gs = np.empty(M, h.dtype)
    for n in range(lo, hi):
        for j in range(M):
            cv[j] = 0
            ci[j] = 0
        for t in range(T - 1, -1, -1):
            dst = ds[t, n]
            for k in range(M):
                gs[k] = dst[k]
            if t + 1 < T:
                nxt = dcur[t + 1, n]
                for j in range(M):
                    g = nxt[j]
                    if g != 0:
                        wj = W[j]
                        for k in range(M):
                            gs[k] += g * wj[k]
            ht, dt = h[t, n], dcur[t, n]
            for j in range(M):
                if cuba:
                    dt[j], cv[j], ci[j] = cuba_bptt_step(
                        gs[j], cv[j], ci[j], ht[j], tau_syn, its, p2s, tau, itau, pow2, w_in,
                        r, v_th, v_reset, hard_reset, detach_reset, sg_half_alpha, sg_scale,
                        one)
                else:
                    dt[j], cv[j] = bptt_step(gs[j], cv[j], ht[j], tau, itau, pow2, v_th,
                                             v_reset, decay_input, hard_reset, detach_reset,
                                             sg_half_alpha, sg_scale, one)
