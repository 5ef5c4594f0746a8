"""Input gradient of a 3x3, stride-1, padding-1 convolution by Winograd F(2x2, 3x3).

The input gradient of such a convolution is itself a 3x3 "same" correlation of the output
gradient dy (O, H, W) with the kernel rotated by 180 degrees and transposed (C <- O).
Winograd's minimal filtering (Lavin & Gray, 2016) computes each 2x2 output tile from a 4x4
input tile with 16 multiplications instead of 36, so the GEMM work falls 2.25x:

    dx tile = A^T [ sum_o (G k G^T)[c, o] * (B^T d B)[o] ] A

with the transform matrices below. In matrix form, for each of the 16 tile positions k:
M[k] (C, tiles) = U[k] (C, O) @ V[k] (O, tiles). Tiles of several images are laid side by
side so that the GEMMs stay wide on small feature maps. H and W must be even (the caller
falls back to im2col otherwise). Rounding differs from the direct sum by a few ulps (the
transforms only add, subtract and halve).

    B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
          [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
          [0 -1  1  0]        [1/2 -1/2  1/2]
          [0  1  0 -1]        [ 0    0    1 ]
"""
import numpy as np

from .._config import njit


@njit
def winograd_group(H, W):
    """Images side by side per set of GEMMs: one, or a few when the map is tiny (measured:
    larger groups lose more to cache misses than they gain in GEMM width)."""
    return max(1, 32 // ((H // 2) * (W // 2)))


def usable(kh, kw, stride, pad, H, W):
    """Whether the Winograd input gradient applies to this convolution."""
    return kh == kw == 3 and stride == 1 and pad == 1 and H % 2 == 0 and W % 2 == 0


@njit
def weight_transform(U, w):
    """U (16, C, O) <- G g G^T for g = w[o, c] rotated by 180 degrees; w (O, C, 3, 3)."""
    O, C = w.shape[0], w.shape[1]
    half = w.dtype.type(0.5)
    gg = np.empty((4, 3), w.dtype)
    for o in range(O):
        for c in range(C):
            for b in range(3):  # G @ g, column b; g[a, b] = w[o, c, 2 - a, 2 - b]
                g0, g1, g2 = w[o, c, 2, 2 - b], w[o, c, 1, 2 - b], w[o, c, 0, 2 - b]
                gg[0, b] = g0
                gg[1, b] = (g0 + g1 + g2) * half
                gg[2, b] = (g0 - g1 + g2) * half
                gg[3, b] = g2
            for a in range(4):  # (G g) @ G^T, row a
                g0, g1, g2 = gg[a, 0], gg[a, 1], gg[a, 2]
                U[4 * a, c, o] = g0
                U[4 * a + 1, c, o] = (g0 + g1 + g2) * half
                U[4 * a + 2, c, o] = (g0 - g1 + g2) * half
                U[4 * a + 3, c, o] = g2


@njit
def input_transform(V, col0, dy, pad, s):
    """V[:, o, col0 + tile] <- B^T d B for every 4x4 tile d of dy (O, H, W) zero-padded by 1
    (tile (ti, tj) covers padded rows 2ti..2ti+3 and columns 2tj..2tj+3).

    Scratch: pad (H + 2, W + 2) with a zero border, s (4, W + 2).
    """
    O, H, W = dy.shape
    th, tw = H // 2, W // 2
    for o in range(O):
        for i in range(H):
            dst, src = pad[i + 1], dy[o, i]
            for j in range(W):
                dst[j + 1] = src[j]
        for ti in range(th):
            r0, r1, r2, r3 = pad[2 * ti], pad[2 * ti + 1], pad[2 * ti + 2], pad[2 * ti + 3]
            for q in range(W + 2):  # B^T on the rows
                s[0, q] = r0[q] - r2[q]
                s[1, q] = r1[q] + r2[q]
                s[2, q] = r2[q] - r1[q]
                s[3, q] = r1[q] - r3[q]
            base = col0 + ti * tw
            for a in range(4):  # ... and B on the columns
                sa = s[a]
                v0, v1, v2, v3 = V[4 * a, o], V[4 * a + 1, o], V[4 * a + 2, o], V[4 * a + 3, o]
                for tj in range(tw):
                    d0, d1, d2, d3 = sa[2 * tj], sa[2 * tj + 1], sa[2 * tj + 2], sa[2 * tj + 3]
                    v0[base + tj] = d0 - d2
                    v1[base + tj] = d1 + d2
                    v2[base + tj] = d2 - d1
                    v3[base + tj] = d1 - d3


@njit
def output_transform(dx, M, col0, u):
    """dx (C, H, W) <- A^T m A for every 2x2 output tile, m = M[:, c, col0 + tile].

    Scratch: u (8, W // 2).
    """
    C, H, W = dx.shape
    th, tw = H // 2, W // 2
    for c in range(C):
        for ti in range(th):
            base = col0 + ti * tw
            for a in range(4):  # A^T on the columns of row a of m
                m0, m1, m2, m3 = M[4 * a, c], M[4 * a + 1, c], M[4 * a + 2, c], M[4 * a + 3, c]
                ue, uo = u[2 * a], u[2 * a + 1]
                for tj in range(tw):
                    ue[tj] = m0[base + tj] + m1[base + tj] + m2[base + tj]
                    uo[tj] = m1[base + tj] - m2[base + tj] - m3[base + tj]
            y0, y1 = dx[c, 2 * ti], dx[c, 2 * ti + 1]
            for tj in range(tw):  # ... and on the rows
                y0[2 * tj] = u[0, tj] + u[2, tj] + u[4, tj]
                y0[2 * tj + 1] = u[1, tj] + u[3, tj] + u[5, tj]
                y1[2 * tj] = u[2, tj] - u[4, tj] - u[6, tj]
                y1[2 * tj + 1] = u[3, tj] - u[5, tj] - u[7, tj]


def scratch_size(C, O, H, W):
    """Floats of scratch :func:`conv3x3_input_grad` needs per worker."""
    cols = winograd_group(H, W) * (H // 2) * (W // 2)
    return 16 * (O + C) * cols + (H + 2) * (W + 2) + 4 * (W + 2) + 8 * (W // 2)


@njit
def conv3x3_input_grad(dx, dy, U, images, scratch):
    """dx[n] (C, H, W) <- input gradient for n in ``images`` (at most
    ``winograd_group(H, W)`` of them, laid side by side for the GEMMs).

    dy (N, O, H, W); U (16, C, O) from :func:`weight_transform`; scratch: flat, of
    ``scratch_size(C, O, H, W)`` floats or more, contents undefined.
    """
    C, O = U.shape[1], U.shape[2]
    H, W = dy.shape[2], dy.shape[3]
    nt = (H // 2) * (W // 2)
    ncols = images.shape[0] * nt
    k = 0
    V = scratch[k:k + 16 * O * ncols].reshape(16, O, ncols)
    k += 16 * O * ncols
    M = scratch[k:k + 16 * C * ncols].reshape(16, C, ncols)
    k += 16 * C * ncols
    pad = scratch[k:k + (H + 2) * (W + 2)].reshape(H + 2, W + 2)
    k += (H + 2) * (W + 2)
    s = scratch[k:k + 4 * (W + 2)].reshape(4, W + 2)
    k += 4 * (W + 2)
    u = scratch[k:k + 8 * (W // 2)].reshape(8, W // 2)
    pad[0, :] = 0  # the border; input_transform writes only the interior
    pad[H + 1, :] = 0
    pad[:, 0] = 0
    pad[:, W + 1] = 0
    for g in range(images.shape[0]):
        input_transform(V, g * nt, dy[images[g]], pad, s)
    for t in range(16):
        np.dot(U[t], V[t], M[t])
    for g in range(images.shape[0]):
        output_transform(dx[images[g]], M, g * nt, u)
