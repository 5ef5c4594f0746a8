"""Recurrent spiking layers: a neuron layer whose spikes come back as its own input.

:class:`Recurrent` is one node (kind ``recurrent``) in the traced graph, whose module holds
the cell: the ``neuron`` (LIF, IF or CubaLIF) and its ``recurrent`` feedback (a square
:class:`~snnlite.nn.Linear`). Its dataflow over time is inside the node, so the graph stays
acyclic and traces like any layer; NIR export writes the cycle back out.
"""
import numpy as np

from . import functional as F
from .layers import Linear
from .module import Module, is_time_broadcast, sum_over_time


class Recurrent(Module):
    """``s_t = neuron(x_t + recurrent(s_{t-1}))``, with nothing fed back at t = 0 (NIR's
    convention for a cycle: the edge carries the previous step's output, zero before the
    first step, so the feedback bias is added from t = 1 on).

    ``neuron``: a :class:`~snnlite.nn.LIF`, :class:`~snnlite.nn.IF` or
    :class:`~snnlite.nn.CubaLIF`; ``recurrent``: a ``Linear(M, M)`` (bias optional). Input
    and output are ``[T, B, M]``. Forward and BPTT backward are one kernel each
    (:mod:`snnlite.kernels.recurrent`); after a forward ``spike_count`` holds the spikes.
    """

    kind = "recurrent"

    def __init__(self, neuron, recurrent):
        super().__init__()
        if getattr(neuron, "dynamics", None) not in ("lif", "if", "cuba_lif"):
            raise TypeError(f"Recurrent: neuron must be LIF, IF or CubaLIF, got "
                            f"{type(neuron).__name__}")
        if not isinstance(recurrent, Linear) or recurrent.in_features != recurrent.out_features:
            raise TypeError("Recurrent: recurrent must be a square Linear (M -> M), got "
                            f"{recurrent!r}")
        self.neuron, self.recurrent = neuron, recurrent
        self.spike_count = 0

    @property
    def features(self):
        return self.recurrent.in_features

    def output_shape(self, in_shape):
        if tuple(in_shape) != (self.features,):
            raise ValueError(f"expected input of per-sample shape ({self.features},), got "
                             f"{tuple(in_shape)}")
        return (self.features,)

    def forward(self, x):
        F.check_float("x", x)
        if x.ndim != 3 or x.shape[2] != self.features:
            raise ValueError(f"Recurrent: expected input [T, B, {self.features}], got shape "
                             f"{x.shape}")
        T = x.shape[0]
        self._bc = is_time_broadcast(x)
        x2 = x[:1] if self._bc else x
        lin = self.recurrent
        b = None if lin.bias is None else lin.bias.data
        s, h = F.recurrent_forward(x2, lin.weight.data, b, self.neuron, T=T)
        self.spike_count = self.neuron.spike_count = int(np.count_nonzero(s))
        self._cache = (h, s) if self.training else None
        return s

    def backward(self, ds):
        cache = getattr(self, "_cache", None)
        if cache is None:
            raise RuntimeError("Recurrent.backward: call forward in training mode first")
        h, s = cache
        self._cache = None
        lin = self.recurrent
        dx, dw, db = F.recurrent_backward(ds, h, s, lin.weight.data, self.neuron,
                                          lin.bias is not None)
        lin.weight.grad += dw
        if db is not None:
            lin.bias.grad += db
        return sum_over_time(dx) if self._bc else dx

    def extra_repr(self):
        return f"features={self.features}"


__all__ = ["Recurrent"]
