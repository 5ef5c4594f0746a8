"""The model as a graph: ``trace(model, input_shape)`` -> :class:`Graph`.

Every consumer that needs to know what a model is made of (the fused execution plan, the
event compiler, NIR export, dense reference counts, FLOP and neuron counting) reads this
one graph; none walks the module tree or knows a block's field names.

A container declares its dataflow by calling its children (``dataflow(x)``, written like a
forward, with ``+`` for a residual sum); tracing runs it on a :class:`Proxy`, a symbolic
value that records each call. A layer contributes one node of its ``kind`` with the shape
its ``output_shape`` gives. Node kinds::

    input     the network input (one node, named "input")
    conv      Conv2d               linear   Linear
    bn        BatchNorm2d/1d       lif      spiking neurons: LIF, IF, CubaLIF
                                            (``module.dynamics`` says which)
    recurrent Recurrent: a neuron layer fed back its own spikes (the cell is the module)
    avgpool   AvgPool2d            sumpool  SumPool2d        maxpool  MaxPool2d
    scale     Scale (elementwise)  threshold Threshold (a stateless spike)
    flatten   Flatten              mean     TimeMean (the mean over time, the readout)
    add       the elementwise sum of two inputs (a residual join), no module
    module    any other leaf module: runs, but has no shape rule

Shapes are per sample, without time and batch: (C, H, W) for maps, (F,) for vectors.
Names are the modules' dotted ``state_dict`` prefixes (``"3"``, ``"layer1.0.conv2"``); an
``add`` is named after the container it joins in (``"layer1.0.add"``).

Adding a layer type means giving it a ``kind`` and an ``output_shape`` and teaching each
consumer its per-kind rule; nothing else.
"""
from dataclasses import dataclass

KINDS = ("input", "conv", "linear", "bn", "lif", "recurrent", "avgpool", "sumpool", "maxpool",
         "scale", "threshold", "flatten", "mean", "add", "module")
INPUT = "input"


@dataclass(frozen=True)
class Node:
    """One operation of the traced model.

    name: dotted module name (unique in the graph); kind: one of :data:`KINDS`; module: the
    layer (None for ``input`` and ``add``); inputs: names of the nodes it reads, in order;
    in_shape / out_shape: per-sample shapes (None where a ``module`` node hides them).
    """

    name: str
    kind: str
    module: object
    inputs: tuple
    in_shape: tuple | None
    out_shape: tuple | None

    @property
    def size(self):
        """Elements of one sample's output (neurons, for a ``lif`` node)."""
        n = 1
        for d in self.out_shape:
            n *= d
        return n


class Graph:
    """Nodes in topological (execution) order; ``output`` names the node whose value the
    model returns."""

    def __init__(self, nodes, output):
        self.nodes = list(nodes)
        self.output = output
        self._by_name = {n.name: n for n in self.nodes}
        self._consumers = {n.name: [] for n in self.nodes}
        for n in self.nodes:
            for i in n.inputs:
                self._consumers[i].append(n)

    @property
    def input(self):
        return self.nodes[0]

    def __getitem__(self, name):
        return self._by_name[name]

    def __contains__(self, name):
        return name in self._by_name

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self):
        return len(self.nodes)

    def consumers(self, name):
        """Nodes that read the output of node ``name``, in order."""
        return list(self._consumers[name])

    def of_kind(self, *kinds):
        return [n for n in self.nodes if n.kind in kinds]

    def neurons(self):
        """{LIF node name: neurons per sample}."""
        return {n.name: n.size for n in self.of_kind("lif")}

    def __repr__(self):
        rows = [f"Graph({len(self.nodes)} nodes, output {self.output!r})"]
        for n in self.nodes:
            src = ", ".join(n.inputs)
            shape = "?" if n.out_shape is None else "x".join(map(str, n.out_shape))
            rows.append(f"  {n.name:<24} {n.kind:<8} {shape:<12} <- {src}")
        return "\n".join(rows)


class Proxy:
    """A symbolic value during tracing: the node that produces it and its shape."""

    __slots__ = ("tracer", "name", "shape")

    def __init__(self, tracer, name, shape):
        self.tracer, self.name, self.shape = tracer, name, shape

    def __add__(self, other):
        return self.tracer.add(self, other)

    __radd__ = __add__

    def __repr__(self):
        return f"Proxy({self.name!r}, {self.shape})"


class _Tracer:
    def __init__(self, root):
        self.names = {}
        for name, m in root.named_modules():
            if id(m) in self.names:
                raise ValueError(f"trace: module {name!r} is also {self.names[id(m)]!r}; a "
                                 "module used twice (shared weights) cannot be traced")
            self.names[id(m)] = name
        self.nodes, self.scopes, self.taken = [], [], set()

    def node(self, name, kind, module, inputs, in_shape, out_shape):
        if name in self.taken:
            raise ValueError(f"trace: module {name!r} is called twice")
        self.taken.add(name)
        self.nodes.append(Node(name, kind, module, tuple(inputs), in_shape, out_shape))
        return Proxy(self, name, out_shape)

    def call(self, module, x):
        name = self.names.get(id(module))
        if name is None:
            raise ValueError(f"trace: {type(module).__name__} is called but is not a child "
                             "of the traced model")
        dataflow = getattr(module, "dataflow", None)
        if dataflow is not None:  # a container: trace through it
            self.scopes.append(name)
            try:
                y = dataflow(x)
            finally:
                self.scopes.pop()
            if not isinstance(y, Proxy):
                raise TypeError(f"trace: {name or type(module).__name__}.dataflow returned "
                                f"{type(y).__name__}, not the traced value")
            return y
        kind = module.kind or "module"
        try:
            out = None if x.shape is None else module.output_shape(x.shape)
        except ValueError as e:
            raise ValueError(f"layer {name!r} ({type(module).__name__}): {e}") from None
        out = None if out is None else tuple(int(d) for d in out)
        return self.node(name or type(module).__name__, kind, module, [x.name], x.shape, out)

    def add(self, a, b):
        if not isinstance(b, Proxy):
            raise TypeError(f"trace: {a.name!r} + {type(b).__name__}: only traced values add")
        scope = self.scopes[-1] if self.scopes else ""
        base = f"{scope}.add" if scope else "add"
        name, i = base, 1
        while name in self.taken:
            name, i = f"{base}_{i}", i + 1
        if a.shape is not None and b.shape is not None and a.shape != b.shape:
            raise ValueError(f"{name}: adds {a.name!r} {list(a.shape)} to {b.name!r} "
                             f"{list(b.shape)}: shapes differ")
        return self.node(name, "add", None, [a.name, b.name], a.shape,
                         a.shape if a.shape is not None else b.shape)


def trace(model, input_shape):
    """The graph of ``model`` for inputs of per-sample shape ``input_shape`` (C, H, W) or
    (F,). Raises ``ValueError`` where a layer's shape rule rejects its input."""
    shape = tuple(int(d) for d in input_shape)
    t = _Tracer(model)
    if INPUT in (name for name, _ in model.named_modules()):
        raise ValueError(f"trace: a module is named {INPUT!r}, the graph input's name")
    x = t.node(INPUT, "input", None, (), None, shape)
    y = t.call(model, x)
    return Graph(t.nodes, y.name)


__all__ = ["INPUT", "KINDS", "Graph", "Node", "Proxy", "trace"]
