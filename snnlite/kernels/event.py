"""Event-driven inference kernels: a whole compiled network run sample by sample, step by
step, each population's currents built from the events of its sources, one LIF update that
emits the next event list.

Layout: a population of neurons of shape (C, H, W) is stored channel-last and flattened,
neuron ``j = (y * W + x) * C + c``; a 1-D population of F neurons is (F, 1, 1), so j = c.
Events are neuron indices (int32). Sources are numbered s = 0 for the network input and
s = i + 1 for population i; ``ecnt[b, t, s]`` events of source s at step t of sample b are
valid, in increasing index order (max-pooled sources: in order of first arrival). The
input's are ``inp[b, t, :ecnt[b, t, 0]]``; population i's fill the columns from
``pop_off[i]`` of a row ``ev[., t]`` of one sample's event store.

Synapses are *runs*: a source position p (y * W + x) pools to pp = pmap[p] (pp = p without
pooling), and ``run_ptr[pp] .. run_ptr[pp + 1]`` index runs (cur, w, len); an event (p, c)
adds ``w[run_w + c * wc : ... + len]`` to ``cur[run_cur + c * cc : ... + len]``, contiguous
rows that vectorise. A conv's taps that hit neighbouring outputs merge into one run (the
weights are stored kx-reversed for that); a linear layer is one run per position; an
identity path one run of length 1 with cc = 1 and a weight of 1. ``len`` summed over an
event's runs is its real fan-out, its synops.

The kernels are serial; :mod:`snnlite._pool` runs one share of the samples per worker.
Each worker owns whole samples (samples ``tid, tid + P, ...``) with its own scratch rows, so
no two workers write the same memory and results do not depend on the thread count.
"""
import numpy as np

from .._config import njit_exact
from .lif import charge, cuba_charge, cuba_current, fire, reciprocal, reset

LIF, READOUT, MAXPOOL, CUBA = 0, 1, 2, 3


@njit_exact
def input_events(inp, ecnt, bad, x, lo, hi):
    """For samples b in [lo, hi): inp[b, t, :n], ecnt[b, t, 0] <- channel-last indices of
    the nonzeros of x[t, b] (x [T, B, C, H, W], any numeric dtype), all steps in one pass;
    bad[b] <- 1 if x[:, b] holds a value other than 0 and 1 (its events are then
    meaningless)."""
    T, _, C, H, W = x.shape
    for b in range(lo, hi):
        for t in range(T):
            row = inp[b, t]
            k = 0
            for y in range(H):
                for xx in range(W):
                    for c in range(C):
                        v = x[t, b, c, y, xx]
                        if v != 0:
                            if v != 1:
                                bad[b] = 1
                            row[k] = (y * W + xx) * C + c
                            k += 1
            ecnt[b, t, 0] = k


@njit_exact
def scatter(cur, idx, n, C, pool, pmap, ptr, run_cur, run_w, run_len, w, wc, cc, mult, keys):
    """cur += the weights of the events idx[:n] of a source with C channels, through the runs
    of their pooled positions (see the module docstring); returns the synops, each event
    counted with its own fan-out.

    With pool > 1, the events that pool onto the same (position, channel) reach the same
    targets through the same weights: they are added once, as k * w with k their number, in
    order of first arrival. mult (the dtype of cur, zero on entry and return) and keys
    (int32) are scratch of at least C * pooled positions."""
    syn = 0
    if pool == 1:
        for e in range(n):
            j = idx[e]
            p = j // C
            c = j - p * C
            for r in range(ptr[p], ptr[p + 1]):
                m = run_len[r]
                dst = cur[run_cur[r] + c * cc:]
                src = w[run_w[r] + c * wc:]
                for i in range(m):  # vectorises: i >= 0, no index wrap-around to check
                    dst[i] += src[i]
                syn += m
        return syn
    u = 0
    for e in range(n):
        j = idx[e]
        p = j // C
        key = pmap[p] * C + j - p * C
        if mult[key] == 0:
            keys[u] = key
            u += 1
        mult[key] += 1
    for e in range(u):
        key = keys[e]
        k = mult[key]
        mult[key] = 0
        pp = key // C
        c = key - pp * C
        for r in range(ptr[pp], ptr[pp + 1]):
            m = run_len[r]
            dst = cur[run_cur[r] + c * cc:]
            src = w[run_w[r] + c * wc:]
            for i in range(m):
                dst[i] += k * src[i]
            syn += int(k) * m
    return syn


@njit_exact
def lif_fire(out, flags, v, cur, tau, v_th, v_reset, decay_input, hard_reset):
    """One LIF step of the neurons of v (membranes, updated in place) from currents cur;
    out[:k] <- the neurons that fired, in index order; returns k. flags: uint8 scratch of at
    least ``len(v)`` rounded up to 8.

    The step is :mod:`.lif`'s charge, fire and reset, inlined (so the event path equals
    ``kernels.lif.lif_forward`` bit for bit by construction): the update runs branch-free
    over all neurons, the firing ones are then collected 8 flags at a time.
    """
    n = v.shape[0]
    r = v_reset if hard_reset else v_reset - v_reset
    itau, pow2 = reciprocal(tau)
    if decay_input:  # two loops: a branch inside would keep them from vectorising well
        for j in range(n):
            h = charge(v[j], cur[j], tau, itau, pow2, r, True)
            s = fire(h, v_th)
            flags[j] = s
            v[j] = reset(h, s, v_reset, v_th, hard_reset)
    else:
        for j in range(n):
            h = charge(v[j], cur[j], tau, itau, pow2, r, False)
            s = fire(h, v_th)
            flags[j] = s
            v[j] = reset(h, s, v_reset, v_th, hard_reset)
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
    return k


@njit_exact
def cuba_fire(out, flags, v, i, cur, tau_syn, tau_mem, w_in, r, v_leak, v_th, v_reset,
              hard_reset):
    """One CubaLIF step (:mod:`.lif`'s synaptic current, charge, fire and reset, inlined)
    of the neurons of v and i (membranes and currents, updated in place) from inputs cur;
    out[:k] <- the neurons that fired, in index order; returns k. flags: uint8 scratch."""
    n = v.shape[0]
    its, p2s = reciprocal(tau_syn)
    itm, p2m = reciprocal(tau_mem)
    for j in range(n):
        c = cuba_current(i[j], cur[j], tau_syn, its, p2s, w_in)
        i[j] = c
        h = cuba_charge(v[j], c, tau_mem, itm, p2m, v_leak, r)
        s = fire(h, v_th)
        flags[j] = s
        v[j] = reset(h, s, v_reset, v_th, hard_reset)
    k = 0
    for j in range(n):
        if flags[j]:
            out[k] = j
            k += 1
    return k


@njit_exact
def maxpool_events(out, seen, idx, n, W, C, k):
    """Max pooling (kernel = stride = k) of binary spikes of a (C, H, W) source: a window
    fires if any input in it fires. out[:m] <- the pooled (C, H // k, W // k) neurons that
    fire, in order of first arrival; returns m. seen: uint8 scratch, zero on entry and return.
    """
    Wp = W // k
    m = 0
    for e in range(n):
        j = idx[e]
        c = j % C
        p = j // C
        q = (((p // W) // k) * Wp + (p % W) // k) * C + c
        if seen[q] == 0:
            seen[q] = 1
            out[m] = q
            m += 1
    for e in range(m):
        seen[out[e]] = 0
    return m


@njit_exact
def run_network(inp, ev, keep, ecnt, syn, logits, dense, q_dense, cur, mem, isyn, flags, seen,
                mult, keys, pop_off, pop_kind, pop_size, pop_q, pop_bias, pop_bias1, pop_src,
                pop_geom, tau, v_th, v_reset, decay_input, hard_reset, tau_syn, w_in, r_in,
                v_leak, bias, q_src, q_delay, q_C, q_pool, q_pmap, q_ptr, q_w, q_wc, q_cc,
                pmap, run_ptr, run_cur, run_w, run_len, w, tid, P):
    """Run samples tid, tid + P, ... through every population, step by step. A population
    runs all its steps before the next population starts (the net is feedforward apart
    from a population's own recurrent projection, ``q_delay`` = 1, which reads its events
    of the step before, none at the first step): only its own weights and membranes are
    in use. CubaLIF populations (``CUBA``) keep their synaptic currents in ``isyn[tid]``.

    inp (B, T, N_in), ecnt (B, T, S): the input's events and counts (source 0) filled in;
    the rest of ecnt <- the events of every population; ev: the event store, ev[b] (T, E) for
    sample b if ``keep`` (ev has B rows), else ev[tid] reused for each sample of this worker
    (P rows); syn (B, T, Q) <- synops per projection (spike sources only); logits (B, K) <-
    the sum over steps of the readout currents; dense (B, 1 or T, D): currents of the
    projections that read a dense input (``q_dense`` >= 0, their offset in D). Scratch rows
    of this worker: cur[tid] and mem[tid] (Nmax, the dtype), flags[tid] (Nmax + 8) and
    seen[tid] (Nmax) uint8, mult[tid] and keys[tid] (see ``scatter``); seen and mult zero.

    Per population i: ``pop_off``; ``pop_kind``; ``pop_size``; its projections
    ``pop_q[i]:pop_q[i + 1]``; ``pop_bias`` offset of its (channel-last, per neuron) bias in
    ``bias`` or -1, ``pop_bias1`` the same from the second step on (with a recurrent bias);
    LIF constants (CubaLIF: ``tau`` is tau_mem, with ``tau_syn, w_in, r_in, v_leak``); for
    max pooling the source ``pop_src`` and ``pop_geom`` = (W, C, k) of that source. Per
    projection q: source ``q_src``; ``q_delay`` (1: the source's events of step t - 1);
    ``q_dense``; source
    channels ``q_C``; ``q_ptr`` offset of its per-position run pointers in ``run_ptr``;
    ``q_w`` offset of its weights in ``w``; channel strides ``q_wc`` (weights) and ``q_cc``
    (currents); ``q_pool`` and ``q_pmap``, the offset of its map from source to pooled
    positions in ``pmap``.
    """
    B, T = inp.shape[:2]
    n_pop = pop_kind.shape[0]
    cur, mem, isyn, flags, seen, mult, keys = cur[tid], mem[tid], isyn[tid], flags[tid], \
        seen[tid], mult[tid], keys[tid]
    for b in range(tid, B, P):
        e = ev[b] if keep else ev[tid]
        for i in range(n_pop):  # all steps of a population, then the next (feedforward)
            n = pop_size[i]
            v, isy = mem[:n], isyn[:n]
            if pop_kind[i] == LIF or pop_kind[i] == CUBA:
                rest = v_reset[i] if hard_reset[i] else v_reset[i] - v_reset[i]
                for j in range(n):
                    v[j] = rest
                    isy[j] = 0
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
                ob = pop_bias[i] if t == 0 else pop_bias1[i]
                if ob >= 0:
                    bi = bias[ob:]
                    for j in range(n):  # a loop: a slice assignment would not vectorise
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
                    ts = t - q_delay[q]  # the step whose events this projection reads
                    if ts < 0:
                        continue
                    src = inp[b, ts] if s == 0 else e[ts, pop_off[s - 1]:]
                    syn[b, t, q] = scatter(c, src, ecnt[b, ts, s], q_C[q], q_pool[q],
                                           pmap[q_pmap[q]:], run_ptr[q_ptr[q]:], run_cur,
                                           run_w, run_len, w[q_w[q]:], q_wc[q], q_cc[q],
                                           mult, keys)
                if pop_kind[i] == LIF:
                    counts[i + 1] = lif_fire(out, flags, v, c, tau[i], v_th[i], v_reset[i],
                                             decay_input[i], hard_reset[i])
                elif pop_kind[i] == CUBA:
                    counts[i + 1] = cuba_fire(out, flags, v, isy, c, tau_syn[i], tau[i],
                                              w_in[i], r_in[i], v_leak[i], v_th[i],
                                              v_reset[i], hard_reset[i])
                else:
                    for j in range(n):
                        logits[b, j] += c[j]
