"""``compile_model``: turn a snnlite SNN into an :class:`~snnlite.event.graph.EventNet`.

The model tree is walked in forward order with symbolic values: a *source* (the network
input or a population's spikes, perhaps average-pooled or flattened on the way) or a pending
*current* (projections into neurons not yet created, and a bias). Synaptic layers turn a
source into a current, BatchNorm folds into the current's single projection, LIF turns a
current into a new population, TimeMean closes the readout. Anything else raises a
``TypeError`` naming the layer by its dotted name and type.
"""
from dataclasses import dataclass, field, replace

import numpy as np

from .. import nn
from ..models.resnet import SpikingResNet
from .graph import EventNet, Population, Projection

SUPPORTED = ("Sequential, SpikingResNet, BasicBlock, Conv2d, Linear, BatchNorm1d, BatchNorm2d, "
             "LIF, AvgPool2d and MaxPool2d (on spikes), Flatten, TimeMean")


@dataclass
class _Source:
    pop: int  # -1: the network input
    shape: tuple  # (C, H, W) before pooling
    pool: int = 1
    flat: bool = False


@dataclass
class _Current:
    projections: list
    bias: np.ndarray | None
    shape: tuple  # (C, H, W) of the neurons it feeds
    foldable: bool = True  # a fresh single projection a BatchNorm may fold into


@dataclass
class _Done:
    name: str  # the TimeMean that closed the readout


@dataclass
class _Builder:
    pops: list = field(default_factory=list)

    def visit(self, name, m, v):
        if isinstance(v, _Done):
            raise TypeError(f"layer {name!r} ({type(m).__name__}) comes after the readout "
                            f"{v.name!r}: TimeMean must be the last layer")
        if isinstance(m, (nn.Sequential, SpikingResNet)):
            for child_name, child in m.named_children():
                v = self.visit(_join(name, child_name), child, v)
            return v
        handler = _HANDLERS.get(type(m))
        if handler is None:
            raise TypeError(f"layer {name or '<model>'!r} ({type(m).__name__}) is not supported "
                            f"by the event engine; supported: {SUPPORTED}")
        return handler(self, name, m, v)

    # ---------------------------------------------------------------- synaptic layers
    def conv(self, name, m, v):
        _need_source(name, m, v)
        if v.flat:
            raise TypeError(f"layer {name!r} (Conv2d) reads a flattened input")
        C, H, W = v.shape
        if C != m.in_channels:
            raise ValueError(f"layer {name!r} (Conv2d): expected {m.in_channels} input "
                             f"channels, got {C} (input shape {v.shape})")
        Hp, Wp = H // v.pool, W // v.pool
        k, s, p = m.kernel_size, m.stride, m.padding
        Ho, Wo = (Hp + 2 * p - k) // s + 1, (Wp + 2 * p - k) // s + 1
        if Ho < 1 or Wo < 1:
            raise ValueError(f"layer {name!r} (Conv2d): input {(C, Hp, Wp)} too small")
        proj = Projection(name, "conv", v.pop, v.shape, (m.out_channels, Ho, Wo),
                          m.weight.data.astype(np.float64), s, p, v.pool)
        return _Current([proj], _bias(m), (m.out_channels, Ho, Wo))

    def linear(self, name, m, v):
        _need_source(name, m, v)
        C, H, W = v.shape
        if not v.flat and (H, W, v.pool) != (1, 1, 1):
            raise TypeError(f"layer {name!r} (Linear) reads a {v.shape} map: add a Flatten")
        F = C * (H // v.pool) * (W // v.pool)
        if F != m.in_features:
            raise ValueError(f"layer {name!r} (Linear): expected {m.in_features} input "
                             f"features, got {F} (input {v.shape}, pooled by {v.pool})")
        proj = Projection(name, "linear", v.pop, v.shape, (m.out_features, 1, 1),
                          m.weight.data.astype(np.float64), pool=v.pool)
        return _Current([proj], _bias(m), (m.out_features, 1, 1))

    def batchnorm(self, name, m, v):
        want = "conv" if isinstance(m, nn.BatchNorm2d) else "linear"
        if not (isinstance(v, _Current) and v.foldable and v.projections[0].kind == want):
            raise TypeError(f"layer {name!r} ({type(m).__name__}) must directly follow a "
                            f"{'Conv2d' if want == 'conv' else 'Linear'} to be folded into it")
        if m.num_features != v.shape[0]:
            raise ValueError(f"layer {name!r} ({type(m).__name__}): expected "
                             f"{m.num_features} channels, got {v.shape[0]}")
        scale = m.weight.data.astype(np.float64) / np.sqrt(
            m.running_var.astype(np.float64) + m.eps)
        proj = v.projections[0]
        w = proj.weight * scale.reshape((-1,) + (1,) * (proj.weight.ndim - 1))
        b = 0.0 if v.bias is None else v.bias
        bias = (b - m.running_mean.astype(np.float64)) * scale + m.bias.data.astype(np.float64)
        return _Current([replace(proj, weight=w)], bias, v.shape, foldable=False)

    # ---------------------------------------------------------------- neurons
    def lif(self, name, m, v):
        if not isinstance(v, _Current):
            raise TypeError(f"layer {name!r} (LIF) must follow a synaptic layer (Conv2d or "
                            "Linear, optionally with BatchNorm)")
        projections = v.projections
        pop = Population(projections[0].name, "lif", v.shape, name, projections, v.bias,
                         m.tau, m.v_threshold, m.v_reset, m.decay_input)
        self.pops.append(pop)
        return _Source(len(self.pops) - 1, v.shape)

    def time_mean(self, name, m, v):
        if not isinstance(v, _Current):
            raise TypeError(f"layer {name!r} (TimeMean) must follow a synaptic layer (the "
                            "readout averages its currents over time)")
        projections = v.projections
        self.pops.append(Population(projections[0].name, "readout", v.shape, name,
                                    projections, v.bias))
        return _Done(name)

    # ---------------------------------------------------------------- spike routing
    def avg_pool(self, name, m, v):
        k = m.kernel_size
        if not isinstance(v, _Source) or v.flat:
            raise TypeError(f"layer {name!r} (AvgPool2d) must act on spikes (after a LIF), "
                            "where it folds into the next synaptic layer")
        if v.pop < 0:
            raise TypeError(f"layer {name!r} (AvgPool2d) on the network input is not "
                            "supported: pool the images before encoding them")
        _, H, W = v.shape
        if (H // v.pool) % k or (W // v.pool) % k:
            raise ValueError(f"layer {name!r} (AvgPool2d): spatial size "
                             f"{(H // v.pool, W // v.pool)} is not divisible by {k}")
        return replace(v, pool=v.pool * k)

    def max_pool(self, name, m, v):
        k = m.kernel_size
        if not isinstance(v, _Source) or v.flat or v.pool != 1 or v.pop < 0:
            raise TypeError(f"layer {name!r} (MaxPool2d) is supported only directly on the "
                            "spikes of a LIF layer")
        C, H, W = v.shape
        if H % k or W % k:
            raise ValueError(f"layer {name!r} (MaxPool2d): spatial size {(H, W)} is not "
                             f"divisible by {k}")
        shape = (C, H // k, W // k)
        self.pops.append(Population(name, "maxpool", shape, name, source=v.pop, pool=k))
        return _Source(len(self.pops) - 1, shape)

    def flatten(self, name, m, v):
        if not isinstance(v, _Source):
            raise TypeError(f"layer {name!r} (Flatten) must act on spikes (after a LIF)")
        return replace(v, flat=True)

    # ---------------------------------------------------------------- residual block
    def block(self, name, m, v):
        _need_source(name, m, v)
        if v.flat or v.pool != 1 or v.pop < 0:
            raise TypeError(f"layer {name!r} (BasicBlock) must read the unpooled spikes of a "
                            "LIF layer")
        x = v
        for child in ("conv1", "bn1", "sn1", "conv2", "bn2"):
            v = self.visit(_join(name, child), getattr(m, child), v)
        if m.downsample is None:
            if x.shape != v.shape:
                raise ValueError(f"layer {name!r} (BasicBlock): identity shortcut joins "
                                 f"{x.shape} to {v.shape}")
            short = _Current([Projection(_join(name, "shortcut"), "identity", x.pop, x.shape,
                                         x.shape)], None, x.shape)
        else:
            short = self.visit(_join(name, "downsample"), m.downsample, x)
            if not isinstance(short, _Current) or short.shape != v.shape:
                raise ValueError(f"layer {name!r} (BasicBlock): downsample gives "
                                 f"{getattr(short, 'shape', None)}, main path {v.shape}")
        bias = _add(v.bias, short.bias)
        v = _Current(v.projections + short.projections, bias, v.shape, foldable=False)
        return self.visit(_join(name, "sn2"), m.sn2, v)


_HANDLERS = {nn.Conv2d: _Builder.conv, nn.Linear: _Builder.linear,
             nn.BatchNorm2d: _Builder.batchnorm, nn.BatchNorm1d: _Builder.batchnorm,
             nn.LIF: _Builder.lif, nn.TimeMean: _Builder.time_mean,
             nn.AvgPool2d: _Builder.avg_pool, nn.MaxPool2d: _Builder.max_pool,
             nn.Flatten: _Builder.flatten, nn.BasicBlock: _Builder.block}


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
    b = _Builder()
    out = b.visit("", model, _Source(-1, shape))
    if not isinstance(out, _Done):
        raise TypeError(f"model ({type(model).__name__}) must end with a synaptic layer and "
                        "TimeMean (the readout)")
    return EventNet(shape, b.pops, dtype)
