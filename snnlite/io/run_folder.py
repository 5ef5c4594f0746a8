"""A run folder, held by one process at a time.

A training run owns its folder (``last.h5``, ``best.h5``, ``config.json``,
``metrics.jsonl``, ``results.json``: :data:`RUN_FILES`). :class:`RunFolder` takes an
advisory lock on ``<folder>/.lock`` (``fcntl.flock``, exclusive, non-blocking) for the life
of the run; the operating system releases it when the process ends, however it ends
(SIGKILL included), so a stale lock never blocks a later run. A second process asking for
the same folder gets :class:`FolderBusy` at once. Once the lock is held, the temporary
files that killed writes left in the folder are removed (they can belong to no one else).

On systems without ``fcntl`` (Windows) the lock is a no-op.
"""
import contextlib
import errno
import os
from pathlib import Path

from .checkpoint import remove_stale_temps

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

RUN_FILES = ("last.h5", "best.h5", "config.json", "metrics.jsonl", "results.json")
LOCK_NAME = ".lock"


class FolderBusy(RuntimeError):
    """Another process holds the run folder."""


class RunFolder:
    """The folder ``path`` of one run; :meth:`acquire` / :meth:`release` its lock."""

    def __init__(self, path):
        self.path = Path(path)
        self._lock = None
        self.removed = []  # stale temporary files deleted when the lock was taken

    @property
    def held(self):
        return self._lock is not None

    def acquire(self):
        """Create the folder if needed and lock it; raises :class:`FolderBusy` if another
        process holds it, ``OSError`` naming the folder if it cannot be written."""
        if self._lock is not None:
            return self
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = open(self.path / LOCK_NAME, "a+")  # noqa: SIM115 - held for the run's life
        except OSError as e:
            raise OSError(e.errno, f"{self.path}: cannot create or write the run folder "
                                   f"({e.strerror or e}); choose another output folder") from e
        try:
            if fcntl is not None:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(lock)
            lock.close()
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                who = f" (pid {holder})" if holder else ""
                raise FolderBusy(f"{self.path} is in use by another run{who}: wait for it "
                                 "to finish, or choose another output folder") from None
            raise
        if not os.access(self.path, os.W_OK):
            lock.close()
            raise OSError(errno.EACCES, f"{self.path}: the run folder is read-only; choose "
                                        "another output folder")
        with contextlib.suppress(OSError):  # who holds it, for the message above
            lock.seek(0)
            lock.truncate()
            lock.write(f"{os.getpid()}\n")
            lock.flush()
        self._lock = lock
        self.removed = remove_stale_temps(self.path, RUN_FILES)
        return self

    def release(self):
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.close()  # closing the descriptor drops the flock

    def present(self, names=RUN_FILES):
        """The names of ``names`` that exist in the folder."""
        return [n for n in names if (self.path / n).exists()]

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_pid(f):
    try:
        f.seek(0)
        text = f.read(32).strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


__all__ = ["LOCK_NAME", "RUN_FILES", "FolderBusy", "RunFolder"]
