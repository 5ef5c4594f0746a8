"""Dataset tools for snnlite: download, verify and convert CIFAR-10 / CIFAR-100 to HDF5.

Command line: ``python -m data_tools cifar10|cifar100 [--from PATH] [--out DIR]``.
"""
from ._io import default_cache_dir, file_digests
from .cifar import (
    CONVERTER_VERSION,
    SPECS,
    ArchiveInfo,
    ChecksumMismatchWarning,
    DatasetSpec,
    H5Info,
    RestrictedUnpickler,
    check_h5,
    convert,
    download,
    get_spec,
    prepare,
    restricted_loads,
    verify_archive,
)

__all__ = [
    "CONVERTER_VERSION", "SPECS", "ArchiveInfo", "ChecksumMismatchWarning", "DatasetSpec",
    "H5Info", "RestrictedUnpickler", "check_h5", "cli_main", "convert", "default_cache_dir",
    "download", "file_digests", "get_spec", "prepare", "restricted_loads", "verify_archive",
]


def cli_main(argv=None, prog=None) -> int:
    """Run the dataset command line with ``argv``; return the exit status.

    ``prog`` is the program name shown in usage messages (e.g. ``"snnlite data"``).
    """
    from .__main__ import main

    return main(argv, prog=prog)
