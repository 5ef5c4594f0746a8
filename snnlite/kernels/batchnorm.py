"""Batch normalisation over (N, C, L): statistics per channel over N*L, in float64.

Each kernel takes the range [lo, hi) of its outermost index (channels, or rows n*C + c) that
one worker computes (see :mod:`snnlite._pool`). Forward (training) saves ``mean`` and
``rstd`` for backward; the caller updates the running statistics. Eval mode normalises with
the running statistics instead.
"""
import numpy as np

from .._config import njit


@njit
def bn_stats(mean, var, x, lo, hi):
    """mean, var (C,) <- per-channel mean and biased variance of x (N, C, L); channels
    lo..hi-1."""
    N, C, L = x.shape
    for c in range(lo, hi):
        # one pass over x, float64 sums of d = x - x0 and d^2; shifting by a sample x0
        # keeps E[d^2] - E[d]^2 free of cancellation when |mean| >> std
        x0 = np.float64(x[0, c, 0])
        s = 0.0
        q = 0.0
        for n in range(N):
            xr = x[n, c]
            for i in range(L):
                d = np.float64(xr[i]) - x0
                s += d
                q += d * d
        md = s / (N * L)
        mean[c] = x0 + md
        var[c] = max(q / (N * L) - md * md, 0.0)


@njit
def bn_normalize(y, x, mean, rstd, gamma, beta, lo, hi):
    """y (N, C, L) <- (x - mean[c]) * rstd[c] * gamma[c] + beta[c], in float64; rows
    k = n*C + c in lo..hi-1."""
    N, C, L = x.shape
    for k in range(lo, hi):
        n, c = k // C, k % C
        m, r, g, b = mean[c], rstd[c], np.float64(gamma[c]), np.float64(beta[c])
        yr, xr = y[n, c], x[n, c]
        for i in range(L):
            yr[i] = (xr[i] - m) * r * g + b


@njit
def bn_backward_reduce(dgamma, dbeta, dy, x, mean, rstd, lo, hi):
    """dgamma, dbeta (C,) <- sum of dy * xhat and of dy over N*L (overwritten); channels
    lo..hi-1."""
    N, C, L = x.shape
    for c in range(lo, hi):
        sg = 0.0
        sb = 0.0
        m, r = mean[c], rstd[c]
        for n in range(N):
            gr, xr = dy[n, c], x[n, c]
            for i in range(L):
                g = gr[i]
                sb += g
                sg += g * (xr[i] - m) * r
        dgamma[c] = sg
        dbeta[c] = sb


@njit
def bn_backward_input(dx, dy, x, mean, rstd, gamma, dgamma, dbeta, lo, hi):
    """dx (N, C, L) <- input gradient of training-mode batch norm, rows k = n*C + c in
    lo..hi-1 (dx may be dy: each element is read before it is written).

    dx = gamma * rstd * (dy - dbeta / M - xhat * dgamma / M), M = N * L.
    """
    N, C, L = x.shape
    M = N * L
    for k in range(lo, hi):
        n, c = k // C, k % C
        m, r = mean[c], rstd[c]
        a = gamma[c] * r
        gb = dbeta[c] / M
        gg = dgamma[c] / M
        dr, gr, xr = dx[n, c], dy[n, c], x[n, c]
        for i in range(L):
            xh = (xr[i] - m) * r
            dr[i] = a * (gr[i] - gb - xh * gg)
