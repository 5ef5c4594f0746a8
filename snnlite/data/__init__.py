"""Image datasets held in memory, a deterministic resumable batch loader, normalisation.

Images are uint8 NCHW [N, 3, H, W] in memory; the :class:`Loader` yields float32 batches
[B, 3, H, W] in [0, 1] (not normalised) and int64 labels [B]. Randomness is a pure function
of ``(seed, epoch, batch index)``, so a run interrupted at a batch boundary resumes with
exactly the batches it would have seen.

Dataset files are located by :func:`resolve_dataset` and converted by :mod:`data_tools`.

One concern per module: :mod:`~snnlite.data.datasets` (in-memory datasets, file readers),
:mod:`~snnlite.data.resolve` (where a dataset file is found), :mod:`~snnlite.data.transforms`
(crop/flip augmentation, normalisation), :mod:`~snnlite.data.loader` (the batch schedule),
:mod:`~snnlite.data.prefetch` (the epoch iterator and its background thread).
"""
from .datasets import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    ArrayDataset,
    channel_stats,
    load_dataset,
    load_h5,
    load_mini,
)
from .loader import Loader
from .prefetch import EpochIterator
from .resolve import resolve_dataset
from .transforms import crop_flip_params, normalize, random_crop_flip

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "CIFAR100_MEAN", "CIFAR100_STD", "ArrayDataset",
    "EpochIterator", "Loader", "channel_stats", "crop_flip_params", "load_dataset", "load_h5",
    "load_mini", "normalize", "random_crop_flip", "resolve_dataset",
]
