"""NIR files in HDF5 (the layout ``nir.write`` / ``nir.read`` 1.0.x use), with h5py only.

``write_nir_h5(path, graph)`` writes a graph dict (nodes, edges, metadata; what
:func:`~snnlite.io.nir.model_to_nir` returns); ``read_nir(path)`` reads any NIR file into
the same form, nested ``NIRGraph`` nodes as nested dicts.

Reads are bounded: before any dataset is read, its declared size (elements x item size) is
checked against :data:`MAX_TENSOR_BYTES` (one tensor), :data:`MAX_TOTAL_BYTES` (the whole
graph) and the bytes the file really stores for it: a dataset may not declare more than
:data:`MAX_EXPANSION` times its stored bytes (gzip, the best NIR writers use, stays below
~1030x; an unwritten or sparse dataset stores nothing). A file that is not HDF5 at all (a
torch zip, a pickle) is named as such.
"""
from pathlib import Path

import h5py
import numpy as np

NIR_VERSION = "1.0.8"
READOUT_MEAN = "mean_over_time"  # graph metadata "readout": the output is the mean over time
MAX_TENSOR_BYTES = 1 << 30  # 1 GiB: one NIR tensor larger than this is refused
MAX_TOTAL_BYTES = 4 << 30  # 4 GiB: all tensors of one file together
MAX_EXPANSION = 2048  # declared bytes per stored byte beyond which a dataset is refused
_HDF5 = b"\x89HDF\r\n\x1a\n"


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
        _put_dict(g.create_group("metadata"), graph["metadata"])


def _put_dict(group, d):
    for k, v in d.items():
        if isinstance(v, dict):
            _put_dict(group.create_group(k), v)
        else:
            _put(group, k, v)


def _decode(v):
    if isinstance(v, bytes):
        return v.decode("utf8")
    if isinstance(v, np.ndarray) and v.dtype == object:
        return np.vectorize(_decode, otypes=[object])(v)
    return v


class _Budget:
    """Checks each dataset's declared size before it is read (see the module docstring)."""

    def __init__(self, path):
        self.path, self.total = path, 0

    def check(self, name, d):
        n = int(np.prod(d.shape, dtype=np.int64)) if d.shape else 1
        item = 16 if d.dtype.kind == "O" else d.dtype.itemsize  # a string: its reference
        declared = n * item
        if declared > MAX_TENSOR_BYTES:
            raise ValueError(f"{self.path}: NIR dataset {name!r} declares shape {d.shape} "
                             f"({declared:,} bytes), over the {MAX_TENSOR_BYTES:,}-byte cap "
                             "per tensor")
        self.total += declared
        if self.total > MAX_TOTAL_BYTES:
            raise ValueError(f"{self.path}: NIR datasets declare more than "
                             f"{MAX_TOTAL_BYTES:,} bytes in all (at {name!r})")
        if declared > 4096 and d.dtype.kind != "O":
            stored = d.id.get_storage_size()
            if declared > stored * MAX_EXPANSION:
                raise ValueError(f"{self.path}: NIR dataset {name!r} declares shape {d.shape} "
                                 f"({declared:,} bytes) but the file stores {stored:,} bytes "
                                 "for it: unwritten or sparse data, or a crafted file")


def _read_group(g, budget, prefix=""):
    out = {}
    for k, v in g.items():
        name = f"{prefix}/{k}"
        if isinstance(v, h5py.Group):
            out[k] = _read_group(v, budget, name)
        elif isinstance(v, h5py.Dataset):
            budget.check(name, v)
            out[k] = _decode(v[()])
        else:  # None for a dangling link, a named datatype, ...
            raise ValueError(f"{budget.path}: NIR entry {name!r} is neither a group nor a "
                             "dataset (a broken link, or a corrupt file)")
    return out


def _not_hdf5(path):
    """Why ``path`` is no HDF5 file (None if it starts like one)."""
    with open(path, "rb") as f:
        head = f.read(8)
        if head == _HDF5:
            return None
        for off in (512, 1024, 2048):  # HDF5 allows a user block before the signature
            f.seek(off)
            if f.read(8) == _HDF5:
                return None
    if head.startswith(b"PK\x03\x04"):
        return ("is a zip archive (a PyTorch file saved with torch.save?), not a NIR file: "
                "NIR files are HDF5; write the graph with nir.write(path, graph) in the "
                "program that made it")
    if head[:1] == b"\x80":
        return ("is a Python pickle (torch.save of a graph object?), not a NIR file: NIR "
                "files are HDF5; write the graph with nir.write(path, graph)")
    return f"is not an HDF5 file (it starts with {head!r}); NIR files are HDF5"


def read_nir(path):
    """The NIR graph in ``path`` as ``dict(version, nodes, edges, metadata)``: nodes map
    names to {field: value} (strings decoded; a nested ``NIRGraph`` node holds its own
    ``nodes`` and ``edges``), edges are (source, destination) pairs."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NIR file not found: {path}")
    why = _not_hdf5(path)
    if why:
        raise ValueError(f"{path}: {why}")
    budget = _Budget(path)
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f:
                raise ValueError(f"{path}: not a NIR file (no 'node' group)")
            version = None
            if "version" in f:
                budget.check("/version", f["version"])
                version = _decode(f["version"][()])
            root = _read_group(f["node"], budget, "/node")
    except ValueError as e:
        if str(e).startswith(f"{path}: "):  # ours, saying what is wrong
            raise
        raise ValueError(f"{path}: unreadable NIR file (corrupt?): {e}") from e
    except (OSError, KeyError, RuntimeError, TypeError, IndexError) as e:
        raise ValueError(f"{path}: unreadable NIR file (truncated or corrupt?): {e}") from e
    _check_graph(path, root, "the root node")
    return {"version": version, "nodes": root["nodes"], "edges": _edges(path, root),
            "metadata": root.get("metadata", {})}


def _edges(path, g):
    edges = np.asarray(g["edges"], dtype=object)
    if edges.size and (edges.ndim != 2 or edges.shape[1] != 2):
        raise ValueError(f"{path}: NIR edges must be (E, 2) node names, got shape "
                         f"{edges.shape}")
    return [(str(a), str(b)) for a, b in edges.reshape(-1, 2)]


def _check_graph(path, g, what):
    """Every graph (the root and each nested NIRGraph node) has nodes with types and
    edges; nested graphs get their edges as pairs too."""
    if not isinstance(g, dict) or g.get("type") != "NIRGraph":
        typ = g.get("type") if isinstance(g, dict) else type(g).__name__
        raise ValueError(f"{path}: {what} is {typ!r}, not a NIRGraph")
    for key in ("nodes", "edges"):
        if key not in g:
            raise ValueError(f"{path}: NIR graph without '{key}' ({what})")
    if not isinstance(g["nodes"], dict):
        raise ValueError(f"{path}: NIR 'nodes' of {what} is not a group")
    for name, node in g["nodes"].items():
        if not isinstance(node, dict) or "type" not in node:
            raise ValueError(f"{path}: NIR node {name!r} has no 'type'")
        if node["type"] == "NIRGraph":
            _check_graph(path, node, f"subgraph {name!r}")
            node["edges"] = _edges(path, node)
