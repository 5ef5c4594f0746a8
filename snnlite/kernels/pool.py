"""Non-overlapping pooling (kernel = stride = k, no padding) over (N, H, W) planes.

Max pooling keeps, per output, the flat window index of the first maximum in row-major
order (PyTorch's tie rule); a NaN wins the window, as in PyTorch.
"""
from .._config import njit
from .util import fill


@njit
def avg_pool_forward(y, x, k, lo, hi):
    """y (N, Ho, Wo) <- mean of each k x k window of x (N, H, W)."""
    N, Ho, Wo = y.shape
    inv = 1.0 / (k * k)
    for n in range(lo, hi):
        for i in range(Ho):
            for j in range(Wo):
                acc = x[n, i * k, j * k] - x[n, i * k, j * k]
                for a in range(k):
                    for b in range(k):
                        acc += x[n, i * k + a, j * k + b]
                y[n, i, j] = acc * inv


@njit
def avg_pool_backward(dx, dy, k, lo, hi):
    """dx (N, H, W) <- dy / k^2 spread over each window (fully overwritten)."""
    N, Ho, Wo = dy.shape
    inv = 1.0 / (k * k)
    for n in range(lo, hi):
        for i in range(Ho):
            for j in range(Wo):
                g = dy[n, i, j] * inv
                for a in range(k):
                    for b in range(k):
                        dx[n, i * k + a, j * k + b] = g


@njit
def max_pool_forward(y, idx, x, k, lo, hi):
    """y (N, Ho, Wo) <- window maxima of x (N, H, W); idx (N, Ho, Wo) uint8 window index."""
    N, Ho, Wo = y.shape
    for n in range(lo, hi):
        for i in range(Ho):
            for j in range(Wo):
                best = x[n, i * k, j * k]
                arg = 0
                for a in range(k):
                    for b in range(k):
                        v = x[n, i * k + a, j * k + b]
                        if v > best or (v != v and best == best):
                            best = v
                            arg = a * k + b
                y[n, i, j] = best
                idx[n, i, j] = arg


@njit
def max_pool_backward(dx, dy, idx, k, lo, hi):
    """dx (N, H, W) <- dy routed to each window's argmax (fully overwritten)."""
    N, Ho, Wo = dy.shape
    for n in range(lo, hi):
        fill(dx[n], 0)
        for i in range(Ho):
            for j in range(Wo):
                a = idx[n, i, j] // k
                b = idx[n, i, j] % k
                dx[n, i * k + a, j * k + b] = dy[n, i, j]
