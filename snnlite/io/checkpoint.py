"""HDF5 checkpoints: everything a run needs to continue exactly, in one self-describing file.

Layout (format version 1)::

    /model/<dotted name>          parameters and buffers, PyTorch names
    /optim/momenta/<dotted name>  SGD momentum buffers (absent before the first step)
    attrs: format, format_version, snnlite_version,
           config (JSON: model name, hyper-parameters), state (JSON: epoch, step, ...)

Files are written to a temporary name in the same folder (``.<name>.<pid>.<random>.tmp``),
flushed to disk and renamed, so a crash at any moment leaves either the old file or the new
one, never half of one; :func:`remove_stale_temps` deletes what a killed writer left.
:func:`load_model` rebuilds a checkpoint's model from the file alone (the schema of its
``config`` is :class:`snnlite.io.config.TrainConfig`).

A checkpoint always holds finite numbers: :func:`save_checkpoint` refuses NaN or infinity
in any array (model or optimizer) and :func:`load_checkpoint` refuses to return them, naming
the tensors (:class:`NonFiniteError`). Reading is bounded: every array's declared shape is
checked before its data is read - against the expected shapes when the caller knows the
model (:func:`load_model` and resuming do), against the bytes the file really stores (a
sparse, external or virtual dataset is refused) and against ``max_bytes`` in all
(:data:`MAX_BYTES`).

What these checks cannot cover is the HDF5 library itself: like any C parser it may crash
on some corrupt files (a fuzz of snnlite's loaders found a segmentation fault in HDF5
2.0.0's attribute reader, about one in a thousand random mutations of a checkpoint).
Open a checkpoint from an untrusted source in a separate process.
"""
import contextlib
import json
import math
import os
import re
import secrets
from pathlib import Path

import h5py
import numpy as np

from .._version import __version__
from ..losses import DivergenceError

FORMAT = "snnlite-checkpoint"
FORMAT_VERSION = 1
MAX_BYTES = 4 * 2**30
"""The most array bytes a checkpoint may declare in all (4 GiB; ``max_bytes=`` changes it).
A file declaring more is refused before any array is read."""
_MAX_RATIO = 1100
"""A filtered (compressed) dataset may declare at most this many times the bytes it stores
(deflate tops out near 1032:1); uncompressed ones must store every byte they declare."""


class NonFiniteError(DivergenceError):
    """Arrays holding NaN or infinity where a model must be finite. ``names`` lists them."""

    def __init__(self, message, names=()):
        super().__init__(message)
        self.names = list(names)


def non_finite(arrays):
    """Names of the float arrays of ``{name: array}`` that hold NaN or infinity."""
    bad = []
    for k, v in arrays.items():
        v = np.asarray(v)
        if v.dtype.kind in "fc" and not _all_finite(v):
            bad.append(k)
    return bad


def _all_finite(v):
    # a float64 sum is finite iff every element is, unless it overflows: then look closer
    with np.errstate(over="ignore", invalid="ignore"):
        total = v.sum(dtype=np.complex128 if v.dtype.kind == "c" else np.float64)
    return (math.isfinite(total.real) and math.isfinite(total.imag)) or \
        bool(np.isfinite(v).all())


def describe_names(names, limit=8):
    """``'a, b, c'`` or ``'a, b, ... (12 in all)'``."""
    names = list(names)
    head = ", ".join(names[:limit])
    return head if len(names) <= limit else f"{head}, ... ({len(names)} in all)"


# ---------------------------------------------------------------------- atomic writes
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?:(?P<pid>\d+)\.)?[\w-]{6,16}\.tmp$")


def _temp_path(path):
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(f"cannot create a temporary file next to {path}")


def atomic_write(path, write):
    """Call ``write(tmp_path)`` then move the finished file to ``path``.

    A failure (disk full, read-only folder) raises ``OSError`` naming ``path`` and leaves
    the previous file, if any, untouched."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(path)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise OSError(e.errno, f"cannot write {path}: {_reason(e)}") from e
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _reason(e):
    if e.errno is not None and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


def _pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temps(folder, names=None):
    """Delete the temporary files that killed :func:`atomic_write` calls left in ``folder``:
    those whose writer (the pid in the name) is gone and, for the file names in ``names``
    (whose writer the caller knows to be itself, e.g. under a run lock), also those without
    a pid (written by earlier snnlite versions). Returns the names removed."""
    names = set(names or ())
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP.match(e.name)
        if m is None or not e.is_file(follow_symlinks=False):
            continue
        pid = m.group("pid")
        if (pid is not None and not _pid_alive(int(pid))) or (pid is None and m.group("name")
                                                               in names):
            with contextlib.suppress(OSError):
                os.unlink(e.path)
                removed.append(e.name)
    return removed


# ---------------------------------------------------------------------- saving
def save_checkpoint(path, model_state, config, state, momenta=None):
    """Write a checkpoint atomically.

    model_state: {name: array} (``model.state_dict()``); config, state: JSON-able dicts;
    momenta: {name: array} optimizer buffers keyed by parameter name. Raises
    :class:`NonFiniteError` (and writes nothing) if any array holds NaN or infinity.
    """
    bad = non_finite(model_state) + [f"optim/momenta/{k}" for k in non_finite(momenta or {})]
    if bad:
        raise NonFiniteError(f"refusing to write {path}: NaN or infinity in {len(bad)} "
                             f"tensor(s): {describe_names(bad)}", bad)
    config_text, state_text = json.dumps(config), json.dumps(state)

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["snnlite_version"] = __version__
            f.attrs["config"] = config_text
            f.attrs["state"] = state_text
            g = f.create_group("model")
            for k, v in model_state.items():
                g.create_dataset(k, data=np.asarray(v))
            m = f.create_group("optim/momenta")
            for k, v in (momenta or {}).items():
                m.create_dataset(k, data=np.asarray(v))

    atomic_write(path, write)


# ---------------------------------------------------------------------- loading
@contextlib.contextmanager
def _opened(path):
    """(h5py.File, format version) of a checkpoint; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise ValueError(f"{path}: not a snnlite checkpoint (no '{FORMAT}' marker)")
            try:
                version = int(f.attrs["format_version"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"{path}: checkpoint without a valid format_version") from None
            if version > FORMAT_VERSION:
                raise ValueError(f"{path}: checkpoint format {version} is newer than this "
                                 f"snnlite supports ({FORMAT_VERSION})")
            yield f, version
    except ValueError as e:
        if str(e).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: unreadable checkpoint (truncated or corrupt?): {e}") from e
    except (OSError, KeyError, RuntimeError, TypeError) as e:
        raise ValueError(f"{path}: unreadable checkpoint (truncated or corrupt?): {e}") from e


def _json_attr(f, key, path):
    try:
        value = json.loads(f.attrs[key])
    except KeyError:
        raise ValueError(f"{path}: checkpoint without its '{key}' attribute") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: the '{key}' attribute is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: the '{key}' attribute is not a JSON object")
    return value


def read_header(path):
    """(config, state) dicts of a checkpoint, without reading any array."""
    with _opened(path) as (f, _):
        return _json_attr(f, "config", path), _json_attr(f, "state", path)


def read_config(path):
    """The ``config`` dict of a checkpoint, without reading any array."""
    return read_header(path)[0]


def _datasets(f, group, path):
    """{name: h5py.Dataset} of ``group`` (absent: empty); anything else is an error."""
    if group not in f:
        return {}
    g = f[group]
    if not isinstance(g, h5py.Group):
        raise ValueError(f"{path}: '{group}' is not a group")
    out = {}
    for k, v in g.items():
        if not isinstance(v, h5py.Dataset):
            raise ValueError(f"{path}: '{group}/{k}' is not an array")
        out[k] = v
    return out


def _check_declared(path, group, items, expected, budget):
    """Shape, dtype and storage checks of ``items`` {name: Dataset} before reading; returns
    the bytes left of ``budget``."""
    where = f"{path}: {group}"
    if expected is not None:
        missing = [k for k in expected if k not in items]
        unexpected = [k for k in items if k not in expected]
        if (missing and group == "model") or unexpected:
            raise ValueError(f"{where}: names do not match the model: missing "
                             f"{describe_names(missing) or 'none'}; unexpected "
                             f"{describe_names(unexpected) or 'none'}")
    for k, ds in items.items():
        if ds.dtype.kind not in "biuf":
            raise ValueError(f"{where}/{k}: expected numbers, got dtype {ds.dtype}")
        shape = tuple(int(s) for s in ds.shape) if ds.shape is not None else None
        if shape is None:
            raise ValueError(f"{where}/{k}: empty dataspace")
        if expected is not None and shape != tuple(expected[k]):
            raise ValueError(f"{where}/{k}: the model expects shape {tuple(expected[k])}, "
                             f"the file declares {shape}")
        nbytes = math.prod(shape) * ds.dtype.itemsize
        if nbytes > budget:
            raise ValueError(f"{where}/{k}: declares {shape} ({nbytes} bytes), more than "
                             f"the {budget} bytes left of max_bytes")
        budget -= nbytes
        if ds.is_virtual or ds.external:
            raise ValueError(f"{where}/{k}: virtual or external storage is not allowed")
        stored = ds.id.get_storage_size()
        floor = nbytes if ds.id.get_create_plist().get_nfilters() == 0 else \
            -(-nbytes // _MAX_RATIO)
        if stored < floor:
            raise ValueError(f"{where}/{k}: declares {shape} ({nbytes} bytes) but the file "
                             f"stores {stored} (sparse or truncated dataset)")
    return budget


def _read_arrays(f, path, expected=None, expected_momenta=None, max_bytes=MAX_BYTES,
                 check_finite=True):
    model = _datasets(f, "model", path)
    momenta = _datasets(f, "optim/momenta", path)
    budget = _check_declared(path, "model", model, expected, max_bytes)
    _check_declared(path, "optim/momenta", momenta, expected_momenta, budget)
    model = {k: v[()] for k, v in model.items()}
    momenta = {k: v[()] for k, v in momenta.items()}
    if check_finite:
        bad = non_finite(model) + [f"optim/momenta/{k}" for k in non_finite(momenta)]
        if bad:
            raise NonFiniteError(f"{path}: NaN or infinity in {len(bad)} tensor(s): "
                                 f"{describe_names(bad)} (the model diverged or the file "
                                 "was altered; it cannot be used)", bad)
    return model, momenta


def load_checkpoint(path, expected=None, expected_momenta=None, max_bytes=MAX_BYTES,
                    check_finite=True):
    """Read a checkpoint: returns dict(model, momenta, config, state, format_version).

    ``expected`` ({name: shape}), if given, must be exactly the model arrays' names and
    shapes, and ``expected_momenta`` a superset of the momenta's; both are checked before
    any array is read, as are the declared sizes (see the module docstring).
    Raises FileNotFoundError for a missing file, :class:`NonFiniteError` (a ValueError)
    for NaN or infinity, and ValueError, naming the file, for one that is truncated,
    corrupt, oversized or not a snnlite checkpoint.
    """
    with _opened(path) as (f, version):
        config, state = _json_attr(f, "config", path), _json_attr(f, "state", path)
        model, momenta = _read_arrays(f, path, expected, expected_momenta, max_bytes,
                                      check_finite)
    return dict(model=model, momenta=momenta, config=config, state=state,
                format_version=version)


def load_model(path):
    """(model, :class:`~snnlite.io.config.TrainConfig`) from a checkpoint: the model named
    by its config, built for its number of classes, with the stored weights (strict)."""
    from .. import models  # here: the file format itself needs h5py and numpy only
    from .config import TrainConfig

    with _opened(path) as (f, _):
        try:
            cfg = TrainConfig.from_dict(_json_attr(f, "config", path))
        except TypeError as e:
            raise ValueError(f"{path}: invalid config ({e})") from None
        except ValueError as e:
            raise ValueError(f"{path}: invalid config: {e}") from None
        model = models.build(cfg.model, cfg.num_classes)
        shapes = {k: v.shape for k, v in model.state_dict().items()}
        params = {k: p.data.shape for k, p in model.named_parameters()}
        state, _ = _read_arrays(f, path, shapes, params)
    try:
        model.load_state_dict(state)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    return model, cfg
