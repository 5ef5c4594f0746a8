"""2-D convolution (PyTorch cross-correlation, zero padding), forward and backward.

Layout is NCHW throughout; the weight is ``w2 = weight.reshape(O, C*kh*kw)`` with rows in
(c, ky, kx) order, so each image is one GEMM that writes its output in place:

    y[n] (O, Ho*Wo) = w2 (O, Ckk) @ cols[n] (Ckk, Ho*Wo)

Each worker owns whole images (worker tid of P takes images tid, tid + P, ...), its own
scratch buffers and its own weight-gradient accumulator (summed by the caller), with BLAS
single-threaded inside. An image whose input
is mostly zeros (spikes) skips the GEMM: every nonzero input adds its weighted kernel column
into the outputs it reaches (forward), or its weighted output gradients into the weight
gradient (backward). The choice is made per image from the nonzero count.
"""
import numpy as np

from .._config import njit
from .util import fill


@njit
def out_size(n, k, stride, pad):
    return (n + 2 * pad - k) // stride + 1


@njit
def im2col(cols, x, kh, kw, stride, pad, Ho, Wo):
    """cols (C*kh*kw, Ho*Wo) <- patches of one image x (C, H, W)."""
    C, H, W = x.shape
    for c in range(C):
        for ky in range(kh):
            for kx in range(kw):
                r = (c * kh + ky) * kw + kx
                for oy in range(Ho):
                    iy = oy * stride - pad + ky
                    dst = cols[r, oy * Wo:(oy + 1) * Wo]  # 1-D rows: unit stride is known
                    if iy < 0 or iy >= H:
                        for ox in range(Wo):
                            dst[ox] = 0
                        continue
                    src = x[c, iy]
                    for ox in range(Wo):
                        ix = ox * stride - pad + kx
                        dst[ox] = src[ix] if 0 <= ix < W else 0


@njit
def col2im(dx, cols, kh, kw, stride, pad, Ho, Wo):
    """dx (C, H, W) += adjoint of im2col applied to cols (C*kh*kw, Ho*Wo)."""
    C, H, W = dx.shape
    for c in range(C):
        for ky in range(kh):
            for kx in range(kw):
                r = (c * kh + ky) * kw + kx
                for oy in range(Ho):
                    iy = oy * stride - pad + ky
                    if iy < 0 or iy >= H:
                        continue
                    src = cols[r, oy * Wo:(oy + 1) * Wo]
                    dst = dx[c, iy]
                    for ox in range(Wo):
                        ix = ox * stride - pad + kx
                        if 0 <= ix < W:
                            dst[ix] += src[ox]


@njit
def _nonzero_fraction(x):
    C, H, W = x.shape
    k = 0
    for c in range(C):
        for i in range(H):
            row = x[c, i]
            for j in range(W):
                if row[j] != 0:
                    k += 1
    return k / (C * H * W)


@njit
def _scatter(acc, x, mat, kh, kw, stride, pad, Ho, Wo, into_outputs):
    """Event path of one image x (C, H, W): for every nonzero input v and every output
    position q it reaches through kernel tap r = (c, ky, kx):

        into_outputs:      acc[q] += v * mat[r]   (forward: acc = yT (HoWo, O), mat = wT)
        not into_outputs:  acc[r] += v * mat[q]   (weight gradient: acc = dwT (Ckk, O),
                                                   mat = dyT (HoWo, O))
    """
    C, H, W = x.shape
    O = acc.shape[1]
    for c in range(C):
        for iy in range(H):
            for ix in range(W):
                v = x[c, iy, ix]
                if v == 0:
                    continue
                for ky in range(kh):
                    t = iy + pad - ky
                    if t < 0 or t % stride != 0 or t // stride >= Ho:
                        continue
                    oy = t // stride
                    for kx in range(kw):
                        u = ix + pad - kx
                        if u < 0 or u % stride != 0 or u // stride >= Wo:
                            continue
                        q = oy * Wo + u // stride
                        r = (c * kh + ky) * kw + kx
                        dst = acc[q] if into_outputs else acc[r]
                        src = mat[r] if into_outputs else mat[q]
                        for o in range(O):
                            dst[o] += v * src[o]


@njit
def conv2d_forward(y, n_sparse, x, w2, wT, kh, kw, stride, pad, sparse_below, cols, yT,
                   tid, P):
    """y (N, O, Ho*Wo) <- conv of x (N, C, H, W) for images tid, tid + P, ... (worker tid of
    P); w2 (O, Ckk), wT = w2.T contiguous. Scratch of this worker: cols[tid] (Ckk, Ho*Wo),
    yT[tid] (Ho*Wo, O). Images whose nonzero fraction is below ``sparse_below`` take the
    event path; n_sparse[tid] <- how many did."""
    cbuf, ybuf = cols[tid], yT[tid]
    O, HW = y.shape[1], y.shape[2]
    Ho = out_size(x.shape[2], kh, stride, pad)
    Wo = out_size(x.shape[3], kw, stride, pad)
    count = 0
    for n in range(tid, x.shape[0], P):
        if _nonzero_fraction(x[n]) < sparse_below:
            fill(ybuf, 0)
            _scatter(ybuf, x[n], wT, kh, kw, stride, pad, Ho, Wo, True)
            for o in range(O):
                yr = y[n, o]
                for p in range(HW):
                    yr[p] = ybuf[p, o]
            count += 1
        else:
            im2col(cbuf, x[n], kh, kw, stride, pad, Ho, Wo)
            np.dot(w2, cbuf, y[n])
    n_sparse[tid] = count


@njit
def conv2d_backward(dx, dwT, dy, x, w2, wT, kh, kw, stride, pad, sparse_below, need_dx,
                    need_dw, cols, dyT, tmp, tid, P):
    """Gradients of y = conv(x, w) given dy (N, O, Ho, Wo), images tid, tid + P, ...

    dx (N, C, H, W) <- input gradient (if need_dx; fully overwritten);
    dwT[tid] (Ckk, O) += this worker's share of the weight gradient (if need_dw).
    Scratch of this worker: cols[tid] (Ckk, Ho*Wo), dyT[tid] (Ho*Wo, O), tmp[tid] (Ckk, O).
    (The Winograd input gradient is a separate kernel, :func:`.winograd.input_grad`.)
    """
    acc, cbuf, gbuf, tbuf = dwT[tid], cols[tid], dyT[tid], tmp[tid]
    O = dy.shape[1]
    HW = dy.shape[2] * dy.shape[3]
    Ckk = w2.shape[1]
    Ho, Wo = dy.shape[2], dy.shape[3]
    for n in range(tid, x.shape[0], P):
        if need_dw:
            d = dy[n].reshape(O, HW)
            if _nonzero_fraction(x[n]) < sparse_below:
                for o in range(O):
                    dr = d[o]
                    for p in range(HW):
                        gbuf[p, o] = dr[p]
                _scatter(acc, x[n], gbuf, kh, kw, stride, pad, Ho, Wo, False)
            else:
                im2col(cbuf, x[n], kh, kw, stride, pad, Ho, Wo)
                np.dot(cbuf, d.T, tbuf)
                for r in range(Ckk):
                    ar, tr = acc[r], tbuf[r]
                    for o in range(O):
                        ar[o] += tr[o]
        if need_dx:
            np.dot(wT, dy[n].reshape(O, HW), cbuf)
            fill(dx[n], 0)
            col2im(dx[n], cbuf, kh, kw, stride, pad, Ho, Wo)
