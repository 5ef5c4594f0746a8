"""A deterministic, resumable mini-batch loader over an :class:`~snnlite.data.ArrayDataset`.

Randomness is a pure function of ``(seed, epoch, batch index)``, so a run interrupted at a
batch boundary resumes with exactly the batches it would have seen.
"""
from __future__ import annotations

import functools

import numpy as np

from ._checks import check_int
from .datasets import ArrayDataset
from .prefetch import EpochIterator
from .transforms import crop_flip_params, random_crop_flip


class Loader:
    """Mini-batches of an :class:`ArrayDataset`, deterministic per (seed, epoch, batch).

    Yields ``(x, y)``: x float32 C-contiguous [B, 3, H, W] in [0, 1], y int64 [B].

    The order of epoch ``e`` is ``np.random.default_rng([seed, e]).permutation(N)`` (the
    identity if not ``shuffle``); the augmentation of its batch ``i`` (random crop from
    ``pad``-pixel zero padding, horizontal flip with p=0.5) draws from
    ``np.random.default_rng([seed, e, i])``. Hence ``loader.epoch(e, start=k)`` yields
    exactly batches k.. of the uninterrupted epoch. ``prefetch`` batches are prepared ahead
    in a background thread (0: prepared on demand in the caller's thread).
    """

    def __init__(self, dataset: ArrayDataset, batch_size: int, shuffle: bool = True,
                 augment: bool = True, seed: int = 0, drop_last: bool = True,
                 prefetch: int = 2, *, pad: int = 4):
        if not isinstance(dataset, ArrayDataset):
            raise TypeError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}")
        self.dataset = dataset
        self.batch_size = check_int(batch_size, "batch_size", 1)
        self.seed = check_int(seed, "seed", 0)
        self.prefetch = check_int(prefetch, "prefetch", 0)
        self.pad = check_int(pad, "pad", 0)
        self.shuffle, self.augment, self.drop_last = bool(shuffle), bool(augment), bool(drop_last)
        if self.drop_last and len(dataset) < self.batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the dataset size {len(dataset)} "
                             "with drop_last=True: an epoch would have no batches")
        self._epoch = 0

    def __len__(self) -> int:
        n, b = len(self.dataset), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def set_epoch(self, epoch: int) -> None:
        """Epoch that ``iter(loader)`` yields next (it is not advanced automatically)."""
        self._epoch = check_int(epoch, "epoch", 0)

    def __iter__(self) -> EpochIterator:
        return self.epoch(self._epoch)

    def permutation(self, epoch: int) -> np.ndarray:
        """Sample order of ``epoch``: int64 [N]."""
        epoch = check_int(epoch, "epoch", 0)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch`` on its own: ``(x [B, 3, H, W], y [B])``."""
        index = check_int(index, "index", 0)
        if index >= len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        return self._make_batch(self.permutation(epoch), epoch, index)

    def epoch(self, epoch: int, start: int = 0) -> EpochIterator:
        """Iterator over batches ``start, ..., len(self) - 1`` of ``epoch``."""
        start = check_int(start, "start", 0)
        if start > len(self):
            raise ValueError(f"start must be <= {len(self)} (batches per epoch), got {start}")
        produce = functools.partial(self._make_batch, self.permutation(epoch), epoch)
        return EpochIterator(produce, range(start, len(self)), self.prefetch)

    def _make_batch(self, perm: np.ndarray, epoch: int, index: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        rows = perm[index * self.batch_size:(index + 1) * self.batch_size]
        images = self.dataset.images[rows]
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, index])
            dy, dx, flip = crop_flip_params(rng, len(rows), self.pad)
            images = random_crop_flip(images, dy, dx, flip, self.pad)
        x = np.empty(images.shape, dtype=np.float32)
        np.divide(images, np.float32(255.0), out=x)
        return x, self.dataset.labels[rows]
