"""Dataset tools for snnlite: download, verify and convert CIFAR-10 / CIFAR-100 to HDF5.

Command line: ``python -m data_tools cifar10|cifar100 [--from PATH] [--out DIR]``.

One concern per module: :mod:`~data_tools.specs` (what each dataset's archive is),
:mod:`~data_tools.unpickle` (the restricted unpickler), :mod:`~data_tools.archive` (reading
and verifying an archive), :mod:`~data_tools.hdf5` (writing and checking the converted file),
:mod:`~data_tools.fetch` (download), :mod:`~data_tools.cache` (:func:`prepare`: reuse, convert
or download into the cache directory).
"""
from ._io import default_cache_dir, file_digests
from .archive import ArchiveInfo, ChecksumMismatchWarning, verify_archive
from .cache import prepare
from .fetch import download
from .hdf5 import CONVERTER_VERSION, H5Info, check_h5, convert
from .specs import SPECS, DatasetSpec, get_spec
from .unpickle import RestrictedUnpickler, restricted_loads

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
