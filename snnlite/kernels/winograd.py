"""3x3 stride-1 padding-1 convolutions by Winograd F(2x2, 3x3): forward and input gradient.

Both are a 3x3 "same" correlation of an input (Cin, H, W) into an output (Cout, H, W)
(:func:`correlate`). Winograd's minimal filtering (Lavin & Gray, 2016) computes each 2x2
output tile from a 4x4 input tile with 16 multiplications instead of 36, so the GEMM work
falls 2.25x:

    out tile = A^T [ sum_cin U[:, cout, cin] * (B^T d B)[cin] ] A

U = G g G^T holds the kernel (:func:`weight_transform_forward`), or, for the input
gradient, which correlates dy with it, the kernel rotated by 180 degrees and transposed
(C <- O, :func:`weight_transform`). In matrix form, for each of the 16 tile positions k:
M[k] (Cout, tiles) = U[k] (Cout, Cin) @ V[k] (Cin, tiles). Tiles of several images are laid
side by side (a group) when the maps are small, or when BLAS would otherwise take its
unpacked small-matrix path (see :func:`snnlite._blas.small_gemm_limit`); each row of tiles
carries one unused column so that every transform is a flat, vectorisable loop. H and W
must be even (the caller falls back to im2col otherwise). Rounding differs from the
direct sum by a few ulps (the transforms only add, subtract and halve).

    B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
          [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
          [0 -1  1  0]        [1/2 -1/2  1/2]
          [0  1  0 -1]        [ 0    0    1 ]
"""
import numpy as np

from .._config import njit, njit_inline, njit_part


@njit
def _layout(Cin, Cout, H, W, group):
    """(tile columns per image n, length of a parity plane, floats of scratch per worker)
    for :func:`correlate` with ``group`` images per GEMM. Scratch holds V and M, then P, S,
    Ub and Y."""
    W1 = W // 2 + 1
    n = (H // 2) * W1
    plane = (H // 2 + 1) * W1 + 1
    return n, plane, 16 * (Cin + Cout) * group * n + 4 * plane + 8 * (n + 1) + 12 * n


def group_size(Cin, Cout, H, W, min_mnk=0):
    """Images per GEMM group: one, or a few when the map is tiny, so that a GEMM is at
    least 64 tile columns wide (measured on AVX2 OpenBLAS, 8x8 maps: 128 channels 1.45x,
    64 channels 1.13x faster at 3 images than at 1; 16x16 maps gain nothing from 2, and
    wider groups lose more to cache misses than they gain), and at least enough that each
    GEMM's M*N*K exceeds ``min_mnk`` (BLAS libraries that switch to an unpacked kernel for
    small products run those far below peak)."""
    n = (H // 2) * (W // 2 + 1)
    g = max(1, 64 // n)
    while min_mnk and Cin * Cout * g * n <= min_mnk:
        g += 1
    return g


def scratch_size(Cin, Cout, H, W, group):
    """Floats of scratch :func:`correlate` needs per worker."""
    return _layout(Cin, Cout, H, W, group)[2]


def worth(Cin, Cout):
    """Whether Winograd beats im2col for the forward pass: its 16 GEMMs per tile position
    sum over the input channels only (measured: 3 of them, an image layer, run 2x slower
    than im2col)."""
    return min(Cin, Cout) >= 16


def usable(kh, kw, stride, pad, H, W):
    """Whether the Winograd input gradient applies to this convolution."""
    return kh == kw == 3 and stride == 1 and pad == 1 and H % 2 == 0 and W % 2 == 0


@njit_inline
def _kernel_tile(u, w, o, c, rot, gg):
    """u (16,) <- G g G^T for g = w[o, c] (3, 3), rotated by 180 degrees if ``rot``;
    gg (4, 3) scratch."""
    half = w.dtype.type(0.5)
    for b in range(3):  # G @ g, column b
        if rot:  # g[a, b] = w[o, c, 2 - a, 2 - b]
            g0, g1, g2 = w[o, c, 2, 2 - b], w[o, c, 1, 2 - b], w[o, c, 0, 2 - b]
        else:
            g0, g1, g2 = w[o, c, 0, b], w[o, c, 1, b], w[o, c, 2, b]
        gg[0, b] = g0
        gg[1, b] = (g0 + g1 + g2) * half
        gg[2, b] = (g0 - g1 + g2) * half
        gg[3, b] = g2
    for a in range(4):  # (G g) @ G^T, row a
        g0, g1, g2 = gg[a, 0], gg[a, 1], gg[a, 2]
        u[4 * a] = g0
        u[4 * a + 1] = (g0 + g1 + g2) * half
        u[4 * a + 2] = (g0 - g1 + g2) * half
        u[4 * a + 3] = g2


@njit
def weight_transform(U, w):
    """U (16, C, O) <- G g G^T for g = w[o, c] rotated by 180 degrees; w (O, C, 3, 3)."""
    gg = np.empty((4, 3), w.dtype)
    for o in range(w.shape[0]):
        for c in range(w.shape[1]):
            _kernel_tile(U[:, c, o], w, o, c, True, gg)


@njit_part
def input_transform(V, col0, dy, P, S):
    """V[:, o, col0:col0 + n] <- B^T d B for the 4x4 tiles d of every plane o of dy
    (O, H, W) zero-padded by 1; tile (i, j) covers padded rows 2i..2i+3 and columns
    2j..2j+3 and lands in column i * W1 + j (W1 = W/2 + 1: one unused column per tile row
    keeps every loop below a flat unit-stride loop, so they all vectorise).

    Scratch: P (4, (H/2 + 1) * W1 + 1) zeroed by the caller (only the data positions are
    written here), S (8, n + 1) with n = H/2 * W1.
    """
    O, H, W = dy.shape
    th, tw = H // 2, W // 2
    W1 = tw + 1
    n = th * W1
    for o in range(O):
        # split the padded plane by row and column parity: P[2 rp + cp, i W1 + j] =
        # padded[2i + rp, 2j + cp] = dy[o, 2i + rp - 1, 2j + cp - 1]
        for y in range(H):
            rp, i = (y + 1) % 2, (y + 1) // 2
            row = dy[o, y]
            ev = P[2 * rp, i * W1 + 1:i * W1 + W1]  # padded columns 2, 4, .., W
            od = P[2 * rp + 1, i * W1:i * W1 + tw]  # padded columns 1, 3, .., W - 1
            for j in range(tw):
                ev[j] = row[2 * j + 1]
            for j in range(tw):
                od[j] = row[2 * j]
        for cp in range(2):  # B^T on the rows: padded rows 2i .. 2i+3 are P0[i], P1[i],
            p0, p1 = P[cp], P[2 + cp]  # P0[i + 1], P1[i + 1]
            q0, q1 = p0[W1:], p1[W1:]
            s0, s1, s2, s3 = S[cp], S[2 + cp], S[4 + cp], S[6 + cp]
            for t in range(n + 1):
                s0[t] = p0[t] - q0[t]
                s1[t] = p1[t] + q0[t]
                s2[t] = q0[t] - p1[t]
                s3[t] = p1[t] - q1[t]
        for a in range(4):  # ... and B on the columns: 2j, 2j+1, 2j+2, 2j+3
            e, od = S[2 * a], S[2 * a + 1]
            e1, o1 = e[1:], od[1:]
            v0 = V[4 * a, o, col0:col0 + n]
            v1 = V[4 * a + 1, o, col0:col0 + n]
            v2 = V[4 * a + 2, o, col0:col0 + n]
            v3 = V[4 * a + 3, o, col0:col0 + n]
            for t in range(n):
                v0[t] = e[t] - e1[t]
                v1[t] = od[t] + e1[t]
                v2[t] = e1[t] - od[t]
                v3[t] = od[t] - o1[t]


@njit_part
def output_transform(dx, M, col0, Ub, Y):
    """dx (C, H, W) <- A^T m A for every 2x2 output tile, m = M[:, c, col0 + tile], tiles
    laid out as in :func:`input_transform`. Scratch: Ub (8, n), Y (4, n)."""
    C, H, W = dx.shape
    th, tw = H // 2, W // 2
    W1 = tw + 1
    n = th * W1
    for c in range(C):
        for a in range(4):  # A^T on the columns of row a of m
            m0 = M[4 * a, c, col0:col0 + n]
            m1 = M[4 * a + 1, c, col0:col0 + n]
            m2 = M[4 * a + 2, c, col0:col0 + n]
            m3 = M[4 * a + 3, c, col0:col0 + n]
            ue, uo = Ub[2 * a], Ub[2 * a + 1]
            for t in range(n):
                ue[t] = m0[t] + m1[t] + m2[t]
                uo[t] = m1[t] - m2[t] - m3[t]
        for cp in range(2):  # ... and on the rows: Y[2 rp + cp] = output (2i + rp, 2j + cp)
            u0, u1, u2, u3 = Ub[cp], Ub[2 + cp], Ub[4 + cp], Ub[6 + cp]
            y0, y1 = Y[cp], Y[2 + cp]
            for t in range(n):
                y0[t] = u0[t] + u1[t] + u2[t]
                y1[t] = u1[t] - u2[t] - u3[t]
        for i in range(th):
            for rp in range(2):
                row = dx[c, 2 * i + rp]
                ye = Y[2 * rp, i * W1:i * W1 + tw]
                yo = Y[2 * rp + 1, i * W1:i * W1 + tw]
                for j in range(tw):
                    row[2 * j] = ye[j]
                    row[2 * j + 1] = yo[j]


@njit
def weight_transform_forward(U, w):
    """U (16, O, C) <- G g G^T for g = w[o, c]; w (O, C, 3, 3)."""
    gg = np.empty((4, 3), w.dtype)
    for o in range(w.shape[0]):
        for c in range(w.shape[1]):
            _kernel_tile(U[:, o, c], w, o, c, False, gg)


@njit_part
def _views(buf, Cin, Cout, H, W, group):
    """Scratch views of one worker: P (4, plane), S (8, n + 1), Ub (8, n), Y (4, n); V and
    M are taken from the front of buf per group."""
    n, plane, _ = _layout(Cin, Cout, H, W, group)
    k = 16 * (Cin + Cout) * group * n
    P = buf[k:k + 4 * plane].reshape(4, plane)
    k += 4 * plane
    S = buf[k:k + 8 * (n + 1)].reshape(8, n + 1)
    k += 8 * (n + 1)
    Ub = buf[k:k + 8 * n].reshape(8, n)
    k += 8 * n
    Y = buf[k:k + 4 * n].reshape(4, n)
    return n, P, S, Ub, Y


@njit
def correlate(out, inp, U, images, scratch, group, tid, P):
    """out[n] (Cout, H, W) <- 3x3 "same" correlation of inp[n] (Cin, H, W) with the
    transformed kernel U (16, Cout, Cin), for the images n = images[tid], images[tid + P],
    ... (worker tid of P), ``group`` images side by side per set of GEMMs.

    The forward pass is correlate(y, x, U) with U from :func:`weight_transform_forward`;
    the input gradient correlate(dx, dy, U) with U from :func:`weight_transform`.
    scratch[tid]: flat, of ``scratch_size(Cin, Cout, H, W, group)`` floats or more, contents
    undefined. (One function rather than a loop around a per-group call: numba
    re-optimises every callee inside its caller, so each extra level costs compile time.)
    """
    Cout, Cin = U.shape[1], U.shape[2]
    H, W = inp.shape[2], inp.shape[3]
    n, P_, S, Ub, Y = _views(scratch[tid], Cin, Cout, H, W, group)
    buf = scratch[tid]
    P_[:, :] = 0  # the padding; input_transform writes only the data positions
    mine = images[tid::P]
    for g0 in range(0, mine.shape[0], group):
        ims = mine[g0:g0 + group]
        ncols = ims.shape[0] * n
        V = buf[:16 * Cin * ncols].reshape(16, Cin, ncols)
        M = buf[16 * Cin * ncols:16 * (Cin + Cout) * ncols].reshape(16, Cout, ncols)
        for g in range(ims.shape[0]):
            input_transform(V, g * n, inp[ims[g]], P_, S)
        for t in range(16):
            np.dot(U[t], V[t], M[t])
        for g in range(ims.shape[0]):
            output_transform(out[ims[g]], M, g * n, Ub, Y)
