"""Quantized checkpoints: a float checkpoint plus the integer model made from it.

A quantized checkpoint IS a snnlite checkpoint (:mod:`snnlite.io.checkpoint`, the float
layout unchanged, written with its atomic write): ``/model`` holds the float source's
weights, so :func:`~snnlite.io.checkpoint.load_model` still rebuilds the float model. It
adds::

    config["quant"]   {"version": 1, "weight_bits", "state_bits", ... (QFormat.as_dict),
                       "input": {"kind", "step", "bits"}, "calibration": {...},
                       "source": {"path", "sha256"}}   # the float checkpoint file's SHA-256
    /quant            attrs: format = "snnlite-quant", version, meta (JSON: the QNet record's
                      meta, see :mod:`snnlite.quant.qnet`); datasets: the record's arrays

``snnlite eval`` and ``snnlite audit`` run a quantized checkpoint through the integer engine
(:func:`load_quantized`); commands that need an integer model refuse a float checkpoint with
:func:`require_quantized`.
"""
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np

from ..io.checkpoint import atomic_write, load_checkpoint, load_model, save_checkpoint
from .qnet import QNet

QUANT_FORMAT = "snnlite-quant"
QUANT_VERSION = 1
MAX_BYTES = 2 ** 31
"""The most array bytes the ``/quant`` group may declare (2 GiB)."""


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def quant_config(qnet, source, sha256, calibration=None):
    """The ``config["quant"]`` entry of a quantized checkpoint."""
    return {"version": QUANT_VERSION, **qnet.fmt.as_dict(),
            "input": {"kind": qnet.input_kind, "step": qnet.input_step,
                      "bits": qnet.fmt.input_bits},
            "calibration": calibration or {}, "source": {"path": str(source), "sha256": sha256}}


def save_quantized(path, qnet, source, calibration=None):
    """Write ``qnet``, quantized from the float checkpoint ``source``, as a quantized
    checkpoint at ``path`` (atomically). Returns the source's SHA-256."""
    source = Path(source)
    ck = load_checkpoint(source)
    if "quant" in ck["config"]:
        raise ValueError(f"{source}: already a quantized checkpoint; quantize its float source "
                         f"{ck['config']['quant'].get('source', {}).get('path', '')!r} instead")
    sha = sha256_file(source)
    config = dict(ck["config"], quant=quant_config(qnet, source, sha, calibration))
    meta, arrays = qnet.to_record()

    def write(tmp):
        save_checkpoint(tmp, ck["model"], config, ck["state"])
        with h5py.File(tmp, "a") as f:
            g = f.create_group("quant")
            g.attrs["format"] = QUANT_FORMAT
            g.attrs["version"] = QUANT_VERSION
            g.attrs["meta"] = json.dumps(meta)
            for k, a in arrays.items():
                g.create_dataset(k, data=a)

    atomic_write(path, write)
    return sha


def is_quantized(path):
    """True if ``path`` is a quantized checkpoint (raises like ``load_checkpoint`` for a
    file that is missing or not a snnlite checkpoint)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != "snnlite-checkpoint":
                raise ValueError(f"{path}: not a snnlite checkpoint (no 'snnlite-checkpoint' "
                                 "marker)")
            return "quant" in f
    except OSError as e:
        raise ValueError(f"{path}: unreadable checkpoint (truncated or corrupt?): {e}") from e


def require_quantized(path, what="this command"):
    """Raise ValueError, saying how to make one, unless ``path`` is a quantized checkpoint."""
    if not is_quantized(path):
        raise ValueError(f"{path}: a float checkpoint; {what} needs an integer model: make one "
                         f"with `snnlite quantize {path} --bits 8 --out Q.h5`")


def load_quantized(path):
    """(QNet, TrainConfig of the source, config["quant"]) of a quantized checkpoint; a
    ValueError names the file for a float checkpoint, a newer format or a damaged record."""
    from ..io.config import TrainConfig

    require_quantized(path, "loading an integer model")
    path = Path(path)
    ck_config = None
    try:
        with h5py.File(path, "r") as f:
            g = f["quant"]
            if g.attrs.get("format") != QUANT_FORMAT:
                raise ValueError(f"{path}: /quant is not a {QUANT_FORMAT} record")
            version = int(g.attrs.get("version", -1))
            if version != QUANT_VERSION:
                raise ValueError(f"{path}: quantized model format version {version}; this "
                                 f"snnlite reads version {QUANT_VERSION}")
            meta = json.loads(g.attrs["meta"])
            budget, arrays = MAX_BYTES, {}
            for k, ds in g.items():
                if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "iuf":
                    raise ValueError(f"{path}: /quant/{k} is not a numeric array")
                budget -= int(np.prod(ds.shape)) * ds.dtype.itemsize
                if budget < 0:
                    raise ValueError(f"{path}: /quant declares more than {MAX_BYTES} bytes")
                arrays[k] = ds[()]
            ck_config = json.loads(f.attrs["config"])
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: unreadable quantized model ({type(e).__name__}: {e})") \
            from None
    qnet = QNet.from_record(meta, arrays, str(path))
    cfg = TrainConfig.from_dict(ck_config)
    return qnet, cfg, ck_config.get("quant", {})


def load_float_source(path):
    """(float model, TrainConfig) of a checkpoint that must be a float one."""
    if is_quantized(path):
        raise ValueError(f"{path}: already a quantized checkpoint; give the float checkpoint "
                         "it was made from")
    return load_model(path)


__all__ = ["QUANT_FORMAT", "QUANT_VERSION", "is_quantized", "load_float_source",
           "load_quantized", "quant_config", "require_quantized", "save_quantized",
           "sha256_file"]
