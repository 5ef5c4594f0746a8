"""NIR files in HDF5 (the layout ``nir.write`` / ``nir.read`` 1.0.x use), with h5py only.

``write_nir_h5(path, graph)`` writes a graph dict (nodes, edges, metadata; what
:func:`~snnlite.io.nir.model_to_nir` returns); ``read_nir(path)`` reads any NIR file into
the same form.
"""
from pathlib import Path

import h5py
import numpy as np

NIR_VERSION = "1.0.8"
READOUT_MEAN = "mean_over_time"  # graph metadata "readout": the output is the mean over time


def _put(group, key, value):
    if isinstance(value, str):
        group.create_dataset(key, data=value, dtype=h5py.string_dtype())
    elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.size >= 64:
        group.create_dataset(key, data=value, compression="gzip", compression_opts=4)
    else:
        group.create_dataset(key, data=value)


def write_nir_h5(tmp, graph):
    with h5py.File(tmp, "w") as f:
        _put(f, "version", NIR_VERSION)
        g = f.create_group("node")
        _put(g, "type", "NIRGraph")
        nodes = g.create_group("nodes")
        for name, node in graph["nodes"].items():
            ng = nodes.create_group(name)
            for k, v in node.items():
                if k == "metadata":
                    if v:
                        mg = ng.create_group("metadata")
                        for mk, mv in v.items():
                            _put(mg, mk, mv)
                else:
                    _put(ng, k, v)
        g.create_dataset("edges", data=np.array(graph["edges"], dtype=object).reshape(-1, 2),
                         dtype=h5py.string_dtype())
        mg = g.create_group("metadata")
        for k, v in graph["metadata"].items():
            _put(mg, k, v)


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.dtype == object:
        return np.vectorize(_decode, otypes=[object])(v)
    return v


def _read_group(g):
    return {k: (_read_group(v) if isinstance(v, h5py.Group) else _decode(v[()]))
            for k, v in g.items()}


def read_nir(path):
    """The NIR graph in ``path`` as ``dict(version, nodes, edges, metadata)``: nodes map
    names to {field: value} (strings decoded), edges are (source, destination) pairs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIR file not found: {path}")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise ValueError(f"{path}: not a NIR file (no 'node' group)")
            version = _decode(f["version"][()]) if "version" in f else None
            root = _read_group(f["node"])
    except ValueError:
        raise
    except (OSError, KeyError, RuntimeError) as e:
        raise ValueError(f"{path}: unreadable NIR file (truncated or corrupt?): {e}") from e
    if root.get("type") != "NIRGraph":
        raise ValueError(f"{path}: the root node is {root.get('type')!r}, not a NIRGraph")
    for key in ("nodes", "edges"):
        if key not in root:
            raise ValueError(f"{path}: NIR graph without '{key}'")
    edges = np.asarray(root["edges"], dtype=object)
    if edges.size and (edges.ndim != 2 or edges.shape[1] != 2):
        raise ValueError(f"{path}: NIR edges must be (E, 2) node names, got shape "
                         f"{edges.shape}")
    for name, node in root["nodes"].items():
        if not isinstance(node, dict) or "type" not in node:
            raise ValueError(f"{path}: NIR node {name!r} has no 'type'")
    return {"version": version, "nodes": root["nodes"],
            "edges": [(str(a), str(b)) for a, b in edges.reshape(-1, 2)],
            "metadata": root.get("metadata", {})}
