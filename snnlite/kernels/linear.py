"""Fully connected layer, y = x @ w.T + b, on (N, F) rows with GEMMs split across workers."""
import numpy as np
from numba import prange

from .._config import pjit

ROWS = 64


@pjit
def linear_forward(y, x, w, b, has_bias):
    """y (N, O) <- x (N, F) @ w.T (F, O) + b; row blocks per worker."""
    N = x.shape[0]
    wt = w.T
    for blk in prange((N + ROWS - 1) // ROWS):
        lo = blk * ROWS
        hi = min(N, lo + ROWS)
        np.dot(x[lo:hi], wt, y[lo:hi])
        if has_bias:
            for i in range(lo, hi):
                y[i] += b


@pjit
def linear_backward_input(dx, dy, w):
    """dx (N, F) <- dy (N, O) @ w (O, F)."""
    N = dy.shape[0]
    for blk in prange((N + ROWS - 1) // ROWS):
        lo = blk * ROWS
        hi = min(N, lo + ROWS)
        np.dot(dy[lo:hi], w, dx[lo:hi])
