"""Labelled uint8 NCHW images held in memory, their channel statistics, and file readers.

Images are uint8 [N, 3, H, W]; labels int64 [N]. :func:`load_dataset` finds a converted
file with :func:`~snnlite.data.resolve.resolve_dataset` and reads both splits.
"""
from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from types import MappingProxyType

import h5py
import numpy as np

import data_tools

from ._checks import channel_vector, check_images
from .resolve import resolve_dataset

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

_STATS = MappingProxyType({
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
})


def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std in [0, 1] units of uint8 images [N, 3, H, W].

    Returns two float32 [3] arrays. Uses a 256-bin histogram per channel, so no float copy
    of the images is made.
    """
    images = check_images(images)
    if images.shape[0] == 0:
        raise ValueError("images is empty; cannot compute channel statistics")
    values = np.arange(256, dtype=np.float64) / 255.0
    mean, std = np.empty(3), np.empty(3)
    for c in range(3):
        hist = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
        n = hist.sum()
        mean[c] = hist @ values / n
        std[c] = np.sqrt(hist @ (values - mean[c]) ** 2 / n)
    return mean.astype(np.float32), std.astype(np.float32)


class ArrayDataset:
    """Labelled images in memory.

    Args:
        images: uint8 [N, 3, H, W] (NCHW, RGB).
        labels: integers [N]; stored as int64.
        label_names: class names; default ``"0", "1", ...``.
        mean, std: per-channel statistics in [0, 1] units for :func:`normalize`; default
            computed from ``images``.
    """

    def __init__(self, images: np.ndarray, labels, label_names: Sequence[str] | None = None,
                 mean=None, std=None):
        self.images = check_images(images)
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"labels must have shape ({images.shape[0]},) to match images, "
                             f"got {labels.shape}")
        if labels.size and labels.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
        if labels.size and labels.min() < 0:
            raise ValueError(f"labels must be >= 0, got minimum {labels.min()}")
        self.labels = labels.astype(np.int64)
        if label_names is None:
            top = int(self.labels.max()) + 1 if self.labels.size else 0
            label_names = [str(i) for i in range(top)]
        self.label_names = tuple(str(n) for n in label_names)
        if self.labels.size and self.labels.max() >= len(self.label_names):
            raise ValueError(f"labels reach {self.labels.max()} but only "
                             f"{len(self.label_names)} label_names are given")
        if mean is None or std is None:
            computed_mean, computed_std = channel_stats(images)
            mean = computed_mean if mean is None else mean
            # a constant channel has std 0: leave it unscaled rather than divide by zero
            std = np.where(computed_std > 0, computed_std, 1).astype(np.float32) \
                if std is None else std
        self.mean = channel_vector(mean, "mean")
        self.std = channel_vector(std, "std")
        if np.any(self.std <= 0):
            raise ValueError(f"std must be positive, got {self.std}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        """(uint8 image [3, H, W], label) of one sample."""
        return self.images[index], int(self.labels[index])

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    def __repr__(self) -> str:
        return (f"ArrayDataset({len(self)} images {tuple(self.images.shape[1:])}, "
                f"{self.num_classes} classes)")


def load_h5(path: str | os.PathLike, split: str = "train") -> ArrayDataset:
    """Read one split of a converted file (see :mod:`data_tools.hdf5`) fully into memory."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    info = data_tools.check_h5(path)
    with h5py.File(path, "r") as f:
        images = f[f"{split}/images"][()]
        labels = f[f"{split}/labels"][()]
        names = tuple(f["label_names"].asstr()[()])
    mean, std = _STATS.get(info.dataset, (None, None))
    return ArrayDataset(images, labels, names, mean, std)


_MINI_KEYS = ("x_train", "y_train", "x_test", "y_test")


_NPZ_SLACK = 64 * 2**20  # bytes a compressed .npz may inflate to beyond 16 x its size


def _read_npz(path, required, optional=()):
    """{key: array} of an .npz archive, every array's declared size checked against what
    the archive holds before it is read (a header alone cannot allocate gigabytes)."""
    size = os.path.getsize(path)
    inflate = 16 * size + _NPZ_SLACK
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n[:-4]: n for n in zf.namelist() if n.endswith(".npy")}
            missing = [k for k in required if k not in members]
            if missing:
                raise ValueError(f"{path}: missing array(s) {', '.join(missing)} (found: "
                                 f"{', '.join(members) or 'none'}); expected uint8 images "
                                 "x_train, x_test [N, H, W, 3] and integer labels y_train, "
                                 "y_test")
            for key in (*required, *(k for k in optional if k in members)):
                info = zf.getinfo(members[key])
                if info.compress_type != zipfile.ZIP_STORED:
                    inflate -= info.file_size
                if info.file_size > (size if info.compress_type == zipfile.ZIP_STORED
                                     else inflate + info.file_size):
                    raise ValueError(f"{path}: {key} declares {info.file_size} bytes, more "
                                     "than this archive can hold")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    shape, fortran, dtype = (np.lib.format.read_array_header_1_0(f)
                                             if version == (1, 0) else
                                             np.lib.format.read_array_header_2_0(f))
                    if dtype.hasobject:
                        raise ValueError(f"{path}: {key} holds Python objects")
                    nbytes = math.prod(shape) * dtype.itemsize
                    if nbytes > info.file_size:
                        raise ValueError(f"{path}: {key} declares {shape} {dtype} "
                                         f"({nbytes} bytes) but holds {info.file_size}")
                    data = f.read(nbytes)
                if len(data) != nbytes:
                    raise ValueError(f"{path}: {key} is truncated")
                a = np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
                out[key] = a
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError,
            zlib.error) as e:
        raise ValueError(f"{path}: not a readable .npz archive ({e})") from None
    except ValueError as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(str(path)) else
                         f"{path}: corrupt .npz archive ({msg})") from None
    return out


def load_mini(path: str | os.PathLike | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of ``cifar10-mini.npz`` (1000 / 500 images), converted to NCHW.

    ``path`` defaults to ``$SNNLITE_DATA/cifar10-mini.npz``. The file stores uint8 HWC
    images ``x_train``, ``x_test`` [N, H, W, 3], integer labels ``y_train``, ``y_test``
    [N] and optionally ``label_names``; the datasets hold the images as [N, 3, H, W].
    Anything else is a ValueError naming the file and what to change.
    """
    if path is None:
        env = os.environ.get("SNNLITE_DATA")
        if not env:
            raise FileNotFoundError("load_mini: no path given and $SNNLITE_DATA is not set")
        path = Path(env) / "cifar10-mini.npz"
    if not Path(path).is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    arrays = _read_npz(path, _MINI_KEYS, ("label_names",))
    try:
        names = tuple(str(n) for n in arrays["label_names"]) if "label_names" in arrays \
            else None
        out = []
        for split in ("train", "test"):
            x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
            if x.dtype != np.uint8:
                hint = " (floats in [0, 1]: store np.round(x * 255).astype(np.uint8))" \
                    if x.dtype.kind == "f" else ""
                raise ValueError(f"{path}: x_{split} must be uint8 images, got "
                                 f"{x.dtype}{hint}")
            if x.ndim != 4 or x.shape[-1] != 3:
                raise ValueError(f"{path}: x_{split} must be HWC [N, H, W, 3], got {x.shape}")
            if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
                raise ValueError(f"{path}: y_{split} must be {len(x)} integer labels, got "
                                 f"{y.dtype} {y.shape}")
            if len(x) == 0:
                raise ValueError(f"{path}: x_{split} holds no images")
            images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            out.append(ArrayDataset(images, y, names, CIFAR10_MEAN, CIFAR10_STD))
    except (TypeError, ValueError) as e:
        msg = str(e)
        raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
    return out[0], out[1]


def load_dataset(name: str = "cifar10", data: str | os.PathLike | None = None, *,
                 download: bool = True, cache_dir: str | os.PathLike | None = None
                 ) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of ``name``, located with :func:`resolve_dataset`; a ``.npz`` path
    ``data`` is read as the mini subset (:func:`load_mini`)."""
    if data is not None and Path(data).name.endswith(".npz"):
        return load_mini(data)
    path = resolve_dataset(name, data, download=download, cache_dir=cache_dir)
    return load_h5(path, "train"), load_h5(path, "test")
