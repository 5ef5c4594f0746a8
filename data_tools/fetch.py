"""Download an official CIFAR archive, keeping it only if its MD5 is the official one."""
from __future__ import annotations

import hashlib
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from ._io import atomic_target, default_cache_dir
from .specs import get_spec


def download(name: str, dest_dir: str | Path | None = None, *, url: str | None = None,
             progress: bool = True, timeout: float = 60.0, chunk_size: int = 1 << 20) -> Path:
    """Download the official archive of ``name`` into ``dest_dir``; return its path.

    The response is streamed (with a tqdm progress bar) into a temporary file in
    ``dest_dir`` while its MD5 is computed; the file is renamed to its official name only if
    the MD5 matches the official archive. On any failure the temporary file is removed.
    """
    spec = get_spec(name)
    dest = Path(dest_dir) if dest_dir is not None else default_cache_dir()
    target = dest / spec.filename
    url = url or spec.url
    with atomic_target(target) as tmp:
        md5, size, expected_size = _stream_to_file(url, tmp, spec.filename, progress, timeout,
                                                   chunk_size)
        if expected_size is not None and size != expected_size:
            raise ValueError(f"download of {url} is incomplete: got {size} of "
                             f"{expected_size} bytes")
        if md5 != spec.md5:
            raise ValueError(f"download of {url}: MD5 {md5} does not match the official "
                             f"{spec.name} archive ({spec.md5})")
    return target


def _stream_to_file(url: str, path: Path, desc: str, progress: bool, timeout: float,
                    chunk_size: int) -> tuple[str, int, int | None]:
    """Copy the response body of ``url`` into ``path``; return (md5, bytes, Content-Length)."""
    md5 = hashlib.md5()
    size = 0
    with urllib.request.urlopen(url, timeout=timeout) as response, open(path, "wb") as out:
        length = response.headers.get("Content-Length")
        expected = int(length) if length else None
        with tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024, desc=desc,
                  disable=not progress) as bar:
            while chunk := response.read(chunk_size):
                out.write(chunk)
                md5.update(chunk)
                size += len(chunk)
                bar.update(len(chunk))
    return md5.hexdigest(), size, expected

