"""File helpers: checksums, atomic writes, the default cache directory."""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

_CHUNK = 1 << 20


def default_cache_dir() -> Path:
    """Where converted datasets and downloads live.

    ``$SNNLITE_CACHE`` if set, else ``$XDG_CACHE_HOME/snnlite``, else ``~/.cache/snnlite``.
    """
    env = os.environ.get("SNNLITE_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "snnlite"
    return Path.home() / ".cache" / "snnlite"


def file_digests(path: str | os.PathLike, algorithms: tuple[str, ...] = ("md5", "sha256")
                 ) -> dict[str, str]:
    """Hex digests of a file, read once: ``{"md5": ..., "sha256": ...}``."""
    hashes = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def remove_quietly(path: str | os.PathLike) -> None:
    """Delete a file if it exists; never raises for a missing file."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def atomic_target(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; move it into place on success.

    The temporary file lives in the same directory (so the final ``os.replace`` is atomic)
    and is removed on any exception, including ``KeyboardInterrupt``: an interrupted write
    never leaves a partial file under the target name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _new_temp_file(target)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, target)
    except BaseException:
        remove_quietly(tmp_path)
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


_PART = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.part$")


def remove_stale_parts(folder: str | os.PathLike) -> list[str]:
    """Delete the ``.<name>.<pid>.<hex>.part`` files in ``folder`` whose writing process is
    gone (a killed download or conversion); returns the names removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _PART.match(entry.name)
        if m and not _pid_alive(int(m.group("pid"))) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(entry.name)
    return removed


def _new_temp_file(target: Path) -> Path:
    """Create an empty, uniquely named file next to ``target`` (mode from the umask), after
    removing what killed writers left in that folder."""
    remove_stale_parts(target.parent)
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
        try:
            with open(tmp, "xb"):
                return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file next to {target}")


def _fsync(path: Path) -> None:
    """Flush a closed file's data to disk before it is renamed into place."""
    with open(path, "rb+") as f:
        os.fsync(f.fileno())
