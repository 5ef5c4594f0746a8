"""Fully connected layer, y = x @ w.T + b, on (N, F) rows; each call computes rows lo..hi-1
with one GEMM."""
import numpy as np

from .._config import njit


@njit
def linear_forward(y, x, w, b, has_bias, lo, hi):
    """y (N, O) <- x (N, F) @ w.T (F, O) + b, rows lo..hi-1."""
    if hi > lo:
        np.dot(x[lo:hi], w.T, y[lo:hi])
        if has_bias:
            for i in range(lo, hi):  # elementwise: a row-slice assignment would compile
                for j in range(b.shape[0]):  # numba's formatted shape-mismatch error (~10 s)
                    y[i, j] += b[j]


@njit
def linear_backward_input(dx, dy, w, lo, hi):
    """dx (N, F) <- dy (N, O) @ w (O, F), rows lo..hi-1."""
    if hi > lo:
        np.dot(dy[lo:hi], w, dx[lo:hi])
