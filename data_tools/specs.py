"""What distinguishes the CIFAR-10 and CIFAR-100 archives: names, URLs, checksums, members.

Every lookup of a dataset by name goes through :func:`get_spec`, which reads the module-level
:data:`SPECS`; tests swap that mapping (``monkeypatch.setattr(data_tools.specs, "SPECS", ...)``)
to make the tools accept small synthetic archives.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

IMAGE_SHAPE = (3, 32, 32)
ROW_SIZE = 3 * 32 * 32
SPLITS = ("train", "test")


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


def infer_name(archive: Path) -> str:
    """The dataset whose official archive file name ``archive`` has."""
    for spec in SPECS.values():
        if archive.name == spec.filename:
            return spec.name
    raise ValueError(f"cannot tell which dataset {archive.name} holds; pass name= "
                     f"(one of {sorted(SPECS)})")
