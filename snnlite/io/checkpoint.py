"""HDF5 checkpoints: everything a run needs to continue exactly, in one self-describing file.

Layout (format version 1)::

    /model/<dotted name>          parameters and buffers, PyTorch names
    /optim/momenta/<dotted name>  SGD momentum buffers (absent before the first step)
    attrs: format, format_version, snnlite_version,
           config (JSON: model name, hyper-parameters), state (JSON: epoch, step, ...)

Files are written to a temporary name in the same folder, flushed to disk and renamed,
so a crash at any moment leaves either the old file or the new one, never half of one.
:func:`load_model` rebuilds a checkpoint's model from the file alone (the schema of its
``config`` is :class:`snnlite.io.config.TrainConfig`).
"""
import json
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from .._version import __version__

FORMAT = "snnlite-checkpoint"
FORMAT_VERSION = 1


def atomic_write(path, write):
    """Call ``write(tmp_path)`` then move the finished file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; a result is not
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path, model_state, config, state, momenta=None):
    """Write a checkpoint atomically.

    model_state: {name: array} (``model.state_dict()``); config, state: JSON-able dicts;
    momenta: {name: array} optimizer buffers keyed by parameter name.
    """
    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["snnlite_version"] = __version__
            f.attrs["config"] = json.dumps(config)
            f.attrs["state"] = json.dumps(state)
            g = f.create_group("model")
            for k, v in model_state.items():
                g.create_dataset(k, data=np.asarray(v))
            m = f.create_group("optim/momenta")
            for k, v in (momenta or {}).items():
                m.create_dataset(k, data=np.asarray(v))

    atomic_write(path, write)


def _read_group(g):
    return {k: v[()] for k, v in g.items()}


def load_checkpoint(path):
    """Read a checkpoint: returns dict(model, momenta, config, state, format_version).

    Raises FileNotFoundError for a missing file and ValueError, naming the file, for one
    that is truncated, corrupt or not a snnlite checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(f"{path}: not a snnlite checkpoint (no '{FORMAT}' marker)")
            version = int(f.attrs["format_version"])
            if version > FORMAT_VERSION:
                raise ValueError(f"{path}: checkpoint format {version} is newer than this "
                                 f"snnlite supports ({FORMAT_VERSION})")
            model = _read_group(f["model"])
            momenta = _read_group(f["optim/momenta"]) if "optim/momenta" in f else {}
            return dict(model=model, momenta=momenta, config=json.loads(f.attrs["config"]),
                        state=json.loads(f.attrs["state"]), format_version=version)
    except ValueError:
        raise
    except (OSError, KeyError) as e:
        raise ValueError(f"{path}: unreadable checkpoint (truncated or corrupt?): {e}") from e


def load_model(path):
    """(model, :class:`~snnlite.io.config.TrainConfig`) from a checkpoint: the model named
    by its config, built for its number of classes, with the stored weights (strict)."""
    from .. import models  # here: the file format itself needs h5py and numpy only
    from .config import TrainConfig

    ck = load_checkpoint(path)
    cfg = TrainConfig.from_dict(ck["config"])
    model = models.build(cfg.model, cfg.num_classes)
    try:
        model.load_state_dict(ck["model"])
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model, cfg
