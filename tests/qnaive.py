"""Plain-NumPy integer references for the quantized network (int64 throughout, written from
the rules of :mod:`snnlite.quant.formats`, independently of the kernels): slow and obvious."""
import numpy as np


def qlif(x, th, rest, lo, hi, M, F, decay_input=True, hard_reset=True):
    """x (T, N) int currents; th, rest (N,) ints. Returns (spikes (T, N) uint8, h (T, N)
    pre-spike membranes, saturated (T,) count). The leak is ``(d * M) // 2**F`` (floor)."""
    T, N = x.shape
    x = np.asarray(x, np.int64)
    th, rest = np.asarray(th, np.int64), np.asarray(rest, np.int64)
    s = np.zeros((T, N), np.uint8)
    hs = np.zeros((T, N), np.int64)
    sat = np.zeros(T, np.int64)
    v = rest.copy()
    for t in range(T):
        for j in range(N):
            # charge
            if decay_input:
                h = v[j] + ((x[t, j] - (v[j] - rest[j])) * M) // 2 ** F
            else:
                h = v[j] - ((v[j] - rest[j]) * M) // 2 ** F + x[t, j]
            if h > hi or h < lo:
                sat[t] += 1
                h = min(max(h, lo), hi)
            hs[t, j] = h
            # fire
            fired = h >= th[j]
            s[t, j] = fired
            # reset
            v[j] = (rest[j] if hard_reset else h - th[j]) if fired else h
    return s, hs, sat


def sum_pool(s, p):
    """(N, C, H, W) int sums over p x p windows."""
    if p == 1:
        return s
    N, C, H, W = s.shape
    return s.reshape(N, C, H // p, p, W // p, p).sum((3, 5))


def max_pool(s, p):
    N, C, H, W = s.shape
    return s.reshape(N, C, H // p, p, W // p, p).max((3, 5))


def int_conv(x, w, stride, pad):
    """(N, O, Ho, Wo) int64 convolution of int x (N, C, H, W) with int w (O, C, k, k), one
    kernel tap at a time."""
    N, C, H, W = x.shape
    O, _, k, _ = w.shape
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), np.int64)
    xp[:, :, pad:pad + H, pad:pad + W] = x
    y = np.zeros((N, O, Ho, Wo), np.int64)
    for ky in range(k):
        for kx in range(k):
            ys, xs = slice(ky, ky + stride * (Ho - 1) + 1, stride), \
                slice(kx, kx + stride * (Wo - 1) + 1, stride)
            patch = xp[:, :, ys, xs]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, ky, kx].astype(np.int64))
    return y


def _taps(n_in, n_out, k, stride, pad):
    """(n_in,) number of (output, tap) pairs that read input position i of one axis."""
    return np.array([sum(1 for o in range(n_out) for t in range(k) if o * stride - pad + t == i)
                     for i in range(n_in)], np.int64)


def fanout(s, q):
    """(N,) synops of projection q for binary event maps s (N, C, H, W): per event, the
    targets it reaches (each event on its own, pooled or not)."""
    N, C, H, W = s.shape
    O = q.out_shape[0]
    if q.kind == "identity":
        return s.reshape(N, -1).sum(1)
    if q.kind == "linear":
        return s.reshape(N, -1).sum(1) * O
    k = q.weight.shape[-1]
    _, Ho, Wo = q.out_shape
    ny = _taps(H // q.pool, Ho, k, q.stride, q.padding)
    nx = _taps(W // q.pool, Wo, k, q.stride, q.padding)
    yy = np.arange(H) // q.pool
    xx = np.arange(W) // q.pool
    reach = ny[yy][:, None] * nx[xx][None, :]  # (H, W) targets per output channel
    return (s.sum(1) * reach).reshape(N, -1).sum(1) * O


def qnetwork(qnet, x):
    """(spikes {layer: [T, B, C, H, W] uint8}, synops {projection: [B, T]}, acc [B, K] int64,
    saturated {layer: [B, T]}) of ``qnet`` on x [T, B, C, H, W], step by step in int64."""
    T, B = x.shape[:2]
    fmt = qnet.fmt
    if qnet.input_kind == "dense":
        xin = np.clip(np.rint(np.asarray(x, np.float64) / qnet.input_step), -fmt.x_max,
                      fmt.x_max).astype(np.int64)
    else:
        xin = np.asarray(x).astype(np.int64)
    maps, syn, sat, acc = {-1: xin}, {}, {}, None
    for i, qp in enumerate(qnet.populations):
        p = qp.pop
        if p.kind == "maxpool":
            maps[i] = np.stack([max_pool(m, p.pool) for m in maps[p.source]])
            continue
        C = p.shape[0]
        cur = np.zeros((T, B) + p.shape, np.int64)
        if p.bias is not None:
            cur += np.asarray(p.bias, np.int64).reshape(C, 1, 1)
        for q in p.projections:
            src = maps[q.source]
            syn[q.name] = np.zeros((B, T), np.int64)
            w = np.asarray(q.weight, np.int64)
            for t in range(T):
                pooled = sum_pool(src[t], q.pool)
                if q.kind == "conv":
                    cur[t] += int_conv(pooled, w, q.stride, q.padding)
                elif q.kind == "linear":
                    cur[t] += (pooled.reshape(B, -1) @ w.T).reshape(cur[t].shape)
                else:
                    cur[t] += src[t] * w.reshape(C, 1, 1)
                if q.source >= 0 or qnet.input_kind == "events":
                    syn[q.name][:, t] = fanout(src[t], q)
                else:
                    syn[q.name][:, t] = q.dense_connections()
        if p.kind == "readout":
            acc = cur.sum(0).reshape(B, -1)
            continue
        flat = cur.transpose(0, 1, 3, 4, 2).reshape(T, B, -1)  # channel-last, as the engine
        per = p.size // C
        th = np.tile(qp.v_th, per)
        rest = np.tile(qp.v_reset if qp.hard_reset else np.zeros(C, np.int64), per)
        s = np.zeros((T, B, p.size), np.uint8)
        sat[p.name] = np.zeros((B, T), np.int64)
        for b in range(B):
            s[:, b], _, sat[p.name][b] = qlif(flat[:, b], th, rest, fmt.s_min, fmt.s_max,
                                              qp.leak_mult, qp.leak_shift, p.decay_input,
                                              qp.hard_reset)
        H, W = p.shape[1:]
        spikes = s.reshape(T, B, H, W, C).transpose(0, 1, 4, 2, 3)
        maps[i] = spikes.astype(np.int64)
    spikes = {qp.name: maps[i].astype(np.uint8) for i, qp in enumerate(qnet.populations)
              if qp.kind != "readout"}
    return spikes, syn, acc, sat
