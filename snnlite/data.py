"""Image datasets held in memory, a deterministic resumable batch loader, normalisation.

Images are uint8 NCHW [N, 3, H, W] in memory; the :class:`Loader` yields float32 batches
[B, 3, H, W] in [0, 1] (not normalised) and int64 labels [B]. Randomness is a pure function
of ``(seed, epoch, batch index)``, so a run interrupted at a batch boundary resumes with
exactly the batches it would have seen.

Dataset files are located by :func:`resolve_dataset` and converted by :mod:`data_tools`.
"""
from __future__ import annotations

import functools
import os
import queue
import threading
import urllib.error
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import final

import h5py
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import data_tools

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

_STATS = MappingProxyType({
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
})
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
_H5_SUFFIXES = (".h5", ".hdf5")


# ----------------------------------------------------------------------------- validation

def _channel_vector(values, name: str) -> np.ndarray:
    """``values`` as float32 [3]; ValueError naming ``name`` otherwise."""
    arr = np.asarray(values, dtype=np.float32)
    if arr.shape != (3,):
        raise ValueError(f"{name} must have 3 values (one per channel), got shape {arr.shape}")
    return arr


def _check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; TypeError/ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_images(images, name: str = "images") -> np.ndarray:
    """uint8 [N, 3, H, W] array; TypeError/ValueError naming ``name`` otherwise."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"{name} must be a numpy array uint8 [N, 3, H, W], "
                        f"got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise TypeError(f"{name} must be uint8 [N, 3, H, W], got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must have shape [N, 3, H, W], got {images.shape}")
    return images


# ----------------------------------------------------------------------------- datasets

def channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean and std in [0, 1] units of uint8 images [N, 3, H, W].

    Returns two float32 [3] arrays. Uses a 256-bin histogram per channel, so no float copy
    of the images is made.
    """
    images = _check_images(images)
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
        self.images = _check_images(images)
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
        self.mean = _channel_vector(mean, "mean")
        self.std = _channel_vector(std, "std")
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
    """Read one split of a converted file (see :mod:`data_tools.cifar`) fully into memory."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    info = data_tools.check_h5(path)
    with h5py.File(path, "r") as f:
        images = f[f"{split}/images"][()]
        labels = f[f"{split}/labels"][()]
        names = tuple(f["label_names"].asstr()[()])
    mean, std = _STATS.get(info.dataset, (None, None))
    return ArrayDataset(images, labels, names, mean, std)


def load_mini(path: str | os.PathLike | None = None) -> tuple[ArrayDataset, ArrayDataset]:
    """(train, test) of ``cifar10-mini.npz`` (1000 / 500 images), converted to NCHW.

    ``path`` defaults to ``$SNNLITE_DATA/cifar10-mini.npz``. The file stores HWC images
    [N, 32, 32, 3]; the datasets hold them as [N, 3, 32, 32].
    """
    if path is None:
        env = os.environ.get("SNNLITE_DATA")
        if not env:
            raise FileNotFoundError("load_mini: no path given and $SNNLITE_DATA is not set")
        path = Path(env) / "cifar10-mini.npz"
    with np.load(path, allow_pickle=False) as z:
        names = tuple(str(n) for n in z["label_names"])
        out = []
        for split in ("train", "test"):
            x = z[f"x_{split}"]
            if x.ndim != 4 or x.shape[-1] != 3:
                raise ValueError(f"{path}: x_{split} must be HWC [N, H, W, 3], got {x.shape}")
            images = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
            out.append(ArrayDataset(images, z[f"y_{split}"], names, CIFAR10_MEAN, CIFAR10_STD))
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


# ----------------------------------------------------------------------------- resolution

def _is_archive(path: Path) -> bool:
    return path.name.endswith(_ARCHIVE_SUFFIXES)


def _search(location: Path, spec: data_tools.DatasetSpec, cache: Path, looked: list[str],
            strict: bool) -> Path | None:
    """The converted file found at ``location`` (an .h5, an archive, or a directory).

    An archive is converted into ``cache``, never next to itself. With ``strict`` an invalid
    .h5 raises ValueError; otherwise it is noted in ``looked`` and skipped.
    """
    if location.is_file():
        if location.name.endswith(_H5_SUFFIXES):
            return _accept_h5(location, spec, looked, strict)
        if _is_archive(location):
            return data_tools.prepare(spec.name, src=location, cache_dir=cache)
        raise ValueError(f"{location}: expected an .h5 file, a .tar.gz archive or a directory")
    h5, archive = location / spec.h5_name, location / spec.filename
    if not location.is_dir():
        if location.name.endswith(_H5_SUFFIXES + _ARCHIVE_SUFFIXES):
            looked.append(f"{location} (does not exist)")
        else:
            looked.append(f"{h5}, {archive} (directory {location} does not exist)")
        return None
    if h5.is_file():
        found = _accept_h5(h5, spec, looked, strict)
        if found is not None:
            return found
    else:
        looked.append(str(h5))
    if archive.is_file():
        return data_tools.prepare(spec.name, src=archive, cache_dir=cache)
    looked.append(str(archive))
    return None


def _accept_h5(path: Path, spec: data_tools.DatasetSpec, looked: list[str],
               strict: bool) -> Path | None:
    try:
        data_tools.check_h5(path, spec.name)
    except ValueError as err:
        if strict:
            raise
        looked.append(f"{path} (invalid: {err})")
        return None
    return path


def resolve_dataset(name: str = "cifar10", data: str | os.PathLike | None = None, *,
                    download: bool = True, cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the converted HDF5 file of ``name``, converting or downloading if needed.

    Looks, in order:

    1. ``data`` if given: an .h5 file, an archive, or a directory holding ``<name>.h5`` or
       the archive under its official name. If given, it is the only place looked.
    2. ``$SNNLITE_DATA`` (same forms; may be read-only).
    3. the cache directory (``cache_dir``, default :func:`data_tools.default_cache_dir`).
    4. the official download (if ``download``), into the cache directory.

    Archives are converted into the cache directory, never next to the archive.

    Raises:
        FileNotFoundError: nothing found; the message names every place looked.
        ValueError: a file was found but is corrupt or of the wrong dataset.
    """
    spec = data_tools.get_spec(name)
    cache = Path(cache_dir) if cache_dir is not None else data_tools.default_cache_dir()
    looked: list[str] = []
    if data is not None:
        found = _search(Path(data).expanduser(), spec, cache, looked, strict=True)
        if found is None:
            raise _not_found(spec, looked, "")
        return found
    env = os.environ.get("SNNLITE_DATA")
    if env:
        found = _search(Path(env).expanduser(), spec, cache, looked, strict=True)
        if found is not None:
            return found
    else:
        looked.append("$SNNLITE_DATA (not set)")
    found = _search(cache, spec, cache, looked, strict=False)
    if found is not None:
        return found
    if not download:
        raise _not_found(spec, looked, "download disabled (download=False)")
    try:
        return data_tools.prepare(spec.name, cache_dir=cache)
    except (OSError, urllib.error.URLError, ValueError) as err:
        raise _not_found(spec, looked, f"download from {spec.url} failed: {err}") from err


def _not_found(spec: data_tools.DatasetSpec, looked: list[str], note: str) -> FileNotFoundError:
    lines = [f"{spec.name} not found. Looked in:"] + [f"  - {place}" for place in looked]
    if note:
        lines.append(f"  - {note}")
    lines.append(f"Pass data=<{spec.h5_name}, {spec.filename}, or a directory holding one>, "
                 f"set $SNNLITE_DATA, or run: python -m data_tools {spec.name} --from ARCHIVE")
    return FileNotFoundError("\n".join(lines))


# ----------------------------------------------------------------------------- augmentation

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
    mean = _channel_vector(mean, "mean")[:, None, None]
    std = _channel_vector(std, "std")
    if np.any(std <= 0):
        raise ValueError(f"std must be positive, got {std}")
    return ((x.astype(np.float32, copy=False) - mean) / std[:, None, None]).astype(
        np.float32, copy=False)


# ----------------------------------------------------------------------------- loader

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
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        self.seed = _check_int(seed, "seed", 0)
        self.prefetch = _check_int(prefetch, "prefetch", 0)
        self.pad = _check_int(pad, "pad", 0)
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
        self._epoch = _check_int(epoch, "epoch", 0)

    def __iter__(self) -> EpochIterator:
        return self.epoch(self._epoch)

    def permutation(self, epoch: int) -> np.ndarray:
        """Sample order of ``epoch``: int64 [N]."""
        epoch = _check_int(epoch, "epoch", 0)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n, dtype=np.int64)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch ``index`` of ``epoch`` on its own: ``(x [B, 3, H, W], y [B])``."""
        index = _check_int(index, "index", 0)
        if index >= len(self):
            raise IndexError(f"batch index {index} out of range for {len(self)} batches")
        return self._make_batch(self.permutation(epoch), epoch, index)

    def epoch(self, epoch: int, start: int = 0) -> EpochIterator:
        """Iterator over batches ``start, ..., len(self) - 1`` of ``epoch``."""
        start = _check_int(start, "start", 0)
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


class _Failure:
    """An exception raised in the worker thread, passed to the consumer."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; True if it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _produce_all(produce: Callable[[int], object], indices: range, q: queue.Queue,
                 stop: threading.Event) -> None:
    """Worker thread body: put ``produce(i)`` for each index, or the first exception."""
    try:
        for i in indices:
            if stop.is_set() or not _put(q, produce(i), stop):
                return
    except BaseException as exc:  # noqa: BLE001  (relayed to the consumer, which re-raises it)
        _put(q, _Failure(exc), stop)


def _shutdown(q: queue.Queue, stop: threading.Event, thread: threading.Thread) -> None:
    """Stop the worker: signal, unblock its pending put, wait for it to end."""
    stop.set()
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            break
    if thread is not threading.current_thread():
        thread.join(timeout=5.0)


@final
class EpochIterator:
    """Batches of one epoch, optionally prefetched by a background thread.

    The thread stops when the epoch is exhausted, when :meth:`close` is called, when the
    iterator is used as a context manager and the block exits, or when the iterator is
    garbage collected. An exception raised while preparing a batch is re-raised here.
    """

    def __init__(self, produce: Callable[[int], object], indices: range, prefetch: int):
        self._produce = produce
        self._pending = iter(indices)
        self._remaining = len(indices)
        self._queue: queue.Queue | None = None
        self._finalizer = None
        if prefetch > 0 and self._remaining:
            self._queue = queue.Queue(maxsize=prefetch)
            stop = threading.Event()
            # the thread holds only produce/queue/stop, never self, so self can be collected
            self._thread = threading.Thread(target=_produce_all, name="snnlite-loader",
                                            args=(produce, indices, self._queue, stop),
                                            daemon=True)
            self._thread.start()
            self._finalizer = weakref.finalize(self, _shutdown, self._queue, stop, self._thread)

    def __iter__(self) -> EpochIterator:
        return self

    def __len__(self) -> int:
        """Batches not yet yielded."""
        return self._remaining

    def __next__(self):
        if self._remaining <= 0:
            self.close()
            raise StopIteration
        if self._queue is None:
            try:
                item = self._produce(next(self._pending))
            except BaseException:
                self.close()
                raise
        else:
            item = self._get()
        self._remaining -= 1
        if self._remaining == 0:
            self.close()
        return item

    def _get(self):
        while True:
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self.close()
                    raise RuntimeError("loader thread ended without producing a batch") from None
                continue
            if isinstance(item, _Failure):
                self.close()
                raise item.exc
            return item

    def close(self) -> None:
        """Stop prefetching; the iterator is exhausted afterwards."""
        self._remaining = 0
        if self._finalizer is not None:
            self._finalizer()

    def __enter__(self) -> EpochIterator:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
