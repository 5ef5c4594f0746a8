"""The batches of one epoch, optionally prepared ahead by a background thread."""
from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from typing import final


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
