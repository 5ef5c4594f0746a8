"""``compile_model``: turn a snnlite SNN into an :class:`~snnlite.event.graph.EventNet`.

The model's traced graph (:func:`snnlite.nn.trace`) is read in order, each node's value
symbolic: a *source* (the network input or a population's spikes, perhaps average-pooled or
flattened on the way) or a pending *current* (projections into neurons not yet created, and
a bias). Synaptic layers turn a source into a current, BatchNorm folds into the current's
single projection, a residual ``add`` merges two currents (spikes join as an identity
projection), LIF turns a current into a new population, TimeMean closes the readout. Any
other node kind raises a ``TypeError`` naming the layer by its dotted name and type.
"""
from dataclasses import dataclass, replace

import numpy as np

from .. import nn
from ..nn.fold import fold_bn
from ..nn.graph import trace
from .graph import EventNet, Population, Projection

SUPPORTED = ("Conv2d, Linear, BatchNorm1d, BatchNorm2d (after them), LIF, IF, CubaLIF, "
             "Recurrent, AvgPool2d, SumPool2d and MaxPool2d (on spikes), Flatten, TimeMean, "
             "residual sums, in any container")


@dataclass
class _Source:
    pop: int  # -1: the network input
    shape: tuple  # (C, H, W) before pooling
    pool: int = 1
    flat: bool = False
    gain: float | None = None  # weight factor of the pooling on the way (None: average)


@dataclass
class _Current:
    projections: list
    bias: np.ndarray | None
    shape: tuple  # (C, H, W) of the neurons it feeds
    foldable: bool = True  # a fresh single projection a BatchNorm may fold into


@dataclass
class _Done:
    name: str  # the TimeMean that closed the readout


class _Builder:
    """Turns the nodes of a traced graph, in order, into populations."""

    def __init__(self, graph):
        self.graph, self.pops = graph, []

    def visit(self, node, values):
        handler = _HANDLERS.get(node.kind)
        if handler is None:
            m = node.module
            raise TypeError(f"layer {node.name!r} ({type(m).__name__}) is not supported by "
                            f"the event engine; supported: {SUPPORTED}")
        return handler(self, node.name, node.module, *(values[n] for n in node.inputs),
                       node=node)

    # ---------------------------------------------------------------- synaptic layers
    def conv(self, name, m, v, node):
        _need_source(name, m, v)
        if v.flat:
            raise TypeError(f"layer {name!r} (Conv2d) reads a flattened input")
        proj = Projection(name, "conv", v.pop, v.shape, node.out_shape,
                          m.weight.data.astype(np.float64), m.stride, m.padding, v.pool,
                          v.gain)
        return _Current([proj], _bias(m), node.out_shape)

    def linear(self, name, m, v, node):
        _need_source(name, m, v)
        C, H, W = v.shape
        if not v.flat and (H, W, v.pool) != (1, 1, 1):
            raise TypeError(f"layer {name!r} (Linear) reads a {v.shape} map: add a Flatten")
        proj = Projection(name, "linear", v.pop, v.shape, (m.out_features, 1, 1),
                          m.weight.data.astype(np.float64), pool=v.pool, gain=v.gain)
        return _Current([proj], _bias(m), (m.out_features, 1, 1))

    def batchnorm(self, name, m, v, node):
        want = "conv" if isinstance(m, nn.BatchNorm2d) else "linear"
        src = node.inputs[0]
        if not (isinstance(v, _Current) and v.foldable and v.projections[0].kind == want
                and len(self.graph.consumers(src)) == 1):
            raise TypeError(f"layer {name!r} ({type(m).__name__}) must directly follow a "
                            f"{'Conv2d' if want == 'conv' else 'Linear'} to be folded into it")
        proj = v.projections[0]
        w, bias = fold_bn(proj.weight, v.bias, m)
        return _Current([replace(proj, weight=w)], bias, v.shape, foldable=False)

    def add(self, name, m, a, b, node):
        """A residual join: the projections into both sides feed the same neurons; a side
        that is a population's spikes joins as an identity projection (``<block>.shortcut``)."""
        parts = []
        for v, src in zip((a, b), node.inputs):
            if isinstance(v, _Source):
                if v.flat or v.pool != 1 or v.pop < 0:
                    raise TypeError(f"{name!r}: the shortcut from {src!r} must be the "
                                    "unpooled spikes of a LIF layer")
                scope = name.rsplit(".", 1)[0] if "." in name else ""
                v = _Current([Projection(_join(scope, "shortcut"), "identity", v.pop,
                                         v.shape, v.shape)], None, v.shape)
            elif not isinstance(v, _Current):
                raise TypeError(f"{name!r}: adds {src!r}, which is neither synaptic currents "
                                "nor spikes")
            parts.append(v)
        if parts[0].shape != parts[1].shape:
            raise ValueError(f"{name!r}: joins {parts[0].shape} to {parts[1].shape}")
        return _Current(parts[0].projections + parts[1].projections,
                        _add(parts[0].bias, parts[1].bias), parts[0].shape, foldable=False)

    # ---------------------------------------------------------------- neurons
    def lif(self, name, m, v, node):
        what = type(m).__name__
        if not isinstance(v, _Current):
            raise TypeError(f"layer {name!r} ({what}) must follow a synaptic layer (Conv2d or "
                            "Linear, optionally with BatchNorm)")
        self.pops.append(_population(name, m, v))
        return _Source(len(self.pops) - 1, v.shape)

    def recurrent(self, name, m, v, node):
        """A Recurrent layer: its neuron's population, plus a projection of its own spikes
        of the previous step through the feedback weights (their bias from step 1 on)."""
        if not isinstance(v, _Current) or v.shape[1:] != (1, 1):
            raise TypeError(f"layer {name!r} (Recurrent) must follow a Linear layer")
        pop = _population(name, m.neuron, v)
        lin = m.recurrent
        pop.projections = pop.projections + [Projection(
            f"{name}.recurrent", "linear", len(self.pops), v.shape, v.shape,
            lin.weight.data.astype(np.float64), delay=1)]
        pop.rec_bias = _bias(lin)
        self.pops.append(pop)
        return _Source(len(self.pops) - 1, v.shape)

    def time_mean(self, name, m, v, node):
        if not isinstance(v, _Current):
            raise TypeError(f"layer {name!r} (TimeMean) must follow a synaptic layer (the "
                            "readout averages its currents over time)")
        after = self.graph.consumers(name)
        if after:
            raise TypeError(f"layer {after[0].name!r} ({type(after[0].module).__name__}) "
                            f"comes after the readout {name!r}: TimeMean must be the last "
                            "layer")
        projections = v.projections
        self.pops.append(Population(projections[0].name, "readout", v.shape, name,
                                    projections, v.bias))
        return _Done(name)

    # ---------------------------------------------------------------- spike routing
    def avg_pool(self, name, m, v, node):
        k, what = m.kernel_size, type(m).__name__
        if not isinstance(v, _Source) or v.flat:
            raise TypeError(f"layer {name!r} ({what}) must act on spikes (after a LIF), "
                            "where it folds into the next synaptic layer")
        if v.pop < 0:
            raise TypeError(f"layer {name!r} ({what}) on the network input is not "
                            "supported: pool the images before encoding them")
        gain = 1.0 / v.pool ** 2 if v.gain is None else v.gain
        if node.kind == "sumpool":
            return replace(v, pool=v.pool * k, gain=gain)
        return replace(v, pool=v.pool * k, gain=None if v.gain is None else gain / k ** 2)

    def max_pool(self, name, m, v, node):
        k = m.kernel_size
        if not isinstance(v, _Source) or v.flat or v.pool != 1 or v.pop < 0:
            raise TypeError(f"layer {name!r} (MaxPool2d) is supported only directly on the "
                            "spikes of a LIF layer")
        C, H, W = v.shape
        shape = (C, H // k, W // k)
        self.pops.append(Population(name, "maxpool", shape, name, source=v.pop, pool=k))
        return _Source(len(self.pops) - 1, shape)

    def flatten(self, name, m, v, node):
        if not isinstance(v, _Source):
            raise TypeError(f"layer {name!r} (Flatten) must act on spikes (after a LIF)")
        return replace(v, flat=True)


_HANDLERS = {"conv": _Builder.conv, "linear": _Builder.linear, "bn": _Builder.batchnorm,
             "add": _Builder.add, "lif": _Builder.lif, "recurrent": _Builder.recurrent,
             "mean": _Builder.time_mean, "avgpool": _Builder.avg_pool,
             "sumpool": _Builder.avg_pool, "maxpool": _Builder.max_pool,
             "flatten": _Builder.flatten}


def _population(name, m, v):
    """The spiking population of neuron module ``m`` (LIF, IF or CubaLIF) fed current v."""
    pr = v.projections
    if m.dynamics == "cuba_lif":
        return Population(pr[0].name, "lif", v.shape, name, pr, v.bias, m.tau_mem,
                          m.v_threshold, m.v_reset, False, dynamics="cuba_lif",
                          tau_syn=m.tau_syn, w_in=m.w_in, r=m.r, v_leak=m.v_leak)
    return Population(pr[0].name, "lif", v.shape, name, pr, v.bias, m.tau, m.v_threshold,
                      m.v_reset, m.decay_input)


def _join(prefix, name):
    return f"{prefix}.{name}" if prefix else name


def _bias(m):
    return None if m.bias is None else m.bias.data.astype(np.float64)


def _add(a, b):
    if a is None or b is None:
        return b if a is None else a
    return a + b


def _need_source(name, m, v):
    if not isinstance(v, _Source):
        raise TypeError(f"layer {name!r} ({type(m).__name__}) reads synaptic currents: a LIF "
                        "must come between two synaptic layers")


def compile_model(model, input_shape=(3, 32, 32), dtype=np.float32):
    """Compile ``model`` (a snnlite SNN) for event-driven inference on ``input_shape``
    (C, H, W) inputs: BN folded in float64 (eval statistics), pooling of spikes folded into
    the next layer's synapses, residual paths as projections. Returns an :class:`EventNet`
    that computes in ``dtype``: float32 (fast) or float64 (its spikes equal those of a
    float64 dense forward; see the conventions in :mod:`snnlite.event`).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a snnlite Module, got {type(model).__name__}")
    shape = tuple(int(d) for d in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"input_shape: expected (C, H, W), got {input_shape}")
    if isinstance(model, nn.Container):
        graph = trace(model, shape)
    else:
        raise TypeError(f"model ({type(model).__name__}) must be a container of layers "
                        "(Sequential, a residual network, GraphModule)")
    b = _Builder(graph)
    values = {graph.input.name: _Source(-1, shape)}
    for node in graph.nodes[1:]:
        values[node.name] = b.visit(node, values)
    if not isinstance(values[graph.output], _Done):
        raise TypeError(f"model ({type(model).__name__}) must end with a synaptic layer and "
                        "TimeMean (the readout)")
    return EventNet(shape, b.pops, dtype)
