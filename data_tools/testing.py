"""Small synthetic CIFAR archives in the official format, for tests.

The official batches are Python 2 pickles (protocol 2): strings are ``BINSTRING`` opcodes
(bytes under ``encoding='bytes'``) and arrays reference ``numpy.core.multiarray``. Python 3
pickles bytes differently (through ``_codecs.encode``), so :func:`py2_dumps` reproduces the
Python 2 encoding exactly.
"""
from __future__ import annotations

import io
import pickle
import struct
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from .specs import ROW_SIZE, SPECS, DatasetSpec, get_spec
from .unpickle import numpy_multiarray

SMALL_COUNTS = {"train": 50, "test": 20}

CIFAR10_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck")


class _Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler writing bytes as Python 2 ``str`` and numpy globals by 1.x names."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str

    def save_global(self, obj, name=None):
        ma = numpy_multiarray()
        for attr in ("_reconstruct", "scalar"):
            if obj is getattr(ma, attr):
                self.write(pickle.GLOBAL + f"numpy.core.multiarray\n{attr}\n".encode())
                self.memoize(obj)
                return
        super().save_global(obj, name)


def py2_dumps(obj) -> bytes:
    """Pickle ``obj`` the way Python 2 cPickle protocol 2 wrote the CIFAR batches."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


@dataclass(frozen=True)
class SyntheticCifar:
    """Random images and labels of one dataset; images uint8 [N, 3, 32, 32]."""

    spec: DatasetSpec
    images: Mapping[str, np.ndarray]
    labels: Mapping[str, np.ndarray]
    coarse_labels: Mapping[str, np.ndarray] | None
    label_names: tuple[str, ...]
    coarse_label_names: tuple[str, ...]


def synthetic_cifar(name: str, counts: Mapping[str, int] = SMALL_COUNTS,
                    seed: int = 0) -> SyntheticCifar:
    """Deterministic random data for ``name`` with ``counts[split]`` images per split."""
    spec = get_spec(name)
    rng = np.random.default_rng(seed)
    images = {s: rng.integers(0, 256, size=(counts[s], 3, 32, 32), dtype=np.uint8)
              for s in ("train", "test")}
    labels = {s: rng.integers(0, spec.num_classes, size=counts[s]) for s in images}
    coarse = None
    if spec.coarse_label_key is not None:
        coarse = {s: labels[s] % spec.num_coarse_classes for s in images}
    if spec.num_classes == 10:
        names = CIFAR10_NAMES
    else:
        names = tuple(f"class_{i:02d}" for i in range(spec.num_classes))
    coarse_names = tuple(f"superclass_{i:02d}" for i in range(spec.num_coarse_classes))
    return SyntheticCifar(spec, images, labels, coarse, names, coarse_names)


def _batch(data: SyntheticCifar, split: str, rows: slice, title: bytes) -> dict:
    """One batch dict with bytes keys, like the official pickles."""
    spec = data.spec
    images = data.images[split][rows]
    batch = {
        b"batch_label": title,
        spec.label_key: [int(v) for v in data.labels[split][rows]],
        b"data": images.reshape(len(images), ROW_SIZE),
        b"filenames": [f"{split}_{i:05d}.png".encode() for i in range(len(images))],
    }
    if data.coarse_labels is not None:
        batch[spec.coarse_label_key] = [int(v) for v in data.coarse_labels[split][rows]]
    return batch


def archive_members(data: SyntheticCifar) -> dict[str, bytes]:
    """Member base name -> pickle bytes (plus ``readme.html``) for an archive of ``data``."""
    spec = data.spec
    members: dict[str, bytes] = {}
    for split, names in (("train", spec.train_members), ("test", spec.test_members)):
        n = len(data.labels[split])
        bounds = np.linspace(0, n, len(names) + 1).astype(int)
        for k, member in enumerate(names):
            title = f"{split}ing batch {k + 1} of {len(names)}".encode()
            rows = slice(bounds[k], bounds[k + 1])
            members[member] = py2_dumps(_batch(data, split, rows, title))
    meta = {spec.names_key: [n.encode() for n in data.label_names]}
    if spec.coarse_names_key is not None:
        meta[spec.coarse_names_key] = [n.encode() for n in data.coarse_label_names]
    meta[b"num_vis"] = ROW_SIZE
    members[spec.meta_member] = py2_dumps(meta)
    members["readme.html"] = b"<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=about\">\n"
    return members


def write_archive(path: str | Path, folder: str, members: Mapping[str, bytes]) -> Path:
    """Write ``members`` as ``<folder>/<name>`` entries of a .tar.gz at ``path``."""
    path = Path(path)
    with tarfile.open(path, "w:gz") as tar:
        folder_info = tarfile.TarInfo(folder)
        folder_info.type = tarfile.DIRTYPE
        folder_info.mode = 0o755
        tar.addfile(folder_info)
        for name, raw in members.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(raw)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(raw))
    return path


def make_archive(directory: str | Path, name: str, counts: Mapping[str, int] = SMALL_COUNTS,
                 seed: int = 0) -> tuple[Path, SyntheticCifar]:
    """Write a valid synthetic archive under its official file name in ``directory``."""
    data = synthetic_cifar(name, counts, seed)
    path = Path(directory) / data.spec.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_archive(path, data.spec.folder, archive_members(data)), data


def specs_with(counts: Mapping[str, int] | None = None,
               md5: Mapping[str, str] | None = None) -> Mapping[str, DatasetSpec]:
    """A copy of :data:`data_tools.specs.SPECS` with other split sizes and/or MD5s.

    For tests: ``monkeypatch.setattr(data_tools.specs, "SPECS", specs_with(SMALL_COUNTS))``
    makes :func:`~data_tools.prepare` and the resolvers accept small archives.
    """
    out = {}
    for name, spec in SPECS.items():
        changes = {}
        if counts is not None:
            changes["counts"] = MappingProxyType(dict(counts))
        if md5 is not None and name in md5:
            changes["md5"] = md5[name]
        out[name] = replace(spec, **changes)
    return MappingProxyType(out)
