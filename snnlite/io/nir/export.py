"""snnlite model -> NIR graph, from the model's traced graph (see :mod:`snnlite.io.nir`)."""
import os
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..._version import __version__
from ...nn.fold import fold_bn
from ...nn.graph import INPUT, trace
from ..checkpoint import atomic_write
from .h5 import READOUT_MEAN, write_nir_h5
from .neurons import to_nir

DEFAULT_DT = 1e-4
"""The time step exports assume unless told: the default of SpikingJelly's and snnTorch's
NIR importers (Norse's ``from_nir`` needs ``dt=1e-4`` passed; see the README)."""


class _Exporter:
    """Turns the traced graph's nodes, in order, into NIR nodes (plain dicts) and edges.

    ``alias[name]`` lists the NIR nodes whose sum is the value of graph node ``name``: one
    node for a layer, the node it folded into for a batch norm, both sides for an ``add``
    (NIR sums the edges into a node), so a residual join needs no node of its own.
    """

    def __init__(self, graph, dt, dtype):
        self.graph, self.dt, self.dtype = graph, float(dt), dtype
        self.nodes, self.edges, self.lifs, self.readout = OrderedDict(), [], [], False
        self.alias = {INPUT: ["input"]}
        self.folded = {}  # conv/affine node -> the batch norm folded into it

    def add(self, n, node):
        name = n.name.replace(".", "_")
        if name in self.nodes:
            raise ValueError(f"export_nir: two nodes named {name!r}")
        self.nodes[name] = node
        self.edges.extend((s, name) for s in self.sources(n))
        self.alias[n.name] = [name]

    def sources(self, n):
        return [s for i in n.inputs for s in self.alias[i]]

    def arr(self, a):
        return np.ascontiguousarray(a, self.dtype)

    def emit(self, n):
        m, where = n.module, f"'{n.name}' ({type(n.module).__name__})"
        if n.kind == "conv":
            k, s, p = int(m.kernel_size), int(m.stride), int(m.padding)
            w = m.weight.data
            b = np.zeros(m.out_channels, w.dtype) if m.bias is None else m.bias.data
            self.add(n, {"type": "Conv2d", "input_shape": np.array(n.in_shape[1:], np.int64),
                         "weight": self.arr(w), "stride": np.array([s, s]),
                         "padding": np.array([p, p]), "dilation": np.array([1, 1]),
                         "groups": 1, "bias": self.arr(b)})
        elif n.kind == "linear":
            w = m.weight.data
            b = np.zeros(m.out_features, w.dtype) if m.bias is None else m.bias.data
            self.add(n, {"type": "Affine", "weight": self.arr(w), "bias": self.arr(b)})
        elif n.kind == "bn":
            self.fold(n, where)
        elif n.kind == "lif":
            self.lifs.append(m)
            self.add(n, to_nir(m, n.out_shape, self.dt))
        elif n.kind == "recurrent":
            self.recurrent(n, m)
        elif n.kind == "scale":
            self.add(n, {"type": "Scale", "scale": self.arr(m.scale.data)})
        elif n.kind == "threshold":
            self.add(n, {"type": "Threshold", "threshold": self.arr(m.threshold)})
        elif n.kind in ("avgpool", "sumpool"):
            k = int(m.kernel_size)
            typ = "SumPool2d" if n.kind == "sumpool" else "AvgPool2d"
            self.add(n, {"type": typ, "kernel_size": np.array([k, k]),
                         "stride": np.array([k, k]), "padding": np.array([0, 0])})
        elif n.kind == "flatten":
            self.add(n, {"type": "Flatten", "input_type": np.array(n.in_shape, np.int64),
                         "start_dim": 0, "end_dim": -1})
        elif n.kind == "add":
            self.alias[n.name] = self.sources(n)
        elif n.kind == "mean":
            after = self.graph.consumers(n.name)
            if after:
                raise ValueError(f"export_nir: TimeMean must be the last layer, but "
                                 f"'{after[0].name}' follows it")
            self.readout = True
            self.alias[n.name] = self.sources(n)
        else:
            why = "NIR has no max pooling" if n.kind == "maxpool" else (
                "no NIR equivalent (supported: Conv2d, Linear, BatchNorm after them, LIF, "
                "IF, CubaLIF, Recurrent, Scale, Threshold, AvgPool2d, SumPool2d, Flatten, "
                "TimeMean, residual sums)")
            raise ValueError(f"export_nir: {where}: {why}")

    def fold(self, n, where):
        src = self.graph[n.inputs[0]]
        node = self.nodes.get(self.alias[src.name][0]) if src.kind in ("conv", "linear") \
            else None
        if node is None or len(self.graph.consumers(src.name)) != 1:
            raise ValueError(f"export_nir: {where}: batch norm must directly follow a "
                             "Conv2d or Linear to be folded (NIR has no batch norm)")
        w, b = fold_bn(node["weight"], node["bias"], n.module)
        node["weight"], node["bias"] = self.arr(w), self.arr(b)
        self.folded[self.alias[src.name][0]] = n.name  # graph metadata: nir 1.0.4 refuses
        self.alias[n.name] = self.alias[src.name]     # metadata on a Conv2d node

    def recurrent(self, n, m):
        """The cell as a cycle: the neuron node (named after the layer), its feedback
        ``<name>_recurrent`` (Affine or Linear) from the neuron back into it."""
        self.lifs.append(m.neuron)
        self.add(n, to_nir(m.neuron, n.out_shape, self.dt))
        name, lin = self.alias[n.name][0], m.recurrent
        fb = f"{name}_recurrent"
        if fb in self.nodes:
            raise ValueError(f"export_nir: two nodes named {fb!r}")
        self.nodes[fb] = {"type": "Linear", "weight": self.arr(lin.weight.data)} \
            if lin.bias is None else {"type": "Affine", "weight": self.arr(lin.weight.data),
                                      "bias": self.arr(lin.bias.data)}
        self.edges.extend([(name, fb), (fb, name)])


def _summary(values):
    values = set(values)
    return values.pop() if len(values) == 1 else "mixed"


def model_to_nir(model, dt=DEFAULT_DT, input_shape=(3, 32, 32)):
    """The NIR graph of ``model`` as ``dict(nodes, edges, metadata)`` (plain dicts and
    arrays, what :func:`export_nir` writes)."""
    if not dt > 0:
        raise ValueError(f"export_nir: dt must be > 0, got {dt}")
    shape = tuple(int(n) for n in input_shape)
    try:
        graph = trace(model, shape)
    except ValueError as e:
        raise ValueError(f"export_nir: {e}") from None
    ex = _Exporter(graph, dt, model.dtype)
    ex.nodes["input"] = {"type": "Input", "shape": np.array(shape, np.int64)}
    for n in graph.nodes[1:]:
        ex.emit(n)
    if "output" in ex.nodes:
        raise ValueError("export_nir: a layer is named 'output', which NIR reserves")
    out = graph[graph.output]
    ex.nodes["output"] = {"type": "Output", "shape": np.array(out.out_shape, np.int64)}
    ex.edges.extend((s, "output") for s in ex.alias[out.name])
    lifs = ex.lifs
    resets = _summary("soft" if m.v_reset is None else "hard" for m in lifs) if lifs else "none"
    decays = [bool(m.decay_input) for m in lifs if m.dynamics == "lif"]
    meta = {"snnlite_version": __version__, "dt": float(dt), "threshold": ">=",
            "reset_mode": resets, "decay_input": _summary(decays) if decays else True,
            "neurons": _summary(m.dynamics for m in lifs) if lifs else "none",
            "readout": READOUT_MEAN if ex.readout else "none",
            "discretisation": "forward_euler", "initial_membrane": "v_reset",
            "recurrence": "previous_step"}
    if ex.folded:
        meta["folded_batch_norm"] = dict(ex.folded)
    return {"nodes": ex.nodes, "edges": ex.edges, "metadata": meta}


def export_nir(model, path, dt=DEFAULT_DT, input_shape=(3, 32, 32)):
    """Write ``model`` to ``path`` as a NIR graph (HDF5), atomically: on any error no file
    is left behind. ``input_shape`` is one sample without time and batch, ``dt`` the
    time step the neurons' time constants are scaled by (default :data:`DEFAULT_DT`, what
    SpikingJelly's and snnTorch's importers assume; see :mod:`snnlite.io.nir`)."""
    graph = model_to_nir(model, dt, input_shape)

    def write(tmp):
        write_nir_h5(tmp, graph)
        mask = os.umask(0)  # the temporary file is private; give the result normal rights
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)

    atomic_write(path, write)
    return Path(path)
