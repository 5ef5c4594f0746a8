"""Find the converted HDF5 file of a dataset: an explicit path, $SNNLITE_DATA, the cache,
or a download; archives found on the way are converted by :mod:`data_tools`."""
from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import data_tools

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
_H5_SUFFIXES = (".h5", ".hdf5")


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
