"""2-D convolution (PyTorch cross-correlation, zero padding), forward and backward.

Layout is NCHW throughout; the weight is ``w2 = weight.reshape(O, C*kh*kw)`` with rows in
(c, ky, kx) order, so each image is one GEMM that writes its output in place:

    y[n] (O, Ho*Wo) = w2 (O, Ckk) @ cols[n] (Ckk, Ho*Wo)

Each worker owns whole images (worker tid of P takes images tid, tid + P, ...), its own
scratch buffers and its own weight-gradient accumulator (summed by the caller), with BLAS
single-threaded inside. An image whose input is mostly zeros (spikes) skips the GEMM and
takes the event path of :mod:`.conv_event` (forward, and the weight gradient of stride-1
convolutions). The choice is made per image from the nonzero count, which the event lists
give for free.
"""
import numpy as np

from .._config import njit, njit_inline
from .conv_event import OB, channel_events, forward_image, weight_grad_image
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


@njit_inline
def _forward(y, nz, x, w2, wt, kh, kw, stride, pad, sparse_below, defer, cols, cnt, idx, val,
             ptr, key, kval, yrow, width, tid, P):
    """y (N, O, Ho*Wo) <- conv of x (N, C, H, W) for images tid, tid + P, ... (worker tid of
    P); w2 (O, Ckk) with rows in (c, ky, kx) order, wt (kh*kw*C, O') the same weights with
    rows in (ky, kx, c) order and O' >= O columns, zero past O (whole register blocks of
    ``width`` channels, a constant: see :func:`.conv_event.block_width`).
    Images whose nonzero fraction is below ``sparse_below`` take the event path, the others
    im2col + GEMM, or, with ``defer``, are left to the caller (for Winograd); nz[n] (N,) <-
    the nonzero count of the event images, -1 for the others.

    Scratch of this worker: cols[tid] (Ckk, Ho*Wo); for the event path (see
    :func:`.conv_event.forward_image`) cnt[tid] (C,), idx[tid] and val[tid] (C, H*W),
    ptr[tid] ((H + 2 pad) * (W + 2 pad) + 1,), key[tid] and kval[tid] (C*H*W,), yrow[tid]
    (Wo, width)."""
    N, C, H, W = x.shape
    Ho = out_size(H, kh, stride, pad)
    Wo = out_size(W, kw, stride, pad)
    Wp = W + 2 * pad
    limit = sparse_below * (C * H * W)
    for n in range(tid, N, P):
        xn = x[n].reshape(C, H * W)
        k = -1  # the nonzero count, or -1: dense
        if sparse_below > 0:
            k = channel_events(cnt[tid], idx[tid], val[tid], xn, W, Wp, pad * Wp + pad, limit)
        if k == 0:  # silent input (common at initialisation, in eval mode)
            fill(y[n], 0)
            nz[n] = 0
        elif 0 < k < limit:
            forward_image(y[n], cnt[tid], idx[tid], val[tid], wt, kh, kw, stride, Wp, ptr[tid],
                          key[tid], kval[tid], yrow[tid], width)
            nz[n] = k
        else:
            nz[n] = -1
            if not defer:
                im2col(cols[tid], x[n], kh, kw, stride, pad, Ho, Wo)
                np.dot(w2, cols[tid], y[n])


@njit_inline
def _backward(dx, dwT, nz, dy, x, w2, wT, kh, kw, stride, pad, sparse_below, need_dx, need_dw,
              cols, tmp, cnt, idx, val, dyp, width, tid, P):
    """Gradients of y = conv(x, w) given dy (N, O, Ho, Wo), images tid, tid + P, ...

    dx (N, C, H, W) <- input gradient (if need_dx; fully overwritten);
    dwT[tid] (Ckk, O) += this worker's share of the weight gradient (if need_dw), by the
    event path for images of a stride-1 convolution whose nonzero fraction is below
    ``sparse_below``, else by im2col + GEMM (nz[n] <- the nonzero count of the event
    images, -1 for the others).
    Scratch of this worker: cols[tid] (Ckk, Ho*Wo), tmp[tid] (Ckk, O); for the event path
    cnt[tid] (C,), idx[tid] and val[tid] (C, H*W), and dyp[tid] ((Ho + 2(kh - 1)) *
    (Wo + 2(kw - 1)), O rounded up to whole register blocks of ``width``) with a zero
    border and zero padding channels (see :func:`.conv_event.weight_grad_image`).
    (The Winograd passes are separate kernels, :mod:`.winograd`.)
    """
    acc, cbuf, tbuf = dwT[tid], cols[tid], tmp[tid]
    N, C, H, W = x.shape
    O = dy.shape[1]
    Ho, Wo = dy.shape[2], dy.shape[3]
    HW = Ho * Wo
    Ckk = w2.shape[1]
    limit = sparse_below * (C * H * W) if stride == 1 else 0.0
    Wq = Wo + 2 * (kw - 1)
    for n in range(tid, N, P):
        if need_dw:
            d = dy[n].reshape(O, HW)
            k = -1
            if limit > 0:
                k = channel_events(cnt[tid], idx[tid], val[tid], x[n].reshape(C, H * W), W,
                                   Wq, (pad + kh - 1) * Wq + pad + kw - 1, limit)
            if 0 <= k < limit:
                if k > 0:
                    weight_grad_image(acc, cnt[tid], idx[tid], val[tid], d, kh, kw, Wo,
                                      dyp[tid], width)
                nz[n] = k
            else:
                nz[n] = -1
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


# The drivers, one per register-block width (a compile-time constant of the event kernels;
# each is compiled on first use): OB wide, and 16 wide for layers of up to 16 channels.

@njit
def conv2d_forward(y, nz, x, w2, wt, kh, kw, stride, pad, sparse_below, defer, cols, cnt, idx,
                   val, ptr, key, kval, yrow, tid, P):
    """:func:`_forward` with blocks of OB output channels."""
    _forward(y, nz, x, w2, wt, kh, kw, stride, pad, sparse_below, defer, cols, cnt, idx, val,
             ptr, key, kval, yrow, OB, tid, P)


@njit
def conv2d_forward_narrow(y, nz, x, w2, wt, kh, kw, stride, pad, sparse_below, defer, cols,
                          cnt, idx, val, ptr, key, kval, yrow, tid, P):
    """:func:`_forward` with blocks of 16 output channels."""
    _forward(y, nz, x, w2, wt, kh, kw, stride, pad, sparse_below, defer, cols, cnt, idx, val,
             ptr, key, kval, yrow, 16, tid, P)


@njit
def conv2d_backward(dx, dwT, nz, dy, x, w2, wT, kh, kw, stride, pad, sparse_below, need_dx,
                    need_dw, cols, tmp, cnt, idx, val, dyp, tid, P):
    """:func:`_backward` with blocks of OB output channels."""
    _backward(dx, dwT, nz, dy, x, w2, wT, kh, kw, stride, pad, sparse_below, need_dx, need_dw,
              cols, tmp, cnt, idx, val, dyp, OB, tid, P)


@njit
def conv2d_backward_narrow(dx, dwT, nz, dy, x, w2, wT, kh, kw, stride, pad, sparse_below,
                           need_dx, need_dw, cols, tmp, cnt, idx, val, dyp, tid, P):
    """:func:`_backward` with blocks of 16 output channels."""
    _backward(dx, dwT, nz, dy, x, w2, wT, kh, kw, stride, pad, sparse_below, need_dx, need_dw,
              cols, tmp, cnt, idx, val, dyp, 16, tid, P)
