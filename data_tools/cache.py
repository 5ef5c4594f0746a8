"""Make the cache directory hold a valid converted dataset: reuse, convert, or download first."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ._io import default_cache_dir, file_digests, remove_stale_parts
from .fetch import download
from .hdf5 import H5Info, check_h5, convert
from .specs import DatasetSpec, get_spec


def _locate_archive(src: Path, spec: DatasetSpec) -> Path:
    """``src`` itself if it is a file, else ``src/<official archive name>``."""
    if src.is_file():
        return src
    if src.is_dir():
        candidate = src / spec.filename
        if candidate.is_file():
            return candidate
        raise FileNotFoundError(f"{spec.filename} not found in directory {src}")
    raise FileNotFoundError(f"source archive not found: {src}")


def _reusable(target: Path, spec: DatasetSpec, counts: Mapping[str, int],
              source_md5: str | None) -> H5Info | None:
    """The existing converted file's info if it is valid (and from ``source_md5``)."""
    if not target.is_file():
        return None
    try:
        info = check_h5(target, spec.name, counts)
    except ValueError:
        return None
    if source_md5 is not None and info.source_md5 != source_md5:
        return None
    return info


def prepare(name: str, src: str | Path | None = None, cache_dir: str | Path | None = None, *,
            force: bool = False, expected_counts: Mapping[str, int] | None = None,
            progress: bool = True, log: Callable[[str], None] | None = None) -> Path:
    """Make ``<cache_dir>/<name>.h5`` exist and be valid; return its path.

    With ``src`` (an archive file, or a directory holding the archive under its official
    name) the archive is verified and converted. Without it the archive already in
    ``cache_dir`` is used, or the official one is downloaded there first. An existing valid
    file is reused (with ``src``: only if it was converted from an archive with the same MD5)
    unless ``force``. ``log`` receives one line per step taken.
    """
    spec = get_spec(name)
    say = log or (lambda message: None)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    for stale in remove_stale_parts(cache):
        say(f"removed {cache / stale} (left by a killed download or conversion)")
    target = cache / spec.h5_name
    counts = spec.counts if expected_counts is None else expected_counts
    if src is not None:
        archive = _locate_archive(Path(src), spec)
        source_md5 = file_digests(archive, ("md5",))["md5"]
    else:
        archive, source_md5 = cache / spec.filename, None
    if not force and _reusable(target, spec, counts, source_md5) is not None:
        say(f"reusing {target} (already converted and valid)")
        return target
    if src is None and not archive.is_file():
        say(f"downloading {spec.url} to {cache}")
        archive = download(spec.name, cache, progress=progress)
    say(f"verifying and converting {archive}")
    return convert(archive, target, name=spec.name, expected_counts=counts)
