"""NIR graph -> snnlite model (see :mod:`snnlite.io.nir` for what is accepted)."""
import itertools
import math
from collections import OrderedDict

import numpy as np

from ...nn import (
    LIF,
    AvgPool2d,
    Conv2d,
    Flatten,
    GraphModule,
    Linear,
    Sequential,
    SumPool2d,
    TimeMean,
)
from .h5 import READOUT_MEAN, read_nir

SUPPORTED_NODES = ("Input", "Output", "Conv2d", "Affine", "Linear", "LIF", "AvgPool2d",
                   "SumPool2d", "Flatten")


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
