"""Containers: modules made of child modules, defined by their dataflow.

A container writes ``dataflow(x)`` the way one writes a forward: it calls its children and
adds values for a residual join. It is never run directly: ``forward`` traces it (see
:mod:`snnlite.nn.graph`) for the input's shape and runs the traced graph through a
:class:`~snnlite.nn.plan.Plan`, fused where ``fuse`` is set on the container called.
"""
import math
import re

import numpy as np

from . import functional as F
from .graph import trace
from .module import Module, is_time_broadcast
from .plan import Plan


class Container(Module):
    fuse = True
    """Run ``BatchNorm2d [+ residual] -> LIF [-> AvgPool2d]`` fused (see
    :mod:`snnlite.nn.fusion`); read from the container that is called."""

    check_input = True
    """Refuse an input holding NaN or infinity (a NaN membrane never spikes, so it would
    pass unseen as silence). Costs one float64 sum over the input (about 0.1% of a
    forward); set False on a model whose inputs are known finite."""

    def dataflow(self, x):
        raise NotImplementedError

    def graph(self, input_shape):
        """The traced graph for per-sample inputs of ``input_shape``."""
        return trace(self, input_shape)

    def forward(self, x):
        F.check_float("x", x)
        name = type(self).__name__
        if x.ndim < 2:
            raise ValueError(f"{name}: expected input [T, B, ...], got shape {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name}: expected at least one time step and one sample "
                             f"(input [T, B, ...]), got shape {x.shape}")
        if self.check_input:
            xs = x[:1] if is_time_broadcast(x) else x  # direct coding: one image, T views
            with np.errstate(over="ignore", invalid="ignore"):
                total = xs.sum(dtype=np.float64)
            if not (math.isfinite(total) or np.isfinite(xs).all()):
                raise ValueError(f"{name}: input x holds NaN or infinity (at "
                                 f"{np.argwhere(~np.isfinite(x))[0].tolist()})")
        self._plan = Plan(trace(self, x.shape[2:]), self.fuse)
        return self._plan.forward(x)

    def backward(self, dy):
        plan = getattr(self, "_plan", None)
        if plan is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward first")
        return plan.backward(dy, self.requires_input_grad)


class Sequential(Container):
    """Children named ``0, 1, 2, ...``, applied in order."""

    def __init__(self, *modules):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: item {i} is {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def __getitem__(self, i):
        return self.layers()[i]

    def __len__(self):
        return len(self.layers())

    def layers(self):
        return [m for _, m in self.named_children()]

    def dataflow(self, x):
        for m in self.layers():
            x = m(x)
        return x


class GraphModule(Container):
    """A graph of layers: each node receives the sum of its predecessors' outputs.

    ``layers``: {node name: Module} in a topological order; ``preds``: {node name: list of
    predecessor names} (the graph input is called ``input_name``); ``output_preds``: the
    nodes summed into the output. ``readout`` (e.g. :class:`TimeMean`) is applied last.
    Layers are children named after their nodes (made attribute-safe), so ``state_dict``
    keys are ``<node>.weight``, ...
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

    def dataflow(self, x):
        values = {self._input: x}
        for name in self._names:
            values[name] = self.layer(name)(_sum(values, self._preds[name]))
        y = _sum(values, self._output_preds)
        return y if self.readout is None else self.readout(y)

    def extra_repr(self):
        return f"nodes={len(self._names)}, output={self._output_preds}"


def _sum(values, names):
    out = values[names[0]]
    for n in names[1:]:
        out = out + values[n]
    return out


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


__all__ = ["Container", "GraphModule", "Sequential"]
