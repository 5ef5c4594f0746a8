"""Plain-loop NumPy references for every kernel. Slow, obvious, float64."""
import math

import numpy as np


def conv2d(x, w, b=None, stride=1, pad=0):
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (W + 2 * pad - kw) // stride + 1
    y = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            for i in range(Ho):
                for j in range(Wo):
                    acc = 0.0 if b is None else b[o]
                    for c in range(C):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy, ix = i * stride - pad + ky, j * stride - pad + kx
                                if 0 <= iy < H and 0 <= ix < W:
                                    acc += x[n, c, iy, ix] * w[o, c, ky, kx]
                    y[n, o, i, j] = acc
    return y


def conv2d_backward(dy, x, w, stride=1, pad=0):
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    dx, dw = np.zeros(x.shape), np.zeros(w.shape)
    for n in range(N):
        for o in range(O):
            for i in range(dy.shape[2]):
                for j in range(dy.shape[3]):
                    g = dy[n, o, i, j]
                    for c in range(C):
                        for ky in range(kh):
                            for kx in range(kw):
                                iy, ix = i * stride - pad + ky, j * stride - pad + kx
                                if 0 <= iy < H and 0 <= ix < W:
                                    dx[n, c, iy, ix] += g * w[o, c, ky, kx]
                                    dw[o, c, ky, kx] += g * x[n, c, iy, ix]
    return dx, dw


def batch_norm_train(x, gamma, beta, eps=1e-5):
    """x (N, C, L): returns y, mean, biased var."""
    N, C, L = x.shape
    y = np.zeros(x.shape)
    mean, var = np.zeros(C), np.zeros(C)
    for c in range(C):
        vals = [x[n, c, i] for n in range(N) for i in range(L)]
        m = sum(vals) / len(vals)
        v = sum((u - m) ** 2 for u in vals) / len(vals)
        mean[c], var[c] = m, v
        for n in range(N):
            for i in range(L):
                y[n, c, i] = (x[n, c, i] - m) / math.sqrt(v + eps) * gamma[c] + beta[c]
    return y, mean, var


def lif(x, tau=2.0, v_th=1.0, v_reset=0.0, decay_input=True):
    """x (T, M): returns spikes, pre-spike membrane h, post-reset membrane v."""
    T, M = x.shape
    s, h, vs = np.zeros((T, M)), np.zeros((T, M)), np.zeros((T, M))
    r = 0.0 if v_reset is None else v_reset
    for j in range(M):
        v = r
        for t in range(T):
            # charge
            if decay_input:
                hj = v + (x[t, j] - (v - r)) / tau
            else:
                hj = v - (v - r) / tau + x[t, j]
            # fire
            sj = 1.0 if hj >= v_th else 0.0
            # reset
            if v_reset is None:
                v = hj - sj * v_th
            else:
                v = v_reset if sj else hj
            s[t, j], h[t, j], vs[t, j] = sj, hj, v
    return s, h, vs


def atan_surrogate(u, alpha=2.0):
    return (alpha / 2) / (1 + (math.pi / 2 * alpha * u) ** 2)


def lif_backward(ds, h, tau=2.0, v_th=1.0, v_reset=0.0, decay_input=True, detach_reset=False,
                 alpha=2.0):
    """BPTT through :func:`lif` by the chain rule, one neuron and one step at a time."""
    T, M = h.shape
    dx = np.zeros((T, M))
    for j in range(M):
        dv = 0.0  # dL/dv_t, flowing back from step t+1
        for t in reversed(range(T)):
            sg = atan_surrogate(h[t, j] - v_th, alpha)
            spike = 1.0 if h[t, j] >= v_th else 0.0
            ds_total = ds[t, j]
            if v_reset is None:  # v = h - s * v_th
                dv_dh = 1.0
                if not detach_reset:
                    ds_total += dv * (-v_th)
            else:  # v = h (1 - s) + v_reset s
                dv_dh = 1.0 - spike
                if not detach_reset:
                    ds_total += dv * (v_reset - h[t, j])
            dh = ds_total * sg + dv * dv_dh
            dx[t, j] = dh / tau if decay_input else dh
            dv = dh * (1.0 - 1.0 / tau)
    return dx


def avg_pool(x, k):
    N, C, H, W = x.shape
    y = np.zeros((N, C, H // k, W // k))
    for i in range(H // k):
        for j in range(W // k):
            y[:, :, i, j] = x[:, :, i * k:(i + 1) * k, j * k:(j + 1) * k].sum((2, 3)) / (k * k)
    return y


def max_pool(x, k):
    """Returns y and, per output, the row-major index of the first maximum."""
    N, C, H, W = x.shape
    y = np.zeros((N, C, H // k, W // k))
    idx = np.zeros(y.shape, np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(H // k):
                for j in range(W // k):
                    win = x[n, c, i * k:(i + 1) * k, j * k:(j + 1) * k].ravel()
                    best = 0
                    for q in range(1, k * k):
                        if win[q] > win[best]:
                            best = q
                    y[n, c, i, j], idx[n, c, i, j] = win[best], best
    return y, idx


def softmax(z):
    out = np.zeros(z.shape)
    for b in range(z.shape[0]):
        e = [math.exp(v - max(z[b])) for v in z[b]]
        out[b] = [v / sum(e) for v in e]
    return out


def cross_entropy(z, y):
    p = softmax(z)
    return -sum(math.log(p[b, y[b]]) for b in range(len(y))) / len(y)


def kl(p, q):
    """mean_b sum_k p log(p / q)."""
    return sum(p[b, k] * math.log(p[b, k] / q[b, k]) for b in range(p.shape[0])
               for k in range(p.shape[1])) / p.shape[0]


def if_neuron(x, v_th=1.0, v_reset=0.0):
    """SpikingJelly's IFNode, x (T, M) in its own dtype: h = v + x, fire at h >= v_th, hard
    reset to v_reset (soft, subtracting v_th, if None). Returns spikes, h."""
    T, M = x.shape
    s, h = np.zeros(x.shape, x.dtype), np.zeros(x.shape, x.dtype)
    th = x.dtype.type(v_th)
    for j in range(M):
        v = x.dtype.type(0.0 if v_reset is None else v_reset)
        for t in range(T):
            hj = v + x[t, j]
            sj = hj >= th
            v = (hj - th if v_reset is None else x.dtype.type(v_reset)) if sj else hj
            s[t, j], h[t, j] = sj, hj
    return s, h


def cuba_lif(x, tau_syn, tau_mem, w_in=1.0, r=1.0, v_leak=0.0, v_th=1.0, v_reset=0.0):
    """NIR's CubaLIF by forward Euler in steps (x (T, M)): i = i + (w_in x - i) / tau_syn
    with w_in in snnlite's units (i - i / tau_syn + w_in x), v from the new i. Returns
    spikes, h, currents i."""
    T, M = x.shape
    s, h, cur = np.zeros((T, M)), np.zeros((T, M)), np.zeros((T, M))
    for j in range(M):
        v, i = (0.0 if v_reset is None else v_reset), 0.0
        for t in range(T):
            i = i - i / tau_syn + w_in * x[t, j]
            hj = v - (v - v_leak) / tau_mem + r * i
            sj = 1.0 if hj >= v_th else 0.0
            v = (hj - sj * v_th) if v_reset is None else (v_reset if sj else hj)
            s[t, j], h[t, j], cur[t, j] = sj, hj, i
    return s, h, cur


def cuba_lif_backward(ds, h, tau_syn, tau_mem, w_in=1.0, r=1.0, v_th=1.0, v_reset=0.0,
                      detach_reset=False, alpha=2.0):
    """BPTT through :func:`cuba_lif` by the chain rule, one neuron and one step at a time."""
    T, M = h.shape
    dx = np.zeros((T, M))
    for j in range(M):
        dv, di = 0.0, 0.0  # dL/dv_t and dL/di_t flowing back from step t+1
        for t in reversed(range(T)):
            sg = atan_surrogate(h[t, j] - v_th, alpha)
            spike = 1.0 if h[t, j] >= v_th else 0.0
            ds_total = ds[t, j]
            if v_reset is None:
                dv_dh = 1.0
                if not detach_reset:
                    ds_total += dv * (-v_th)
            else:
                dv_dh = 1.0 - spike
                if not detach_reset:
                    ds_total += dv * (v_reset - h[t, j])
            dh = ds_total * sg + dv * dv_dh
            di_t = di + dh * r  # h_t = ... + r i_t
            dx[t, j] = di_t * w_in
            dv = dh * (1.0 - 1.0 / tau_mem)
            di = di_t * (1.0 - 1.0 / tau_syn)
    return dx


def recurrent(x, W, b, step):
    """s_t = neuron(x_t + (W s_{t-1} + b if t > 0 else 0)) for x (T, B, M), the neuron a
    per-sample step function ``step(cur (M,), state) -> (s (M,), h (M,), state)`` with
    ``state=None`` at rest. Returns spikes, h (T, B, M)."""
    T, B, M = x.shape
    s, h = np.zeros((T, B, M)), np.zeros((T, B, M))
    for n in range(B):
        state = None
        for t in range(T):
            cur = x[t, n].astype(np.float64)
            if t > 0:
                cur = cur + W @ s[t - 1, n] + (0 if b is None else b)
            s[t, n], h[t, n], state = step(cur, state)
    return s, h
