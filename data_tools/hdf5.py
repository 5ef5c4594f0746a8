"""Write a verified CIFAR dataset as one HDF5 file, and check a file written earlier.

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

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import h5py
import numpy as np

from ._io import atomic_target
from .archive import ArchiveInfo, DecodedSplit, read_archive
from .specs import IMAGE_SHAPE, SPLITS, get_spec, infer_name

CONVERTER_VERSION = "1"


def _string_dataset(f: h5py.File, key: str, names: tuple[str, ...]) -> None:
    f.create_dataset(key, data=np.array(names, dtype=object),
                     dtype=h5py.string_dtype("utf-8"))


def _write_h5(path: Path, info: ArchiveInfo, splits: dict[str, DecodedSplit]) -> None:
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


def convert(archive: str | Path, out_path: str | Path, *, name: str | None = None,
            expected_counts: Mapping[str, int] | None = None) -> Path:
    """Verify ``archive`` and write it as one HDF5 file; return the file's path.

    ``out_path`` is the target file (ending in ``.h5`` or ``.hdf5``), or a directory (the
    file is then ``<dir>/<dataset>.h5``). ``name`` defaults to the dataset the archive's file name
    implies. The file is written to a temporary file in the same directory and moved into
    place with ``os.replace``: a failed or interrupted conversion leaves nothing behind.
    """
    archive = Path(archive)
    spec = get_spec(name if name is not None else infer_name(archive))
    out_path = Path(out_path)
    if out_path.is_dir() or out_path.suffix not in (".h5", ".hdf5"):
        out_path = out_path / spec.h5_name
    info, splits = read_archive(archive, spec, expected_counts)
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

