"""NIR graph -> snnlite model (see :mod:`snnlite.io.nir` for what is accepted).

Steps: flatten nested ``NIRGraph`` nodes (:mod:`.graphs`); collapse every cycle into one
:class:`~snnlite.nn.Recurrent` node (a neuron whose output comes back to it through
``Affine``/``Linear``/``Scale`` nodes); order the nodes from the input; build each layer
from the shape its inputs carry.
"""
import itertools
import math
from collections import OrderedDict

import numpy as np

from ...nn import (
    AvgPool2d,
    Conv2d,
    Flatten,
    GraphModule,
    Linear,
    Recurrent,
    Scale,
    Sequential,
    SumPool2d,
    Threshold,
    TimeMean,
)
from .graphs import components, flatten, topo_order
from .h5 import MAX_TENSOR_BYTES, READOUT_MEAN, read_nir
from .neurons import NEURON_TYPES, NeuronReader, missing_dt_message, needs_dt

SUPPORTED_NODES = ("Input", "Output", "NIRGraph", "Conv2d", "Affine", "Linear", "Scale",
                   "LIF", "IF", "CubaLIF", "Threshold", "AvgPool2d", "SumPool2d", "Flatten")
FEEDBACK_TYPES = ("Affine", "Linear", "Scale")


class _Importer:
    def __init__(self, nodes, dt, path, cells=None, soft_reset=False):
        self.nodes, self.dt, self.path = nodes, dt, path
        self.cells = cells or {}
        self.neurons = NeuronReader(self, dt, soft_reset)

    def node(self, name):
        return self.nodes[name]

    def fail(self, name, msg):
        node = self.nodes.get(name, {})
        raise ValueError(f"{self.path}: NIR node {name!r} ({node.get('type', '?')}): {msg}")

    def field(self, name, key, ndim=None):
        node = self.nodes[name]
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

    def weight(self, name, key, ndim):
        w = np.asarray(self.field(name, key, ndim))
        if w.dtype.type not in (np.float32, np.float64):
            self.fail(name, f"{key} must be float32 or float64, got {w.dtype}")
        return w

    def layer(self, name, shape):
        """(snnlite layer or None, output shape) for node ``name`` fed ``shape``."""
        typ = self.nodes[name]["type"]
        if typ == "Output":
            want = self.nodes[name].get("shape")
            if want is not None:
                _expect_node(self, name, shape, _drop_lead(np.ravel(want), shape), "output")
            return None, shape
        if name in self.cells:
            return self.cell(name, shape)
        if typ in NEURON_TYPES:
            return self.neurons.read(name, shape), shape
        handler = {"Conv2d": self.conv, "Affine": self.linear, "Linear": self.linear,
                   "Scale": self.scale, "Threshold": self.threshold,
                   "AvgPool2d": self.pool, "SumPool2d": self.pool,
                   "Flatten": self.flatten}.get(typ)
        if handler is None:
            if typ == "Input":
                self.fail(name, "a second Input node")
            self.fail(name, f"unsupported node type (supported: {', '.join(SUPPORTED_NODES)})")
        return handler(name, shape)

    def linear(self, name, shape):
        typ = self.nodes[name]["type"]
        w = self.weight(name, "weight", 2)
        _expect_node(self, name, shape, (w.shape[1],), "input")
        lin = Linear(w.shape[1], w.shape[0], bias=typ == "Affine", dtype=w.dtype)
        lin.weight.data[...] = w
        if typ == "Affine":
            b = np.asarray(self.field(name, "bias"))
            if b.shape != (w.shape[0],):
                self.fail(name, f"bias shape {b.shape} does not match weight {w.shape}")
            lin.bias.data[...] = b
        return lin, (w.shape[0],)

    def scale(self, name, shape):
        s = self.weight(name, "scale", None)
        if s.shape not in ((), (1,), tuple(shape)):
            self.fail(name, f"scale has shape {list(s.shape)}, the input {list(shape)}")
        return Scale(np.broadcast_to(s, shape).copy()), shape

    def threshold(self, name, shape):
        t = self.weight(name, "threshold", None)
        if t.shape not in ((), (1,), tuple(shape)):
            self.fail(name, f"threshold has shape {list(t.shape)}, the input {list(shape)}")
        return Threshold(np.broadcast_to(t, shape).copy()), shape

    def pool(self, name, shape):
        k, s, p = (self.pair(name, f) for f in ("kernel_size", "stride", "padding"))
        if s != k or p != 0:
            self.fail(name, f"only stride = kernel_size and no padding are supported, got "
                            f"kernel {k}, stride {s}, padding {p}")
        if len(shape) != 3:
            self.fail(name, f"expected a [C, H, W] input, got {list(shape)}")
        if shape[1] % k or shape[2] % k:
            self.fail(name, f"input {list(shape)} is not divisible by the kernel {k}")
        layer = SumPool2d(k) if self.nodes[name]["type"] == "SumPool2d" else AvgPool2d(k)
        return layer, (shape[0], shape[1] // k, shape[2] // k)

    def flatten(self, name, shape):
        node = self.nodes[name]
        start, end = int(self.field(name, "start_dim")), int(self.field(name, "end_dim"))
        if node.get("input_type") is not None:
            _expect_node(self, name, shape, tuple(np.ravel(node["input_type"])), "input")
        if start != 0 or end not in (-1, len(shape) - 1):
            self.fail(name, f"only flattening every axis (start_dim 0, end_dim -1) is "
                            f"supported, got start_dim {start}, end_dim {end}")
        return Flatten(), (int(np.prod(shape)),)

    def conv(self, name, shape):
        w = self.weight(name, "weight", 4)
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
        in_hw = self.nodes[name].get("input_shape")
        if in_hw is not None and tuple(np.ravel(in_hw)) != tuple(shape[1:]):
            self.fail(name, f"input_shape {np.ravel(in_hw).tolist()} does not match the "
                            f"incoming {list(shape[1:])}")
        b = np.asarray(self.field(name, "bias"))
        if b.shape != (O,):
            self.fail(name, f"bias shape {b.shape} does not match {O} output channels")
        out = tuple((n + 2 * p - kh) // s + 1 for n in shape[1:])
        if min(out) < 1:
            self.fail(name, f"input {list(shape)} is too small for kernel {kh}")
        conv = Conv2d(C, O, kh, s, p, bias=True, dtype=w.dtype)
        conv.weight.data[...] = w
        conv.bias.data[...] = b
        return conv, (O,) + out

    def cell(self, name, shape):
        """A collapsed cycle: its neuron, fed back through the composed feedback chain
        (s -> chain[0] -> ... -> chain[-1] -> neuron); a single Affine/Linear keeps its
        arrays as they are."""
        chain = self.cells[name]
        if len(shape) != 1:
            self.fail(name, f"a recurrent neuron layer must be 1-D, gets {list(shape)}")
        neuron = self.neurons.read(name, shape)
        M = shape[0]
        parts = []
        for n in chain:
            layer, out = self.layer(n, (M,))
            if tuple(out) != (M,):
                self.fail(n, f"the feedback to {name!r} must map its {M} neurons to {M}, "
                             f"this node gives {list(out)}")
            parts.append(layer)
        has_bias = any(getattr(p, "bias", None) is not None for p in parts)
        if len(parts) == 1 and isinstance(parts[0], Linear):
            return Recurrent(neuron, parts[0]), shape
        W, b = np.eye(M), np.zeros(M)
        for p in parts:  # composed in float64
            if isinstance(p, Scale):
                A, c = np.diag(p.scale.data.astype(np.float64).ravel()), np.zeros(M)
            else:
                A = p.weight.data.astype(np.float64)
                c = np.zeros(M) if p.bias is None else p.bias.data.astype(np.float64)
            W, b = A @ W, A @ b + c
        dtype = (parts[0].scale if isinstance(parts[0], Scale) else parts[0].weight).data.dtype
        lin = Linear(M, M, bias=has_bias, dtype=dtype)
        lin.weight.data[...] = W
        if has_bias:
            lin.bias.data[...] = b
        return Recurrent(neuron, lin), shape


def _drop_lead(want, got):
    """A declared shape with a leading time or batch axis the graph does not carry
    ((1, F) or (T, F) for F features) is read as (F,)."""
    want = tuple(int(n) for n in want)
    if len(want) == len(got) + 1 and want[1:] == tuple(got):
        return want[1:]
    return want


def _expect_node(imp, name, got, want, what):
    got, want = [int(n) for n in got], [int(n) for n in want]
    if got != want:
        imp.fail(name, f"shape mismatch: {what} declared {want}, the incoming edges carry "
                       f"{got}")


def _collapse_cycles(nodes, edges, path):
    """(cells {neuron: feedback chain}, edges without the cycles' own edges, the chain
    nodes): each cycle must be one neuron whose output returns to it through a chain of
    feedback nodes that connect to nothing else; it becomes one node, the neuron's."""
    succs = {n: [] for n in nodes}
    for a, b in edges:
        succs[a].append(b)
    cells, inner = {}, set()
    for comp in components(list(nodes), succs):
        if len(comp) == 1 and comp[0] not in succs[comp[0]]:
            continue
        inside = set(comp)
        neurons = [n for n in comp if nodes[n]["type"] in NEURON_TYPES]
        others = [n for n in comp if n not in neurons]
        msg = (f"{path}: NIR nodes {sorted(comp)} form a cycle that is not a recurrent neuron "
               f"layer (one {'/'.join(NEURON_TYPES)} node whose output returns to it through "
               f"{'/'.join(FEEDBACK_TYPES)} nodes only)")
        if len(neurons) != 1 or any(nodes[n]["type"] not in FEEDBACK_TYPES for n in others):
            raise ValueError(msg)
        n, chain, cur = neurons[0], [], neurons[0]
        while True:  # follow the feedback path from the neuron back to it
            nxt = [x for x in succs[cur] if x in inside]
            if len(nxt) != 1 or len(chain) > len(comp):
                raise ValueError(msg)
            if nxt[0] == n:
                break
            cur = nxt[0]
            chain.append(cur)
        if not chain or sorted(chain) != sorted(others):
            raise ValueError(msg)
        for m in chain:  # the feedback nodes talk only to the cycle
            outside = sorted({a for a, b in edges if b == m and a not in inside} |
                             {b for a, b in edges if a == m and b not in inside})
            if outside:
                raise ValueError(f"{msg}; feedback node {m!r} also connects to {outside}")
        cells[n] = chain
        inner |= set(chain)
        edges = [(a, b) for a, b in edges if not (a in inside and b in inside)]
    return cells, edges, inner


def _graph(path, graph):
    nodes, edges = flatten(graph["nodes"], graph["edges"], path)
    for a, b in edges:
        for n in (a, b):
            if n not in nodes:
                raise ValueError(f"{path}: NIR edge ({a!r}, {b!r}) names a missing node {n!r}")
    return nodes, edges


def import_nir(path, dt=None, soft_reset=False):
    """Rebuild a snnlite model from the NIR graph in ``path``.

    ``dt`` converts NIR time constants to steps (``tau = tau_nir / dt``); by default it is
    the ``dt`` recorded in the file's metadata (snnlite writes it). A file without one
    that holds neurons raises an error saying which ``dt`` to pass. Nested graphs are
    flattened, each cycle becomes a :class:`~snnlite.nn.Recurrent` layer, a chain becomes a
    ``Sequential`` and any other graph a :class:`~snnlite.nn.GraphModule`; a ``readout =
    "mean_over_time"`` in the metadata adds a final ``TimeMean``. Parameters keep the
    dtype stored in the file.

    ``soft_reset=True`` makes every neuron reset by subtracting its threshold (the file's
    ``v_reset`` must be 0): what sinabs's ``IAF`` does and nir 1.0.4 describes for LIF,
    though NIR's nodes say "reset to v_reset".
    """
    if dt is not None and not (isinstance(dt, (int, float)) and dt > 0 and math.isfinite(dt)):
        raise ValueError(f"import_nir: dt must be a positive number, got {dt}")
    graph = read_nir(path)
    try:
        return _build(path, graph, dt, soft_reset)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        if isinstance(e, ValueError) and str(e).startswith(f"{path}: "):
            raise  # ours: it names the node and what is wrong
        raise ValueError(f"{path}: malformed NIR graph ({type(e).__name__}: {e})") from e


def _build(path, graph, dt, soft_reset):
    meta = graph["metadata"]
    nodes, edges = _graph(path, graph)
    if dt is None:
        if "dt" in meta:
            dt = float(meta["dt"])
        elif needs_dt(nodes):
            raise ValueError(missing_dt_message(path, nodes))
        else:
            dt = 1.0
    if not (dt > 0 and math.isfinite(dt)):
        raise ValueError(f"{path}: the dt recorded in the file is {dt}, not a positive number")
    cells, edges, inner = _collapse_cycles(nodes, edges, path)
    inputs = [n for n, v in nodes.items() if v["type"] == "Input"]
    outputs = [n for n, v in nodes.items() if v["type"] == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"{path}: expected one Input and one Output node, got inputs "
                         f"{inputs} and outputs {outputs}")
    inp, out = inputs[0], outputs[0]
    names = [n for n in nodes if n not in inner]
    preds = {n: [] for n in names}
    succs = {n: [] for n in names}
    for a, b in edges:
        preds[b].append(a)
        succs[a].append(b)
    order = topo_order(inp, names, preds, succs, path)
    dead = [n for n in order if not succs[n] and n != out]
    if dead:
        raise ValueError(f"{path}: NIR nodes {dead} do not lead to the Output node")
    imp = _Importer(nodes, dt, path, cells, bool(soft_reset))
    shapes = {inp: _input_shape(imp, inp, [nodes[s] for s in succs[inp]])}
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
    lnames = list(layers)
    chain = [inp, *lnames, out]
    if all(preds[b] == [a] for a, b in itertools.pairwise(chain)) and len(order) == len(chain):
        model = Sequential(*layers.values(), *([readout] if readout else []))
    else:
        model = GraphModule(layers, {n: preds[n] for n in lnames}, preds[out], inp, readout)
    return model.eval()


def _input_shape(imp, inp, first):
    raw = np.ravel(imp.field(inp, "shape"))
    if raw.dtype.kind not in "iu" or not len(raw) or (raw < 1).any():
        imp.fail(inp, f"shape must be positive integers, got {raw.tolist()}")
    shape = tuple(int(n) for n in raw)
    if math.prod(shape) * 8 > MAX_TENSOR_BYTES:  # layers broadcast arrays to such shapes
        imp.fail(inp, f"shape {list(shape)} is larger than any tensor snnlite reads "
                      f"({MAX_TENSOR_BYTES:,} bytes)")
    ins = {int(np.shape(v["weight"])[1]) for v in first
           if v["type"] in ("Affine", "Linear") and np.ndim(v.get("weight")) == 2}
    if len(shape) == 2 and len(ins) == 1 and shape[1] in ins and \
            all(v["type"] in ("Affine", "Linear") for v in first):
        return shape[1:]  # (T or 1, F): a leading axis that is time or batch
    return shape
