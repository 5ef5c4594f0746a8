"""NIR (Neuromorphic Intermediate Representation) export and import, with h5py only.

API
---
``export_nir(model, path, dt=1.0, input_shape=(3, 32, 32))`` writes ``model`` as a NIR
graph; ``import_nir(path, dt=None) -> Module`` rebuilds a snnlite model from one;
``read_nir(path) -> dict`` returns the raw graph (``version, nodes, edges, metadata``).
The ``nir`` package is not needed: files are written in the layout ``nir.read`` (1.0.x)
expects and ``nir.read`` loads them with type checking on.

File layout (NIR 1.0)::

    /version                     "1.0.8" (variable-length string)
    /node/type                   "NIRGraph"
    /node/edges                  (E, 2) strings: (source, destination) node names
    /node/metadata/<key>         graph metadata (see below)
    /node/nodes/<name>/type      node type, then one dataset per node field,
    /node/nodes/<name>/<field>   and an optional metadata group

Layer mapping
-------------
- ``Conv2d`` -> ``Conv2d`` (weight [O, C, k, k], bias, stride, padding, dilation 1,
  groups 1, input_shape [H, W]); ``Linear`` -> ``Affine`` (weight [out, in], bias).
- ``BatchNorm2d/1d`` is folded into the convolution or linear layer before it (NIR has
  no batch norm): with ``s = weight / sqrt(running_var + eps)``, ``W' = W * s`` per
  output channel and ``b' = (b - running_mean) * s + bias``, computed in float64 and
  stored in the model's dtype. The graph reproduces the model in eval mode.
- ``AvgPool2d(k)`` -> ``AvgPool2d`` (kernel_size = stride = [k, k], padding [0, 0]).
- ``Flatten`` -> ``Flatten(start_dim=0, end_dim=-1)``: NIR shapes exclude batch and time,
  so flattening every remaining axis starts at 0; ``input_type`` is [C, H, W].
- ``LIF`` -> ``LIF`` (below), each parameter an array of the layer's neuron shape.
- Residual connections are edges: NIR edges are identity connections and a node with
  several incoming edges receives their sum. A ``BasicBlock``'s add is the two edges
  into its second LIF (from the last convolution and from the shortcut: the 1x1
  convolution, or the block's input node itself). No explicit sum node is needed.
- ``TimeMean`` (the classifier readout) is no node: graph metadata ``readout =
  "mean_over_time"`` says the output is averaged over time steps.
- Not exportable: ``MaxPool2d`` (NIR has no max pooling), batch norm not directly after
  a convolution or linear layer, and containers other than ``Sequential``,
  ``SpikingResNet``, ``BasicBlock`` and :class:`GraphModule`.

LIF mapping
-----------
NIR's LIF is ``tau dv/dt = (v_leak - v) + R I``, spiking when v crosses ``v_threshold``
and then jumping to ``v_reset``. One forward-Euler step of length ``dt`` gives
``v <- v + dt / tau_nir * ((v_leak - v) + R I)``. snnlite's (SpikingJelly's) LIF charges
``h = v + (x - (v - v_reset)) / tau`` (decay_input) or ``h = v - (v - v_reset) / tau + x``
(otherwise). The two agree exactly with::

    tau_nir = tau * dt,  v_leak = v_reset,  R = 1 (decay_input) or R = tau (otherwise)

and ``v_threshold``, ``v_reset`` unchanged, under these conditions, all recorded in the
graph metadata: time is discretised by forward Euler with step ``dt``; within a step the
neuron charges, fires, then resets; a neuron fires when ``v >= v_threshold`` (a tie
spikes; NIR's text says ``>``); the membrane starts at ``v_reset``; input currents are
constant over a step. Soft reset (``v_reset=None``: subtract the threshold, leak towards
0) has no NIR LIF equivalent: it is written with ``v_leak = v_reset = 0`` and node
metadata ``reset_mode = "soft"``, which :func:`import_nir` honours and other NIR readers
will take for a hard reset to 0.

Graph metadata: ``snnlite_version, dt, threshold (">="), reset_mode ("hard", "soft",
"mixed" or "none"), decay_input (bool, or "mixed"), readout, discretisation
("forward_euler"), initial_membrane ("v_reset")``. LIF node metadata: ``reset_mode,
decay_input, detach_reset, surrogate_alpha`` (the last two only matter for training).

Import accepts graphs made of ``Input, Output, Conv2d, Affine, Linear, LIF, AvgPool2d,
SumPool2d, Flatten`` with the parameters snnlite can represent (square kernels, dilation
1, groups 1, pooling with stride = kernel and no padding, full flattening, LIF parameters
equal across neurons with ``R`` in {1, tau} and ``v_leak = v_reset``); anything else
raises ``ValueError`` naming the node. A chain becomes a :class:`~snnlite.nn.Sequential`,
any other acyclic graph a :class:`GraphModule`.
"""
import itertools
import math
import os
import re
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np

from ..models import SpikingResNet
from ..nn import (
    LIF,
    AvgPool2d,
    BasicBlock,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    Sequential,
    TimeMean,
)
from ..nn import functional as F
from ..nn.module import sum_over_time
from .checkpoint import atomic_write

__all__ = ["GraphModule", "SumPool2d", "export_nir", "import_nir", "read_nir"]

NIR_VERSION = "1.0.8"
READOUT_MEAN = "mean_over_time"
SUPPORTED_NODES = ("Input", "Output", "Conv2d", "Affine", "Linear", "LIF", "AvgPool2d",
                   "SumPool2d", "Flatten")


# ============================================================================ modules
class SumPool2d(AvgPool2d):
    """Sum pooling with kernel = stride = k (NIR's ``SumPool2d``): average pooling * k^2."""

    def _forward(self, x):
        return F.avg_pool_forward(x, self.kernel_size) * (self.kernel_size ** 2)

    def _backward(self, dy):
        return F.avg_pool_backward(dy * (self.kernel_size ** 2), self.kernel_size)


class GraphModule(Module):
    """An acyclic graph of layers: each node receives the sum of its predecessors' outputs.

    ``layers``: {node name: Module} in a topological order; ``preds``: {node name: list of
    predecessor names} (the graph input is called ``input_name``); ``output_preds``: the
    nodes summed into the output. ``readout`` (e.g. :class:`TimeMean`) is applied last.
    Layers are children named after their nodes, so ``state_dict`` keys are
    ``<node>.weight``, ...
    """

    def __init__(self, layers, preds, output_preds, input_name="input", readout=None):
        super().__init__()
        self._names = list(layers)
        self._preds = {k: list(v) for k, v in preds.items()}
        self._output_preds = list(output_preds)
        self._input = input_name
        self._attr = {}
        for name, layer in layers.items():
            attr = _attr_name(name, self._attr.values())
            self._attr[name] = attr
            setattr(self, attr, layer)
        self.readout = readout

    def layer(self, name):
        return getattr(self, self._attr[name])

    def _gather(self, values, names):
        out = values[names[0]]
        for n in names[1:]:
            out = out + values[n]
        return out

    def forward(self, x):
        values = {self._input: x}
        for name in self._names:
            values[name] = self.layer(name).forward(self._gather(values, self._preds[name]))
        y = self._gather(values, self._output_preds)
        return y if self.readout is None else self.readout.forward(y)

    def backward(self, dy):
        if self.readout is not None:
            dy = self.readout.backward(dy)
        grads = {}
        _scatter(grads, self._output_preds, dy)
        for name in reversed(self._names):
            g = grads.pop(name, None)
            if g is None:  # the node feeds nothing that reaches the output
                continue
            dx = self.layer(name).backward(g)
            if dx is not None:
                _scatter(grads, self._preds[name], dx)
        return grads.get(self._input)

    def extra_repr(self):
        return f"nodes={len(self._names)}, output={self._output_preds}"


def _scatter(grads, names, g):
    """Add g to the gradient of each node in names. A (1, ...) gradient is already summed
    over time (the node's output was time-broadcast), so a (T, ...) one joining it is
    summed over time too."""
    for n in names:
        cur = grads.get(n)
        if cur is None:
            grads[n] = g
        elif cur.shape[0] != g.shape[0]:
            grads[n] = sum_over_time(cur) + sum_over_time(g)
        else:
            grads[n] = cur + g


_RESERVED = set(dir(GraphModule)) | {"training", "readout"}


def _attr_name(name, taken):
    attr = name if name.replace("_", "a").isalnum() and not name.startswith("_") else \
        "node_" + re.sub(r"\W", "_", name)
    if attr in _RESERVED:
        attr = "node_" + attr
    base, i = attr, 1
    while attr in taken:
        attr, i = f"{base}_{i}", i + 1
    return attr


# ============================================================================ export
class _Exporter:
    """Walks a model, appending NIR nodes (plain dicts) and edges."""

    def __init__(self, dt, dtype):
        self.dt, self.dtype = float(dt), dtype
        self.nodes, self.edges = OrderedDict(), []
        self.lifs, self.readout, self.after_readout = [], False, None

    def add(self, path, node, srcs):
        name = path.replace(".", "_")
        if name in self.nodes:
            raise ValueError(f"export_nir: two nodes named {name!r}")
        self.nodes[name] = node
        self.edges.extend((s, name) for s in srcs)
        return name

    def emit(self, m, path, srcs, shape):
        """Emit module m fed by the sum of nodes srcs (values of shape ``shape``, without
        T and B). Returns (output node names, output shape)."""
        if self.readout and self.after_readout is None:
            self.after_readout = path
        if self.after_readout is not None:
            raise ValueError(f"export_nir: TimeMean must be the last layer, but "
                             f"'{self.after_readout}' follows it")
        where = f"'{path}' ({type(m).__name__})"
        if isinstance(m, (Sequential, SpikingResNet)):
            for name, child in m.named_children():
                srcs, shape = self.emit(child, _join(path, name), srcs, shape)
            return srcs, shape
        if isinstance(m, BasicBlock):
            return self._block(m, path, srcs, shape)
        if isinstance(m, GraphModule):
            return self._graph(m, path, srcs, shape)
        if isinstance(m, Conv2d):
            return self._conv(m, path, where, srcs, shape)
        if isinstance(m, Linear):
            _expect(shape, (m.in_features,), where)
            w = m.weight.data
            b = np.zeros(m.out_features, w.dtype) if m.bias is None else m.bias.data
            node = {"type": "Affine", "weight": self._arr(w), "bias": self._arr(b)}
            return [self.add(path, node, srcs)], (m.out_features,)
        if isinstance(m, (BatchNorm2d, BatchNorm1d)):
            self._fold(m, path, where, srcs, shape)
            return srcs, shape
        if isinstance(m, LIF):
            return [self.add(path, self._lif(m, shape), srcs)], shape
        if isinstance(m, AvgPool2d) and not isinstance(m, MaxPool2d):
            k = int(m.kernel_size)
            if len(shape) != 3:
                raise ValueError(f"export_nir: {where}: expected a [C, H, W] input, got "
                                 f"{list(shape)}")
            typ = "SumPool2d" if isinstance(m, SumPool2d) else "AvgPool2d"
            node = {"type": typ, "kernel_size": np.array([k, k]),
                    "stride": np.array([k, k]), "padding": np.array([0, 0])}
            return [self.add(path, node, srcs)], (shape[0], shape[1] // k, shape[2] // k)
        if isinstance(m, Flatten):
            node = {"type": "Flatten", "input_type": np.array(shape, np.int64),
                    "start_dim": 0, "end_dim": -1}
            return [self.add(path, node, srcs)], (int(np.prod(shape)),)
        if isinstance(m, TimeMean):
            self.readout = True
            return srcs, shape
        why = "NIR has no max pooling" if isinstance(m, MaxPool2d) else (
            "no NIR equivalent (supported: Conv2d, Linear, BatchNorm after them, LIF, "
            "AvgPool2d, Flatten, TimeMean, in Sequential, SpikingResNet, BasicBlock or "
            "GraphModule)")
        raise ValueError(f"export_nir: {where}: {why}")

    def _arr(self, a):
        return np.ascontiguousarray(a, self.dtype)

    def _conv(self, m, path, where, srcs, shape):
        if len(shape) != 3 or shape[0] != m.in_channels:
            raise ValueError(f"export_nir: {where}: expected input [{m.in_channels}, H, W], "
                             f"got {list(shape)}")
        k, s, p = int(m.kernel_size), int(m.stride), int(m.padding)
        w = m.weight.data
        b = np.zeros(m.out_channels, w.dtype) if m.bias is None else m.bias.data
        node = {"type": "Conv2d", "input_shape": np.array(shape[1:], np.int64),
                "weight": self._arr(w), "stride": np.array([s, s]),
                "padding": np.array([p, p]), "dilation": np.array([1, 1]), "groups": 1,
                "bias": self._arr(b)}
        out = tuple((n + 2 * p - k) // s + 1 for n in shape[1:])
        if min(out) < 1:
            raise ValueError(f"export_nir: {where}: input {list(shape)} is smaller than the "
                             "kernel")
        return [self.add(path, node, srcs)], (m.out_channels,) + out

    def _fold(self, bn, path, where, srcs, shape):
        last = srcs[0] if len(srcs) == 1 else None
        node = self.nodes.get(last)
        if node is None or node["type"] not in ("Conv2d", "Affine") or \
                any(src == last for src, _ in self.edges):
            raise ValueError(f"export_nir: {where}: batch norm must directly follow a "
                             "Conv2d or Linear to be folded (NIR has no batch norm)")
        _expect(shape[:1], (bn.num_features,), where)
        scale = bn.weight.data.astype(np.float64) / np.sqrt(
            bn.running_var.astype(np.float64) + bn.eps)
        w = node["weight"].astype(np.float64)
        b = node["bias"].astype(np.float64)
        node["weight"] = self._arr(w * scale.reshape((-1,) + (1,) * (w.ndim - 1)))
        node["bias"] = self._arr((b - bn.running_mean) * scale + bn.bias.data)
        node.setdefault("metadata", {})["folded_batch_norm"] = path

    def _lif(self, m, shape):
        soft = m.v_reset is None
        v_reset = 0.0 if soft else float(m.v_reset)

        def full(v):
            return np.full(shape, v, np.float64)

        self.lifs.append(m)
        meta = {"reset_mode": "soft" if soft else "hard", "decay_input": bool(m.decay_input),
                "detach_reset": bool(m.detach_reset),
                "surrogate_alpha": float(m.surrogate_alpha)}
        return {"type": "LIF", "tau": full(m.tau * self.dt),
                "r": full(1.0 if m.decay_input else m.tau), "v_leak": full(v_reset),
                "v_threshold": full(m.v_threshold), "v_reset": full(v_reset), "metadata": meta}

    def _block(self, m, path, srcs, shape):
        x_srcs, x_shape = srcs, shape
        for name in ("conv1", "bn1", "sn1", "conv2", "bn2"):
            srcs, shape = self.emit(getattr(m, name), _join(path, name), srcs, shape)
        if m.downsample is None:
            short, s_shape = x_srcs, x_shape
        else:
            short, s_shape = self.emit(m.downsample, _join(path, "downsample"), x_srcs,
                                       x_shape)
        _expect(s_shape, shape, f"'{path}' (BasicBlock shortcut)")
        return self.emit(m.sn2, _join(path, "sn2"), srcs + short, shape)

    def _graph(self, m, path, srcs, shape):
        outs = {m._input: (srcs, shape)}
        for name in m._names:
            ins = [outs[p] for p in m._preds[name]]
            for _, s in ins[1:]:
                _expect(s, ins[0][1], f"'{_join(path, name)}' (inputs of a sum)")
            outs[name] = self.emit(m.layer(name), _join(path, m._attr[name]),
                                   [n for srcs_, _ in ins for n in srcs_], ins[0][1])
        ins = [outs[p] for p in m._output_preds]
        srcs, shape = [n for s, _ in ins for n in s], ins[0][1]
        if m.readout is not None:
            srcs, shape = self.emit(m.readout, _join(path, "readout"), srcs, shape)
        return srcs, shape


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else str(name)


def _expect(got, want, where):
    if tuple(got) != tuple(want):
        raise ValueError(f"shape mismatch at {where}: expected {list(want)}, got {list(got)}")


def _summary(values):
    values = set(values)
    return values.pop() if len(values) == 1 else "mixed"


def model_to_nir(model, dt=1.0, input_shape=(3, 32, 32)):
    """The NIR graph of ``model`` as ``dict(nodes, edges, metadata)`` (plain dicts and
    arrays, what :func:`export_nir` writes)."""
    from .._version import __version__

    if not dt > 0:
        raise ValueError(f"export_nir: dt must be > 0, got {dt}")
    ex = _Exporter(dt, model.dtype)
    shape = tuple(int(n) for n in input_shape)
    ex.nodes["input"] = {"type": "Input", "shape": np.array(shape, np.int64)}
    srcs, shape = ex.emit(model, "", ["input"], shape)
    if "output" in ex.nodes:
        raise ValueError("export_nir: a layer is named 'output', which NIR reserves")
    ex.add("output", {"type": "Output", "shape": np.array(shape, np.int64)}, srcs)
    lifs = ex.lifs
    resets = _summary("soft" if m.v_reset is None else "hard" for m in lifs) if lifs else "none"
    meta = {"snnlite_version": __version__, "dt": float(dt), "threshold": ">=",
            "reset_mode": resets,
            "decay_input": _summary(bool(m.decay_input) for m in lifs) if lifs else True,
            "readout": READOUT_MEAN if ex.readout else "none",
            "discretisation": "forward_euler", "initial_membrane": "v_reset"}
    return {"nodes": ex.nodes, "edges": ex.edges, "metadata": meta}


def export_nir(model, path, dt=1.0, input_shape=(3, 32, 32)):
    """Write ``model`` to ``path`` as a NIR graph (HDF5), atomically: on any error no file
    is left behind. ``input_shape`` is one sample without time and batch, ``dt`` the
    time step the LIF time constants are scaled by (see the module docstring)."""
    graph = model_to_nir(model, dt, input_shape)

    def write(tmp):
        _write_h5(tmp, graph)
        mask = os.umask(0)  # the temporary file is private; give the result normal rights
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)

    atomic_write(path, write)
    return Path(path)


def _put(group, key, value):
    if isinstance(value, str):
        group.create_dataset(key, data=value, dtype=h5py.string_dtype())
    elif isinstance(value, np.ndarray) and value.ndim >= 1 and value.size >= 64:
        group.create_dataset(key, data=value, compression="gzip", compression_opts=4)
    else:
        group.create_dataset(key, data=value)


def _write_h5(tmp, graph):
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


# ============================================================================ import
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


class _Importer:
    def __init__(self, graph, dt, path):
        self.g, self.dt, self.path = graph, dt, path

    def fail(self, name, msg):
        node = self.g["nodes"].get(name, {})
        raise ValueError(f"{self.path}: NIR node {name!r} ({node.get('type', '?')}): {msg}")

    def field(self, name, key, ndim=None):
        node = self.g["nodes"][name]
        if key not in node:
            self.fail(name, f"missing field '{key}'")
        v = node[key]
        if ndim is not None and np.ndim(v) != ndim:
            self.fail(name, f"field '{key}' should have {ndim} dimension(s), got shape "
                            f"{np.shape(v)}")
        return v

    def pair(self, name, key):
        """An int or a pair of equal ints (square kernels, strides, paddings)."""
        v = np.asarray(self.field(name, key))
        if v.dtype.kind not in "iu" or v.size not in (1, 2) or len(set(v.ravel())) != 1:
            self.fail(name, f"{key} must be one integer or two equal ones, got {v.tolist()}")
        return int(v.ravel()[0])

    def layer(self, name, shape):
        """(snnlite layer or None, output shape) for node ``name`` fed ``shape``."""
        node = self.g["nodes"][name]
        typ = node["type"]
        if typ == "Output":
            _expect_node(self, name, shape, tuple(np.ravel(self.field(name, "shape"))),
                         "output")
            return None, shape
        if typ == "Conv2d":
            return self.conv(name, shape)
        if typ in ("Affine", "Linear"):
            w = np.asarray(self.field(name, "weight", 2))
            _float(self, name, "weight", w)
            _expect_node(self, name, shape, (w.shape[1],), "input")
            lin = Linear(w.shape[1], w.shape[0], bias=typ == "Affine", dtype=w.dtype)
            lin.weight.data[...] = w
            if typ == "Affine":
                b = np.asarray(self.field(name, "bias"))
                if b.shape != (w.shape[0],):
                    self.fail(name, f"bias shape {b.shape} does not match weight {w.shape}")
                lin.bias.data[...] = b
            return lin, (w.shape[0],)
        if typ == "LIF":
            return self.lif(name, shape), shape
        if typ in ("AvgPool2d", "SumPool2d"):
            k, s, p = (self.pair(name, f) for f in ("kernel_size", "stride", "padding"))
            if s != k or p != 0:
                self.fail(name, f"only stride = kernel_size and no padding are supported, "
                                f"got kernel {k}, stride {s}, padding {p}")
            if len(shape) != 3:
                self.fail(name, f"expected a [C, H, W] input, got {list(shape)}")
            layer = SumPool2d(k) if typ == "SumPool2d" else AvgPool2d(k)
            return layer, (shape[0], shape[1] // k, shape[2] // k)
        if typ == "Flatten":
            start, end = int(self.field(name, "start_dim")), int(self.field(name, "end_dim"))
            if "input_type" in node and node["input_type"] is not None:
                _expect_node(self, name, shape, tuple(np.ravel(node["input_type"])), "input")
            if start != 0 or end not in (-1, len(shape) - 1):
                self.fail(name, f"only flattening every axis (start_dim 0, end_dim -1) is "
                                f"supported, got start_dim {start}, end_dim {end}")
            return Flatten(), (int(np.prod(shape)),)
        if typ == "Input":
            self.fail(name, "a second Input node")
        self.fail(name, f"unsupported node type (supported: {', '.join(SUPPORTED_NODES)})")

    def conv(self, name, shape):
        w = np.asarray(self.field(name, "weight", 4))
        _float(self, name, "weight", w)
        O, C, kh, kw = w.shape
        if kh != kw:
            self.fail(name, f"only square kernels are supported, got {kh}x{kw}")
        pad = self.field(name, "padding")
        s = self.pair(name, "stride")
        if isinstance(pad, str):
            if pad == "valid":
                p = 0
            elif pad == "same" and kh % 2 == 1 and s == 1:
                p = kh // 2
            else:
                self.fail(name, f"padding {pad!r} is not supported with kernel {kh}, "
                                f"stride {s}")
        else:
            p = self.pair(name, "padding")
        if self.pair(name, "dilation") != 1 or int(self.field(name, "groups")) != 1:
            self.fail(name, "only dilation 1 and groups 1 are supported")
        if len(shape) != 3 or shape[0] != C:
            self.fail(name, f"expects input [{C}, H, W], gets {list(shape)}")
        in_hw = self.g["nodes"][name].get("input_shape")
        if in_hw is not None and tuple(np.ravel(in_hw)) != tuple(shape[1:]):
            self.fail(name, f"input_shape {np.ravel(in_hw).tolist()} does not match the "
                            f"incoming {list(shape[1:])}")
        b = np.asarray(self.field(name, "bias"))
        if b.shape != (O,):
            self.fail(name, f"bias shape {b.shape} does not match {O} output channels")
        conv = Conv2d(C, O, kh, s, p, bias=True, dtype=w.dtype)
        conv.weight.data[...] = w
        conv.bias.data[...] = b
        out = tuple((n + 2 * p - kh) // s + 1 for n in shape[1:])
        return conv, (O,) + out

    def lif(self, name, shape):
        meta = self.g["nodes"][name].get("metadata", {})
        vals = {}
        for key in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
            a = np.asarray(self.field(name, key), np.float64)
            if a.shape not in ((), tuple(shape)):
                self.fail(name, f"{key} has shape {list(a.shape)}, the incoming neurons "
                                f"{list(shape)}")
            if a.size and not np.all(a == a.ravel()[0]):
                self.fail(name, f"{key} differs between neurons; snnlite's LIF needs one "
                                "value per layer")
            vals[key] = float(a.ravel()[0])
        tau = vals["tau"] / self.dt
        if not tau > 1:
            self.fail(name, f"tau / dt = {tau} must be > 1")
        r = vals["r"]
        if math.isclose(r, 1.0, rel_tol=1e-9):
            decay_input = True
        elif math.isclose(r, tau, rel_tol=1e-6):
            decay_input = False
        else:
            self.fail(name, f"r = {r} is neither 1 (decay_input) nor tau / dt = {tau}")
        soft = meta.get("reset_mode") == "soft"
        if soft and (vals["v_leak"] != 0 or vals["v_reset"] != 0):
            self.fail(name, "soft reset needs v_leak = v_reset = 0, got "
                            f"{vals['v_leak']}, {vals['v_reset']}")
        if vals["v_leak"] != vals["v_reset"]:
            self.fail(name, f"v_leak = {vals['v_leak']} differs from v_reset = "
                            f"{vals['v_reset']}; snnlite's LIF leaks towards v_reset")
        kw = {}
        if "detach_reset" in meta:
            kw["detach_reset"] = bool(meta["detach_reset"])
        if "surrogate_alpha" in meta:
            kw["surrogate_alpha"] = float(meta["surrogate_alpha"])
        return LIF(tau=tau, v_threshold=vals["v_threshold"],
                   v_reset=None if soft else vals["v_reset"], decay_input=decay_input, **kw)


def _float(imp, name, key, a):
    if a.dtype.type not in (np.float32, np.float64):
        imp.fail(name, f"{key} must be float32 or float64, got {a.dtype}")


def _expect_node(imp, name, got, want, what):
    got, want = [int(n) for n in got], [int(n) for n in want]
    if got != want:
        imp.fail(name, f"shape mismatch: {what} declared {want}, the incoming edges carry "
                       f"{got}")


def _topo_order(graph, path):
    nodes, edges = graph["nodes"], graph["edges"]
    for a, b in edges:
        for n in (a, b):
            if n not in nodes:
                raise ValueError(f"{path}: NIR edge ({a!r}, {b!r}) names a missing node {n!r}")
    inputs = [n for n, v in nodes.items() if v["type"] == "Input"]
    outputs = [n for n, v in nodes.items() if v["type"] == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"{path}: expected one Input and one Output node, got inputs "
                         f"{inputs} and outputs {outputs}")
    preds = {n: [] for n in nodes}
    succs = {n: [] for n in nodes}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    order, ready, indeg = [], [inputs[0]], {n: len(p) for n, p in preds.items()}
    if indeg[inputs[0]]:
        raise ValueError(f"{path}: the Input node {inputs[0]!r} has incoming edges")
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s in succs[n]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    stuck = [n for n in nodes if n not in order]
    if stuck:
        raise ValueError(f"{path}: NIR nodes {stuck} are unreachable from the input or "
                         "in a cycle (recurrent graphs are not supported)")
    dead = [n for n in order if not succs[n] and n != outputs[0]]
    if dead:
        raise ValueError(f"{path}: NIR nodes {dead} do not lead to the Output node")
    return order, preds, inputs[0], outputs[0]


def import_nir(path, dt=None):
    """Rebuild a snnlite model from the NIR graph in ``path``.

    ``dt`` (default: the file's ``dt`` metadata, else 1.0) converts NIR time constants to
    steps: ``tau = tau_nir / dt``. A chain becomes a ``Sequential``, any other acyclic
    graph a :class:`GraphModule`; a ``readout = "mean_over_time"`` in the metadata adds a
    final ``TimeMean``. Parameters keep the dtype stored in the file.
    """
    graph = read_nir(path)
    meta = graph["metadata"]
    if dt is None:
        dt = float(meta.get("dt", 1.0))
    if not dt > 0:
        raise ValueError(f"import_nir: dt must be > 0, got {dt}")
    order, preds, inp, out = _topo_order(graph, path)
    imp = _Importer(graph, dt, path)
    shapes = {inp: tuple(int(n) for n in np.ravel(imp.field(inp, "shape")))}
    layers = OrderedDict()
    for name in order[1:]:
        ins = [shapes[p] for p in preds[name]]
        for s, p in zip(ins[1:], preds[name][1:]):
            if s != ins[0]:
                imp.fail(name, f"incoming edges carry different shapes: "
                               f"{preds[name][0]!r} {list(ins[0])}, {p!r} {list(s)}")
        layer, shapes[name] = imp.layer(name, ins[0])
        if layer is not None:
            layers[name] = layer
    readout = TimeMean() if meta.get("readout") == READOUT_MEAN else None
    names = list(layers)
    chain = [inp, *names, out]
    if all(preds[b] == [a] for a, b in itertools.pairwise(chain)) and len(order) == len(chain):
        model = Sequential(*layers.values(), *([readout] if readout else []))
    else:
        model = GraphModule(layers, {n: preds[n] for n in names}, preds[out], inp, readout)
    return model.eval()
