"""Execution of a traced graph: forward in node order, backward in reverse.

A :class:`Plan` turns a :class:`~snnlite.nn.graph.Graph` into units: one per node, except
where :func:`~snnlite.nn.fusion.fusion_groups` fuses ``[Conv2d ->] BatchNorm2d [+
residual] -> LIF [-> AvgPool2d]`` into one pass. Forward keeps each value only until its
last reader has run; backward sums the gradients of a value read several times (a
residual's input).

Time broadcast (see :mod:`snnlite.nn.module`): a layer fed a time-broadcast input returns
its gradient summed over time with a leading axis of 1; where such a gradient meets a
full ``(T, ...)`` one, both are summed over time, as autograd sums over an ``expand``.
"""
import numpy as np

from .fusion import FusedBNLIF, FusedConvBNLIF, fusion_groups
from .graph import INPUT
from .module import sum_over_time


class _Layer:
    def __init__(self, node):
        self.module, self.inputs, self.output = node.module, node.inputs, node.name

    def forward(self, x):
        return self.module.forward(x)

    def backward(self, dy):
        return (self.module.backward(dy),)

    def set_input_grad(self, flag):
        self.module.requires_input_grad = flag


class _Add:
    def __init__(self, node):
        self.inputs, self.output = node.inputs, node.name

    def forward(self, a, b):
        return a + b

    def backward(self, dy):
        return dy, dy

    def set_input_grad(self, flag):
        pass


class _Fused:
    def __init__(self, graph, names, residual):
        first = graph[names[0]]
        mods = [graph[n].module for n in names if graph[n].kind != "add"]
        self.unit = FusedConvBNLIF(*mods) if first.kind == "conv" else FusedBNLIF(*mods)
        self.inputs = first.inputs + ((residual,) if residual else ())
        self.output = names[-1]
        self.residual = residual is not None

    def forward(self, x, residual=None):
        return self.unit.forward(x, residual=residual)

    def backward(self, dy):
        dx = self.unit.backward(dy)
        return (dx, self.unit.dresidual) if self.residual else (dx,)

    def set_input_grad(self, flag):
        self.unit.requires_input_grad = flag


class Plan:
    """Units of ``graph`` (fused where ``fuse``), with ``forward(x)`` and ``backward(dy)``."""

    def __init__(self, graph, fuse=True):
        self.graph = graph
        # a group runs where its last node is: every input of the group is ready there
        groups = {names[-1]: (names, res) for names, res in fusion_groups(graph)} if fuse \
            else {}
        inside = {n for names, _ in groups.values() for n in names}
        self.units = []
        for node in graph.nodes[1:]:
            if node.name in groups:
                self.units.append(_Fused(graph, *groups[node.name]))
            elif node.name not in inside:
                self.units.append(_Add(node) if node.kind == "add" else _Layer(node))
        last = {}
        for i, u in enumerate(self.units):
            for name in u.inputs:
                last[name] = i
        self._frees = [[] for _ in self.units]
        for name, i in last.items():
            if name != graph.output:
                self._frees[i].append(name)

    def forward(self, x, record=None):
        """Run the units on x. With ``record`` (node names; unfused nodes only) returns
        ``(y, {name: copy of that node's output})``."""
        values, rec = {INPUT: x}, {}
        want, record = record is not None, set(record or ())
        for u, frees in zip(self.units, self._frees):
            values[u.output] = y = u.forward(*(values[n] for n in u.inputs))
            if u.output in record:
                rec[u.output] = np.array(y)
            for name in frees:
                del values[name]
        y = values[self.graph.output]
        return (y, rec) if want else y

    def backward(self, dy, input_grad=True):
        """Gradient wrt the input (None where ``input_grad`` is False: the units reading the
        input then skip their input gradient)."""
        for u in self.units:
            u.set_input_grad(input_grad if INPUT in u.inputs else True)
        grads = {self.graph.output: dy}
        for u in reversed(self.units):
            g = grads.pop(u.output, None)
            if g is None:  # the value reaches no output
                continue
            for name, d in zip(u.inputs, u.backward(g)):
                if d is not None:
                    _accumulate(grads, name, d)
        return grads.get(INPUT)


def _accumulate(grads, name, g):
    cur = grads.get(name)
    if cur is None:
        grads[name] = g
    elif cur.shape[0] != g.shape[0]:
        grads[name] = sum_over_time(cur) + sum_over_time(g)
    else:
        grads[name] = cur + g


__all__ = ["Plan"]
