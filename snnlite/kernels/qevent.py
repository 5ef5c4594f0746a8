"""Integer event-driven inference: a quantized network run sample by sample, step by step,
in integer arithmetic (the rules of :mod:`snnlite.quant.formats`).

The layout is the float engine's (:mod:`snnlite.kernels.event`: channel-last neurons,
events as neuron indices, synapses as runs, one event store per sample) and its
``scatter`` and ``maxpool_events`` run here unchanged on int32 currents and weights: the
quantizer proves that no current can leave int32, so the additions cannot wrap. What
differs is the neuron: :func:`qlif_fire` charges with an integer leak, saturates the
membrane to the state width (counting each saturation), fires on ``h >= v_th`` and resets.
"""
import numpy as np

from .._config import njit_exact, njit_inline
from .event import LIF, MAXPOOL, maxpool_events, scatter


@njit_inline
def qcharge(v, x, r, M, F, decay_input):
    """Pre-spike membrane (int64) from membrane v, current x and rest r (int64): the leak is
    ``(d * M) >> F``, an arithmetic shift (rounding towards minus infinity)."""
    if decay_input:
        return v + (((x - (v - r)) * M) >> F)
    return v - (((v - r) * M) >> F) + x


@njit_inline
def saturate(h, lo, hi):
    """(h clipped to [lo, hi], 1 if it was clipped else 0)."""
    if h > hi:
        return hi, 1
    if h < lo:
        return lo, 1
    return h, 0


@njit_exact
def qlif_fire(out, flags, v, cur, th, rest, lo, hi, M, F, decay_input, hard_reset):
    """One integer LIF step of the neurons of v (int32 membranes, updated in place) from the
    int32 currents cur; th, rest: per-neuron threshold and rest (the hard-reset value, 0
    under soft reset); [lo, hi] the state range. out[:k] <- the neurons that fired, in index
    order. Returns (k, number of membranes that saturated). flags: uint8 scratch of at least
    ``len(v)`` rounded up to 8."""
    n = v.shape[0]
    nsat = 0
    for j in range(n):
        # charge
        h = qcharge(np.int64(v[j]), np.int64(cur[j]), np.int64(rest[j]), M, F, decay_input)
        h, c = saturate(h, lo, hi)
        nsat += c
        # fire
        s = h >= th[j]
        flags[j] = s
        # reset
        if s:
            h = np.int64(rest[j]) if hard_reset else h - th[j]
        v[j] = h
    n8 = (n + 7) // 8 * 8
    flags[n:n8] = 0
    words = flags[:n8].view(np.uint64)
    k = 0
    for i in range(n8 // 8):
        if words[i] != 0:
            for j in range(8 * i, 8 * i + 8):
                if flags[j]:
                    out[k] = j
                    k += 1
    return k, nsat


@njit_exact
def qrun_network(inp, ev, keep, ecnt, syn, sat, acc, dense, q_dense, cur, mem, flags, seen,
                 mult, keys, pop_off, pop_kind, pop_size, pop_q, pop_bias, pop_nrn, pop_src,
                 pop_geom, s_lo, s_hi, leak_m, leak_f, decay_input, hard_reset, bias, th,
                 rest, q_src, q_C, q_pool, q_pmap, q_ptr, q_w, q_wc, q_cc, pmap, run_ptr,
                 run_cur, run_w, run_len, w, tid, P):
    """Run samples tid, tid + P, ... of a quantized network (cf.
    :func:`snnlite.kernels.event.run_network`, whose arguments these mirror).

    Integer arrays: cur, mem (P, Nmax), mult (P, n_pooled), dense (B, 1 or T, D), bias, th,
    rest and w int32; acc (B, K) int64 <- the readout's currents summed over steps; sat
    (B, T, n_pop) int64 <- saturated membranes per step. Per population i: ``pop_nrn`` is
    the offset of its per-neuron thresholds and rests in ``th`` / ``rest`` (LIF, else -1);
    ``s_lo`` / ``s_hi`` its state range; its leak ``(d * leak_m) >> leak_f``.
    """
    B, T = inp.shape[:2]
    n_pop = pop_kind.shape[0]
    cur, mem, flags, seen, mult, keys = cur[tid], mem[tid], flags[tid], seen[tid], mult[tid], \
        keys[tid]
    for b in range(tid, B, P):
        e = ev[b] if keep else ev[tid]
        for i in range(n_pop):  # all steps of a population, then the next (feedforward)
            n = pop_size[i]
            v = mem[:n]
            if pop_kind[i] == LIF:
                r = rest[pop_nrn[i]:pop_nrn[i] + n]
                for j in range(n):
                    v[j] = r[j]
            for t in range(T):
                counts = ecnt[b, t]
                out = e[t, pop_off[i]:pop_off[i] + n]
                if pop_kind[i] == MAXPOOL:
                    s = pop_src[i]
                    counts[i + 1] = maxpool_events(out, seen, e[t, pop_off[s - 1]:], counts[s],
                                                   pop_geom[i, 0], pop_geom[i, 1],
                                                   pop_geom[i, 2])
                    continue
                c = cur[:n]
                if pop_bias[i] >= 0:
                    bi = bias[pop_bias[i]:]
                    for j in range(n):
                        c[j] = bi[j]
                else:
                    for j in range(n):
                        c[j] = 0
                for q in range(pop_q[i], pop_q[i + 1]):
                    if q_dense[q] >= 0:
                        d = dense[b, t if dense.shape[1] > 1 else 0, q_dense[q]:]
                        for j in range(n):
                            c[j] += d[j]
                        continue
                    s = q_src[q]
                    src = inp[b, t] if s == 0 else e[t, pop_off[s - 1]:]
                    syn[b, t, q] = scatter(c, src, counts[s], q_C[q], q_pool[q],
                                           pmap[q_pmap[q]:], run_ptr[q_ptr[q]:], run_cur,
                                           run_w, run_len, w[q_w[q]:], q_wc[q], q_cc[q],
                                           mult, keys)
                if pop_kind[i] == LIF:
                    o = pop_nrn[i]
                    k, ns = qlif_fire(out, flags, v, c, th[o:o + n], rest[o:o + n], s_lo[i],
                                      s_hi[i], leak_m[i], leak_f[i], decay_input[i],
                                      hard_reset[i])
                    counts[i + 1] = k
                    sat[b, t, i] = ns
                else:
                    for j in range(n):
                        acc[b, j] += c[j]
