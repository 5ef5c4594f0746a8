"""Writing a deploy bundle: a quantized checkpoint's integer network as one ``.npz`` that
:mod:`snnlite.runtime` runs with numpy alone (the layout is documented there).

    write_bundle("q8.npz", qnet, model={...}, source={...})   # snnlite export --format bundle
"""
import json
from pathlib import Path

import numpy as np

from .._version import __version__
from ..runtime.bundle import BUNDLE_FORMAT, BUNDLE_VERSION
from .checkpoint import atomic_write


def write_bundle(path, qnet, model, source):
    """Write ``qnet`` (a :class:`~snnlite.quant.qnet.QNet`) to ``path`` atomically, with
    ``model`` ({"name", "num_classes", "dataset", "T", "encoding", "mean", "std",
    "label_names"}) and ``source`` ({"path", "sha256"} of the float checkpoint). Returns
    the path."""
    meta, arrays = qnet.to_record()
    doc = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "snnlite_version": __version__,
           "model": model, "source": source, "net": meta}
    if "__bundle__" in arrays:
        raise ValueError("array name '__bundle__' is reserved")

    def write(tmp):
        with open(tmp, "wb") as f:  # a file object: numpy adds no ".npz" to the name
            np.savez(f, __bundle__=np.array(json.dumps(doc)), **arrays)

    atomic_write(path, write)
    return Path(path)


__all__ = ["write_bundle"]
