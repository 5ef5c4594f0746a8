"""Read and verify a CIFAR "python version" archive (.tar.gz) without trusting it.

The archives hold Python 2 pickles of dicts with bytes keys. ``b'data'`` is a uint8 array
[N, 3072]: each row is the red 32x32 plane, then green, then blue, each row-major, so
``reshape(N, 3, 32, 32)`` gives NCHW images directly. Pickles are loaded with
:func:`~data_tools.unpickle.restricted_loads`.
"""
from __future__ import annotations

import gzip
import pickle
import tarfile
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

from ._io import file_digests
from .specs import IMAGE_SHAPE, ROW_SIZE, SPLITS, DatasetSpec, get_spec
from .unpickle import restricted_loads

_MAX_MEMBER_BYTES = 256 << 20  # a CIFAR batch is ~31 MB; refuse absurd members
_CHUNK = 1 << 20


class ChecksumMismatchWarning(UserWarning):
    """The archive is not byte-identical to the official one, but its structure verified."""


@dataclass(frozen=True)
class ArchiveInfo:
    """What :func:`verify_archive` found: checksums, counts, class names."""

    name: str
    path: Path
    md5: str
    sha256: str
    official_md5_match: bool
    counts: Mapping[str, int]
    label_names: tuple[str, ...]
    coarse_label_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class DecodedSplit:
    """One split's arrays as read from the archive."""

    images: np.ndarray                 # uint8 [N, 3, 32, 32]
    labels: np.ndarray                 # uint8 [N]
    coarse_labels: np.ndarray | None   # uint8 [N] (CIFAR-100 only)


def _read_members(path: Path, wanted: set[str]) -> dict[str, bytes]:
    """Raw bytes of the ``wanted`` members of a .tar.gz; ValueError if it is unreadable.

    The whole gzip stream is read to its end so that its CRC and length trailer are checked:
    a flipped byte inside stored (incompressible) data is otherwise invisible.
    """
    found: dict[str, bytes] = {}
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
            with tarfile.open(fileobj=gz, mode="r|") as tar:
                for member in tar:
                    if member.name in wanted:
                        found[member.name] = _member_bytes(tar, member, path)
            while gz.read(_CHUNK):
                pass
    except EOFError as err:
        raise ValueError(f"{path.name}: archive is truncated (compressed stream ends early: "
                         f"{err})") from err
    except gzip.BadGzipFile as err:
        what = "not a gzip file" if "Not a gzipped" in str(err) else "corrupt gzip data"
        raise ValueError(f"{path.name}: {what} ({err})") from err
    except zlib.error as err:
        raise ValueError(f"{path.name}: corrupt compressed data ({err})") from err
    except tarfile.TarError as err:
        raise ValueError(f"{path.name}: not a readable tar.gz archive ({err})") from err
    except OSError as err:
        raise ValueError(f"{path.name}: cannot read archive ({err})") from err
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(f"{path.name}: missing archive member(s): {', '.join(missing)}")
    return found


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, path: Path) -> bytes:
    """Contents of one regular-file member of reasonable size."""
    if not member.isfile():
        raise ValueError(f"{path.name}: member {member.name} is not a regular file")
    if member.size > _MAX_MEMBER_BYTES:
        raise ValueError(f"{path.name}: member {member.name} is implausibly large "
                         f"({member.size} bytes)")
    data = tar.extractfile(member).read()
    if len(data) != member.size:
        raise ValueError(f"{path.name}: archive is truncated inside member {member.name}")
    return data


def _load_pickle(raw: bytes, where: str) -> dict:
    """Unpickle one member as a dict; ValueError naming ``where`` on any failure."""
    try:
        obj = restricted_loads(raw)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{where}: {err}") from err
    except Exception as err:  # malformed pickle: EOFError, struct errors, bad dtype state ...
        raise ValueError(f"{where}: not a valid pickle ({type(err).__name__}: {err})") from err
    if not isinstance(obj, dict):
        raise ValueError(  # noqa: TRY004  (malformed file content, not a caller's type error)
            f"{where}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _labels(batch: dict, key: bytes, n: int, num_classes: int, where: str) -> np.ndarray:
    """Validated labels of one batch: uint8 [n] with values in [0, num_classes)."""
    if key not in batch:
        raise ValueError(f"{where}: missing key {key!r}")
    try:
        labels = np.asarray(batch[key])
    except Exception as err:
        raise ValueError(f"{where}: {key!r} is not a label sequence ({err})") from err
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{where}: {key!r} has shape {labels.shape}, expected ({n},)")
    if n and labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: {key!r} must be integers, got dtype {labels.dtype}")
    if n and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{where}: {key!r} out of range: found [{labels.min()}, "
                         f"{labels.max()}], expected 0..{num_classes - 1}")
    return labels.astype(np.uint8)


def _parse_batch(raw: bytes, spec: DatasetSpec, where: str) -> DecodedSplit:
    """Check one batch pickle and return its images [N,3,32,32] and labels [N]."""
    batch = _load_pickle(raw, where)
    data = batch.get(b"data")
    if not isinstance(data, np.ndarray):
        raise ValueError(f"{where}: missing numpy array b'data'")  # noqa: TRY004  (file content)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_SIZE:
        raise ValueError(f"{where}: b'data' is {data.dtype} {data.shape}, expected uint8 "
                         f"(N, {ROW_SIZE})")
    n = data.shape[0]
    labels = _labels(batch, spec.label_key, n, spec.num_classes, where)
    coarse = None
    if spec.coarse_label_key is not None:
        coarse = _labels(batch, spec.coarse_label_key, n, spec.num_coarse_classes, where)
    images = np.ascontiguousarray(data).reshape(n, *IMAGE_SHAPE)
    return DecodedSplit(images, labels, coarse)


def _names(meta: dict, key: bytes, count: int, where: str) -> tuple[str, ...]:
    """Class names from the meta pickle: ``count`` strings."""
    names = meta.get(key)
    if not isinstance(names, (list, tuple)) or len(names) != count:
        got = len(names) if isinstance(names, (list, tuple)) else type(names).__name__
        raise ValueError(f"{where}: {key!r} must list {count} class names, got {got}")
    out = []
    for item in names:
        if isinstance(item, bytes):
            item = item.decode("utf-8")
        if not isinstance(item, str):
            raise ValueError(  # noqa: TRY004  (file content)
                f"{where}: {key!r} holds a non-string {type(item).__name__}")
        out.append(item)
    return tuple(out)


def _concat(parts: list[DecodedSplit]) -> DecodedSplit:
    coarse = None
    if parts[0].coarse_labels is not None:
        coarse = np.concatenate([p.coarse_labels for p in parts])
    return DecodedSplit(np.concatenate([p.images for p in parts]),
                  np.concatenate([p.labels for p in parts]), coarse)


def read_archive(path: str | Path, spec: DatasetSpec,
                 expected_counts: Mapping[str, int] | None
                 ) -> tuple[ArchiveInfo, dict[str, DecodedSplit]]:
    """Verify an archive and return its info and decoded splits."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"archive not found: {path}")
    counts = dict(spec.counts if expected_counts is None else expected_counts)
    digests = file_digests(path)
    split_members = {split: spec.members(split) for split in SPLITS}
    meta_member = f"{spec.folder}/{spec.meta_member}"
    raw = _read_members(path, {meta_member, *split_members["train"], *split_members["test"]})

    meta = _load_pickle(raw.pop(meta_member), f"{path.name}:{meta_member}")
    label_names = _names(meta, spec.names_key, spec.num_classes, f"{path.name}:{meta_member}")
    coarse_names: tuple[str, ...] = ()
    if spec.coarse_names_key is not None:
        coarse_names = _names(meta, spec.coarse_names_key, spec.num_coarse_classes,
                              f"{path.name}:{meta_member}")
    splits = {}
    for split, members in split_members.items():
        parts = [_parse_batch(raw.pop(m), spec, f"{path.name}:{m}") for m in members]
        splits[split] = _concat(parts)
        got = len(splits[split].labels)
        if got != counts[split]:
            raise ValueError(f"{path.name}: {split} split has {got} images, expected "
                             f"{counts[split]}")

    match = digests["md5"] == spec.md5
    if not match:
        warnings.warn(
            f"{path.name}: MD5 {digests['md5']} differs from the official {spec.name} archive "
            f"({spec.md5}); the archive structure was verified instead "
            f"(members, array shapes and dtypes, label ranges, counts).",
            ChecksumMismatchWarning, stacklevel=3)
    info = ArchiveInfo(name=spec.name, path=path, md5=digests["md5"],
                       sha256=digests["sha256"], official_md5_match=match,
                       counts=MappingProxyType({s: len(splits[s].labels) for s in SPLITS}),
                       label_names=label_names, coarse_label_names=coarse_names)
    return info, splits


def verify_archive(path: str | Path, name: str,
                   expected_counts: Mapping[str, int] | None = None) -> ArchiveInfo:
    """Check a CIFAR archive's integrity and structure without writing anything.

    Checks: the gzip/tar stream is complete, every batch and the meta member are present,
    each batch is a dict whose ``b'data'`` is uint8 [N, 3072] with labels in range, and the
    split sizes equal ``expected_counts`` (default: 50000 train / 10000 test).

    An MD5 different from the official archive is accepted with a
    :class:`ChecksumMismatchWarning` once the structure verifies.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the archive is truncated, corrupt, incomplete, or malformed; the message
            names the file (and member) and what is wrong.
    """
    info, _ = read_archive(path, get_spec(name), expected_counts)
    return info

