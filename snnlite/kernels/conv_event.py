"""Event-driven 2-D convolution of mostly-zero inputs (spikes): forward and weight gradient.

At 5-20% nonzero inputs both passes are bound by how fast weight (forward) or output-gradient
(weight gradient) rows stream from cache, not by arithmetic, so the kernels are written to
move each row once per use and to keep the sums in registers:

* Weights are channel-last, ``wt (kh*kw*C, O)`` with rows in (ky, kx, c) order, so one input
  event at one kernel tap reads one contiguous row of O floats.
* A block of output channels (:data:`OB` or fewer) is summed in a stack array that LLVM
  keeps in vector registers for the whole inner loop (a heap array could alias the rows it
  reads).
* The input is zero-padded implicitly: events are indexed on the padded grid, so no border
  test sits in an inner loop. Forward events are sorted by padded pixel (CSR); since a
  pixel's row of kw neighbours is contiguous in that order, and the weight row of an event
  at padded column pc and channel c for output column ox is ``(ky*kw + pc - ox*stride)*C +
  c``, each output reads kh contiguous runs of events whose row index is ``key + const``
  with ``key = pc*C + c``.
* The weight gradient reads the output gradient channel-last on a grid padded by k - 1,
  whose border stays zero, so every (event, tap) pair reads a valid row.

Arrays of one image: x (C, H*W); the per-channel event lists of :func:`channel_events` feed
both passes. Output y (O, Ho*Wo) as the rest of the engine (NCHW).
"""
import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import VECTOR_BITS, njit

OB = 128 if VECTOR_BITS >= 512 else 64
"""Widest block of output channels summed in registers: 8 vector registers of float32.
Layers with few output channels use a narrower block (:func:`block_width`), a literal the
kernels are compiled for (one specialisation per width in use)."""


def block_width(O):
    """Register block for O output channels: 16 for up to 16 (the narrow stages of
    wide-ResNets), else OB (padding O up to it: fewer specialisations to compile)."""
    return 16 if O <= 16 else OB

NONNEG = 0x7FFFFFFF
"""``i & NONNEG`` is i for every index here (all below 2^31), and shows LLVM that it is not
negative: numba then drops its wrap-around test for negative indices, which costs a
compare and select per access and keeps loops that index by a running count or a
computed row from vectorising (measured: the event scan runs twice as fast)."""

SHORT = 24
"""Channels with fewer events than this take their weight gradient event by event (each
register-blocked sum would be too short to repay its set-up)."""


@intrinsic
def _alloca(typingctx, n, like):
    """Pointer to ``n`` (a literal) uninitialised elements of ``like``'s dtype on the stack."""
    if not isinstance(n, types.IntegerLiteral) or not isinstance(like, types.Array):
        return None
    size, dtype = n.literal_value, like.dtype

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_value_type(dtype), size=size)
    return types.CPointer(dtype)(n, like), codegen


@njit
def _block(like, width):
    """(width,) scratch of like's dtype that the optimiser may hold in registers; width a
    literal."""
    return numba.carray(_alloca(width, like), (width,))


@njit
def channel_events(cnt, idx, val, x, W, Wg, off, limit):
    """Nonzeros of each channel of one image x (C, H*W): idx[c, :cnt[c]] their positions on a
    grid of width Wg whose pixel (0, 0) sits at index ``off`` (position (iy, ix) ->
    off + iy*Wg + ix), val[c, :cnt[c]] their values. Returns the total count, or a count
    >= ``limit`` as soon as one is reached (the lists are then incomplete: a dense image
    costs a channel or two, not a full pass).

    Branch-free compaction: every element is written at the next free slot, which only
    advances past a nonzero, so the cost does not depend on the spike pattern."""
    C, HW = x.shape
    total = 0
    for c in range(C):
        if total >= limit:
            return total
        row, ic, vc = x[c], idx[c], val[c]
        k = 0
        for iy in range(HW // W):
            r = row[iy * W:(iy + 1) * W]
            base = off + iy * Wg
            for ix in range(W):
                v = r[ix]
                ic[k & NONNEG] = base + ix
                vc[k & NONNEG] = v
                k += v != 0
        cnt[c] = k
        total += k
    return total


@njit
def pixel_csr(ptr, key, kval, cnt, idx, val, Wp):
    """Sort the events by padded pixel: those of pixel pp are key[ptr[pp]:ptr[pp + 1]] with
    key = (pp % Wp) * C + c and values kval. ptr (NP + 1,) with NP the padded pixel count."""
    C = cnt.shape[0]
    NP = ptr.shape[0] - 1
    for p in range(NP + 1):
        ptr[p] = 0
    for c in range(C):
        ic = idx[c]
        for k in range(cnt[c]):
            ptr[(ic[k] + 1) & NONNEG] += 1
    for p in range(NP):
        ptr[p + 1] += ptr[p]
    for c in range(C):
        ic, vc = idx[c], val[c]
        for k in range(cnt[c]):
            pp = ic[k] & NONNEG
            j = ptr[pp] & NONNEG
            key[j] = (pp % Wp) * C + c
            kval[j] = vc[k]
            ptr[pp] = j + 1
    for p in range(NP, 0, -1):  # ptr[pp] now holds the end of pixel pp: shift back
        ptr[p] = ptr[p - 1]
    ptr[0] = 0


@njit
def row_sums(yrow, oy, ob, ptr, key, kval, wt, C, kh, kw, stride, Wp, width):
    """yrow (Wo, width) <- the sums of output row oy, channels ob .. ob + width - 1, from
    the events sorted by :func:`pixel_csr` (see :func:`forward_image`)."""
    acc = _block(yrow, width)
    for ox in range(yrow.shape[0]):
        for o in range(width):
            acc[o] = 0
        for ky in range(kh):
            a = (oy * stride + ky) * Wp + ox * stride
            base = (ky * kw - ox * stride) * C
            for j in range(ptr[a], ptr[a + kw]):
                v = kval[j & NONNEG]
                wr = wt[(key[j & NONNEG] + base) & NONNEG, ob:ob + width]
                for o in range(width):
                    acc[o] += v * wr[o]
        out = yrow[ox]
        for o in range(width):
            out[o] = acc[o]


@njit
def forward_image(y, cnt, idx, val, wt, kh, kw, stride, Wp, ptr, key, kval, yrow, width):
    """y (O, Ho*Wo) <- convolution of one image from its channel events (``channel_events``
    on the input grid padded by ``pad``: Wg = Wp = W + 2 pad, off = pad*Wp + pad); wt
    (kh*kw*C, O') with O' >= O a multiple of the block ``width`` (a literal), zero past O.
    Scratch: ptr ((H + 2 pad) * Wp + 1,), key and kval (C*H*W,), yrow (Wo, width)."""
    O = y.shape[0]
    C = cnt.shape[0]
    Wo = yrow.shape[0]
    Ho = y.shape[1] // Wo
    pixel_csr(ptr, key, kval, cnt, idx, val, Wp)
    for ob in range(0, O, width):  # outermost: only this block's weight columns stay in cache
        nb = min(width, O - ob)
        for oy in range(Ho):
            row_sums(yrow, oy, ob, ptr, key, kval, wt, C, kh, kw, stride, Wp, width)
            for o in range(nb):  # (Wo, nb) -> y[ob:ob + nb, oy]
                yr = y[ob + o, oy * Wo:(oy + 1) * Wo]
                for ox in range(Wo):
                    yr[ox] = yrow[ox, o]


@njit
def weight_grad_image(dw2, cnt, idx, val, dy, kh, kw, Wo, dyp, width):
    """dw2 (C*kh*kw, O) += weight gradient of one image of a stride-1 convolution (rows in
    (c, ky, kx) order), from its channel events on the output-gradient grid
    (``channel_events`` with Wg = Wq = Wo + 2(kw - 1), off = (pad + kh - 1) * Wq + pad + kw
    - 1) and dy (O, Ho*Wo).

    dyp ((Ho + 2(kh - 1)) * Wq, O') with O' >= O a multiple of the block ``width`` (a
    literal): dy channel-last on the
    grid padded by k - 1; its border and its columns past O must be zero on entry (they are
    never written here), the rest is overwritten."""
    O = dy.shape[0]
    C = cnt.shape[0]
    Wq = Wo + 2 * (kw - 1)
    Ho = dy.shape[1] // Wo
    for oy in range(Ho):  # dy (O, Ho*Wo) -> interior of dyp
        r0 = (oy + kh - 1) * Wq + kw - 1
        for o in range(O):
            src = dy[o, oy * Wo:(oy + 1) * Wo]
            for ox in range(Wo):
                dyp[(r0 + ox) & NONNEG, o] = src[ox]
    acc = _block(dw2, width)
    for c in range(C):
        n = cnt[c]
        if n == 0:
            continue
        ic, vc = idx[c], val[c]
        if n < SHORT:  # a few events: add each into the channel's kh*kw rows, in cache
            for k in range(n):
                v, e = vc[k], ic[k]
                for ky in range(kh):
                    for kx in range(kw):
                        drow = dw2[(c * kh + ky) * kw + kx]
                        gr = dyp[(e - ky * Wq - kx) & NONNEG]
                        for o in range(O):
                            drow[o] += v * gr[o]
            continue
        for ky in range(kh):
            for kx in range(kw):
                shift = ky * Wq + kx
                drow = dw2[(c * kh + ky) * kw + kx]
                for ob in range(0, O, width):
                    nb = min(width, O - ob)
                    for o in range(width):
                        acc[o] = 0
                    for k in range(n):
                        v = vc[k]
                        gr = dyp[(ic[k] - shift) & NONNEG, ob:ob + width]
                        for o in range(width):
                            acc[o] += v * gr[o]
                    for o in range(nb):
                        drow[ob + o] += acc[o]

