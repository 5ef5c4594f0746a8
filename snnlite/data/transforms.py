"""Batch transforms: random crop + horizontal flip augmentation, per-channel normalisation."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._checks import channel_vector


def crop_flip_params(rng: np.random.Generator, n: int, pad: int = 4
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random crop offsets and flips for ``n`` images.

    Returns ``(dy, dx, flip)``: int64 [n] offsets in ``0..2*pad`` of the crop's top-left
    corner in the zero-padded image (``pad`` means no shift) and bool [n] horizontal flips
    (probability 0.5). Draw order: both offset rows from one ``integers`` call, then flips.
    """
    offsets = rng.integers(0, 2 * pad + 1, size=(2, n))
    flip = rng.random(n) < 0.5
    return offsets[0], offsets[1], flip


def random_crop_flip(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, flip: np.ndarray,
                     pad: int = 4) -> np.ndarray:
    """Crop [H, W] windows from zero-padded images, then flip some horizontally.

    ``images`` [B, C, H, W] (any dtype); ``dy``, ``dx`` int [B] in ``0..2*pad``; ``flip``
    bool [B]. Image b of the result is ``pad(images[b])[:, dy[b]:dy[b]+H, dx[b]:dx[b]+W]``,
    reversed along W where ``flip[b]``. Returns a new C-contiguous array [B, C, H, W].
    """
    b, c, h, w = images.shape
    for name, arr in (("dy", dy), ("dx", dx), ("flip", flip)):
        if np.shape(arr) != (b,):
            raise ValueError(f"{name} must have shape ({b},), got {np.shape(arr)}")
    padded = np.zeros((b, c, h + 2 * pad, w + 2 * pad), dtype=images.dtype)
    padded[:, :, pad:pad + h, pad:pad + w] = images
    windows = sliding_window_view(padded, (h, w), axis=(2, 3))  # [B, C, 2p+1, 2p+1, H, W]
    out = windows[np.arange(b), :, dy, dx]                      # [B, C, H, W] copy
    out[flip] = out[flip, :, :, ::-1]
    return out


def normalize(x, mean, std) -> np.ndarray:
    """``(x - mean) / std`` per channel as float32; ``x`` floating [..., 3, H, W] in [0, 1]."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"x must be floating point in [0, 1], got dtype {x.dtype} "
                        "(divide uint8 images by 255 first)")
    if x.ndim < 3 or x.shape[-3] != 3:
        raise ValueError(f"x must have shape [..., 3, H, W], got {x.shape}")
    mean = channel_vector(mean, "mean")[:, None, None]
    std = channel_vector(std, "std")
    if np.any(std <= 0):
        raise ValueError(f"std must be positive, got {std}")
    return ((x.astype(np.float32, copy=False) - mean) / std[:, None, None]).astype(
        np.float32, copy=False)
