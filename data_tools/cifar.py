"""CIFAR-10 / CIFAR-100: download, verify and convert the "python version" archives to HDF5.

The archives hold Python 2 pickles of dicts with bytes keys. ``b'data'`` is a uint8 array
[N, 3072]: each row is the red 32x32 plane, then green, then blue, each row-major, so
``reshape(N, 3, 32, 32)`` gives NCHW images directly.

Pickles are loaded with a restricted unpickler that only resolves the globals numpy needs to
rebuild arrays; an archive that asks for anything else is refused.

HDF5 layout written by :func:`convert` (one file per dataset)::

    /train/images   uint8 [N, 3, 32, 32]
    /train/labels   uint8 [N]
    /test/images    uint8 [M, 3, 32, 32]
    /test/labels    uint8 [M]
    /label_names    utf-8 strings [num_classes]
    (CIFAR-100 also: /train/coarse_labels, /test/coarse_labels, /coarse_label_names)
    attrs: dataset, num_classes, source_archive, source_md5, source_sha256,
           official_md5_match, converter_version
"""
from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import h5py
import numpy as np
from tqdm.auto import tqdm

from ._io import atomic_target, default_cache_dir, file_digests

CONVERTER_VERSION = "1"
IMAGE_SHAPE = (3, 32, 32)
ROW_SIZE = 3 * 32 * 32
SPLITS = ("train", "test")
_MAX_MEMBER_BYTES = 256 << 20  # a CIFAR batch is ~31 MB; refuse absurd members
_CHUNK = 1 << 20


class ChecksumMismatchWarning(UserWarning):
    """The archive is not byte-identical to the official one, but its structure verified."""


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that distinguishes one CIFAR archive from another."""

    name: str
    filename: str
    url: str
    md5: str
    folder: str
    train_members: tuple[str, ...]
    test_members: tuple[str, ...]
    meta_member: str
    label_key: bytes
    names_key: bytes
    num_classes: int
    coarse_label_key: bytes | None = None
    coarse_names_key: bytes | None = None
    num_coarse_classes: int = 0
    counts: Mapping[str, int] = field(
        default_factory=lambda: MappingProxyType({"train": 50000, "test": 10000}))

    @property
    def h5_name(self) -> str:
        """File name of the converted dataset, e.g. ``cifar10.h5``."""
        return f"{self.name}.h5"

    def members(self, split: str) -> tuple[str, ...]:
        """Archive member paths of a split's batches, in order."""
        names = self.train_members if split == "train" else self.test_members
        return tuple(f"{self.folder}/{m}" for m in names)


SPECS: Mapping[str, DatasetSpec] = MappingProxyType({
    "cifar10": DatasetSpec(
        name="cifar10",
        filename="cifar-10-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        folder="cifar-10-batches-py",
        train_members=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_members=("test_batch",),
        meta_member="batches.meta",
        label_key=b"labels",
        names_key=b"label_names",
        num_classes=10,
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        filename="cifar-100-python.tar.gz",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        folder="cifar-100-python",
        train_members=("train",),
        test_members=("test",),
        meta_member="meta",
        label_key=b"fine_labels",
        names_key=b"fine_label_names",
        num_classes=100,
        coarse_label_key=b"coarse_labels",
        coarse_names_key=b"coarse_label_names",
        num_coarse_classes=20,
    ),
})


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``"cifar10"`` or ``"cifar100"`` (also ``"CIFAR-10"``)."""
    key = str(name).lower().replace("-", "").replace("_", "")
    try:
        return SPECS[key]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(SPECS)}") from None


# ----------------------------------------------------------------------------- unpickling

def _numpy_multiarray():
    """numpy's ``multiarray`` module under its numpy 2 or numpy 1 name."""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 1.26
        from numpy.core import multiarray
    return multiarray


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals a CIFAR pickle may reference: numpy array reconstruction."""
    ma = _numpy_multiarray()
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = ma._reconstruct
        allowed[(module, "scalar")] = ma.scalar
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves numpy array reconstruction globals and refuses all others."""

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global '{module}.{name}': only numpy array "
                "reconstruction globals are allowed in a dataset pickle") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing persistent id in a dataset pickle")


def restricted_loads(data: bytes):
    """Unpickle ``data`` (Python 2 pickle, bytes keys) with :class:`RestrictedUnpickler`."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()


# ----------------------------------------------------------------------------- verification

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
class _Split:
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


def _parse_batch(raw: bytes, spec: DatasetSpec, where: str) -> _Split:
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
    return _Split(images, labels, coarse)


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


def _concat(parts: list[_Split]) -> _Split:
    coarse = None
    if parts[0].coarse_labels is not None:
        coarse = np.concatenate([p.coarse_labels for p in parts])
    return _Split(np.concatenate([p.images for p in parts]),
                  np.concatenate([p.labels for p in parts]), coarse)


def _read_archive(path: str | Path, spec: DatasetSpec,
                  expected_counts: Mapping[str, int] | None
                  ) -> tuple[ArchiveInfo, dict[str, _Split]]:
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
    info, _ = _read_archive(path, get_spec(name), expected_counts)
    return info


# ----------------------------------------------------------------------------- HDF5

def _string_dataset(f: h5py.File, key: str, names: tuple[str, ...]) -> None:
    f.create_dataset(key, data=np.array(names, dtype=object),
                     dtype=h5py.string_dtype("utf-8"))


def _write_h5(path: Path, info: ArchiveInfo, splits: dict[str, _Split]) -> None:
    """Write the converted dataset to ``path`` (layout in the module docstring)."""
    with h5py.File(path, "w") as f:
        f.attrs["dataset"] = info.name
        f.attrs["num_classes"] = len(info.label_names)
        f.attrs["source_archive"] = info.path.name
        f.attrs["source_md5"] = info.md5
        f.attrs["source_sha256"] = info.sha256
        f.attrs["official_md5_match"] = bool(info.official_md5_match)
        f.attrs["converter_version"] = CONVERTER_VERSION
        for split, data in splits.items():
            group = f.create_group(split)
            group.create_dataset("images", data=data.images)
            group.create_dataset("labels", data=data.labels)
            if data.coarse_labels is not None:
                group.create_dataset("coarse_labels", data=data.coarse_labels)
        _string_dataset(f, "label_names", info.label_names)
        if info.coarse_label_names:
            _string_dataset(f, "coarse_label_names", info.coarse_label_names)


def _infer_name(archive: Path) -> str:
    for spec in SPECS.values():
        if archive.name == spec.filename:
            return spec.name
    raise ValueError(f"cannot tell which dataset {archive.name} holds; pass name= "
                     f"(one of {sorted(SPECS)})")


def convert(archive: str | Path, out_path: str | Path, *, name: str | None = None,
            expected_counts: Mapping[str, int] | None = None) -> Path:
    """Verify ``archive`` and write it as one HDF5 file; return the file's path.

    ``out_path`` is the target file (ending in ``.h5`` or ``.hdf5``), or a directory (the
    file is then ``<dir>/<dataset>.h5``). ``name`` defaults to the dataset the archive's file name
    implies. The file is written to a temporary file in the same directory and moved into
    place with ``os.replace``: a failed or interrupted conversion leaves nothing behind.
    """
    archive = Path(archive)
    spec = get_spec(name if name is not None else _infer_name(archive))
    out_path = Path(out_path)
    if out_path.is_dir() or out_path.suffix not in (".h5", ".hdf5"):
        out_path = out_path / spec.h5_name
    info, splits = _read_archive(archive, spec, expected_counts)
    with atomic_target(out_path) as tmp:
        _write_h5(tmp, info, splits)
    return out_path


@dataclass(frozen=True)
class H5Info:
    """Attributes and split sizes of a converted file."""

    path: Path
    dataset: str
    counts: Mapping[str, int]
    num_classes: int
    source_archive: str
    source_md5: str
    official_md5_match: bool


def check_h5(path: str | Path, name: str | None = None,
             expected_counts: Mapping[str, int] | None = None) -> H5Info:
    """Validate a converted file's attributes and shapes (without reading the images).

    Raises ValueError saying what is wrong, FileNotFoundError if ``path`` is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"converted dataset not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            return _check_open_h5(f, path, name, expected_counts)
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from err


def _check_open_h5(f: h5py.File, path: Path, name: str | None,
                   expected_counts: Mapping[str, int] | None) -> H5Info:
    required = ("dataset", "num_classes", "source_archive", "source_md5", "source_sha256",
                "official_md5_match", "converter_version")
    missing = [a for a in required if a not in f.attrs]
    if missing:
        raise ValueError(f"{path}: missing attribute(s) {', '.join(missing)}")
    dataset = str(f.attrs["dataset"])
    if name is not None and dataset != get_spec(name).name:
        raise ValueError(f"{path}: holds dataset {dataset!r}, expected {get_spec(name).name!r}")
    if str(f.attrs["converter_version"]) != CONVERTER_VERSION:
        raise ValueError(f"{path}: converter_version {f.attrs['converter_version']!r}, "
                         f"expected {CONVERTER_VERSION!r}")
    num_classes = int(f.attrs["num_classes"])
    if "label_names" not in f or f["label_names"].shape != (num_classes,):
        raise ValueError(f"{path}: label_names missing or not of length {num_classes}")
    counts = {}
    for split in SPLITS:
        for key in ("images", "labels"):
            if f"{split}/{key}" not in f:
                raise ValueError(f"{path}: missing dataset {split}/{key}")
        images, labels = f[f"{split}/images"], f[f"{split}/labels"]
        n = images.shape[0]
        if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{path}: {split}/images is {images.dtype} {images.shape}, "
                             f"expected uint8 (N, 3, 32, 32)")
        if labels.shape != (n,) or labels.dtype.kind not in "iu":
            raise ValueError(f"{path}: {split}/labels is {labels.dtype} {labels.shape}, "
                             f"expected integers ({n},)")
        if expected_counts is not None and n != expected_counts[split]:
            raise ValueError(f"{path}: {split} has {n} images, expected {expected_counts[split]}")
        counts[split] = n
    return H5Info(path=path, dataset=dataset, counts=MappingProxyType(counts),
                  num_classes=num_classes, source_archive=str(f.attrs["source_archive"]),
                  source_md5=str(f.attrs["source_md5"]),
                  official_md5_match=bool(f.attrs["official_md5_match"]))


# ----------------------------------------------------------------------------- download

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


# ----------------------------------------------------------------------------- prepare

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
