"""Event-driven inference kernels: spikes scattered into the neurons they reach, one LIF step
that emits the next event list.

Layout: a population of neurons of shape (C, H, W) is stored channel-last and flattened,
neuron ``j = (y * W + x) * C + c``; a 1-D population of F neurons is (F, 1, 1), so j = c.
Currents and membranes are float64 ``(B, N)``. The events of one step are ``idx (B, N)``
int32 neuron indices of which the first ``cnt[b]`` are valid for sample b.

Scatter kernels accumulate (``+=``) into currents the caller initialised (to the bias) and
add into ``synops (B,)`` int64 the number of (event, target neuron) pairs they touched: an
event's real fan-out, smaller near a padded border or off a stride's grid. Each worker owns
whole samples (``prange`` over the batch), so no two workers write the same row.
"""
from numba import prange

from .._config import pjit, pjit_exact


@pjit
def events_from_dense(idx, cnt, x):
    """idx (B, N), cnt (B,) <- channel-last indices of the nonzeros of x (B, C, H, W)."""
    B, C, H, W = x.shape
    for b in prange(B):
        k = 0
        for y in range(H):
            for xx in range(W):
                for c in range(C):
                    if x[b, c, y, xx] != 0:
                        idx[b, k] = (y * W + xx) * C + c
                        k += 1
        cnt[b] = k


@pjit
def conv_scatter(cur, synops, idx, cnt, wt, W, C, pool, stride, pad):
    """cur (B, Ho, Wo, O) += wt[c, ky, kx] for every event (c, y, x) of a (C, H, W) source
    and every output (oy, ox) with ``oy * stride - pad + ky = y // pool`` (same in x);
    synops (B,) += O per such (event, oy, ox). ``wt`` (C, k, k, O) holds any 1/pool^2."""
    B, Ho, Wo, O = cur.shape
    k = wt.shape[1]
    for b in prange(B):
        n = 0
        for e in range(cnt[b]):
            j = idx[b, e]
            c = j % C
            p = j // C
            yp = (p // W) // pool
            xp = (p % W) // pool
            for ky in range(k):
                t = yp + pad - ky
                if t < 0 or t % stride != 0 or t // stride >= Ho:
                    continue
                oy = t // stride
                for kx in range(k):
                    u = xp + pad - kx
                    if u < 0 or u % stride != 0 or u // stride >= Wo:
                        continue
                    row = cur[b, oy, u // stride]
                    w = wt[c, ky, kx]
                    for o in range(O):
                        row[o] += w[o]
                    n += O
        synops[b] += n


@pjit
def linear_scatter(cur, synops, idx, cnt, wt, H, W, C, pool):
    """cur (B, O) += wt[f] for every event (c, y, x) of a (C, H, W) source, with
    ``f = c * Hp * Wp + (y // pool) * Wp + x // pool`` the PyTorch flatten index of its pooled
    position (Hp = H // pool, Wp = W // pool); synops (B,) += O per event. wt (F, O)."""
    B, O = cur.shape
    Hp = H // pool
    Wp = W // pool
    for b in prange(B):
        for e in range(cnt[b]):
            j = idx[b, e]
            c = j % C
            p = j // C
            f = c * Hp * Wp + ((p // W) // pool) * Wp + (p % W) // pool
            w = wt[f]
            row = cur[b]
            for o in range(O):
                row[o] += w[o]
        synops[b] += cnt[b] * O


@pjit
def identity_scatter(cur, synops, idx, cnt):
    """cur (B, N) += 1 at every event (a residual identity path); synops (B,) += events."""
    B = cur.shape[0]
    for b in prange(B):
        for e in range(cnt[b]):
            cur[b, idx[b, e]] += 1.0
        synops[b] += cnt[b]


@pjit_exact
def lif_step(idx, cnt, v, cur, tau, v_th, v_reset, decay_input, hard_reset):
    """One LIF step of (B, N) neurons: membrane v (B, N) updated in place from current
    cur (B, N); idx (B, N), cnt (B,) <- the neurons that fired, in index order.

    charge  h = v + (x - (v - v_r)) / tau  (decay_input)  or  v - (v - v_r) / tau + x
    fire    s = h >= v_th                  (a tie fires)
    reset   v = v_reset if s else h        (hard)  or  h - v_th if s else h  (soft, v_r = 0)

    The same operations in the same order as ``kernels.lif.lif_forward``, without fastmath.
    """
    B, N = v.shape
    r = v_reset if hard_reset else v_reset - v_reset
    for b in prange(B):
        k = 0
        for j in range(N):
            vj = v[b, j]
            if decay_input:
                hj = vj + (cur[b, j] - (vj - r)) / tau
            else:
                hj = vj - (vj - r) / tau + cur[b, j]
            if hj >= v_th:
                v[b, j] = v_reset if hard_reset else hj - v_th
                idx[b, k] = j
                k += 1
            else:
                v[b, j] = hj
        cnt[b] = k


@pjit
def maxpool_events(out_idx, out_cnt, seen, idx, cnt, H, W, C, k):
    """Max pooling (kernel = stride = k) of binary spikes: a window fires if any input in it
    fires. out_idx (B, Np), out_cnt (B,) <- the pooled (C, H // k, W // k) neurons that fire,
    in order of first arrival; seen (B, Np) uint8 scratch, all zero on entry and on return."""
    B = seen.shape[0]
    Wp = W // k
    for b in prange(B):
        n = 0
        for e in range(cnt[b]):
            j = idx[b, e]
            c = j % C
            p = j // C
            q = (((p // W) // k) * Wp + (p % W) // k) * C + c
            if seen[b, q] == 0:
                seen[b, q] = 1
                out_idx[b, n] = q
                n += 1
        for e in range(n):
            seen[b, out_idx[b, e]] = 0
        out_cnt[b] = n
