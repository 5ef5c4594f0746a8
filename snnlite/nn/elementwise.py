"""Elementwise layers of NIR graphs: :class:`Scale` (``y = x * scale``) and
:class:`Threshold` (a stateless spike, ``y = H(x - threshold)``). Per-sample arrays
broadcast over time and batch; NumPy does the arithmetic (no state, no time loop)."""
import math

import numpy as np

from . import functional as F
from .module import Module, Parameter, is_time_broadcast, sum_over_time


class Scale(Module):
    """``y = x * scale`` elementwise (NIR's ``Scale``); ``scale`` has the per-sample shape
    of the input and is a trainable parameter."""

    kind = "scale"

    def __init__(self, scale):
        super().__init__()
        self.scale = Parameter(np.asarray(scale), decay=False)
        F.check_float("scale", self.scale.data)

    def output_shape(self, in_shape):
        if tuple(in_shape) != self.scale.data.shape:
            raise ValueError(f"expected per-sample shape {self.scale.data.shape}, got "
                             f"{tuple(in_shape)}")
        return tuple(in_shape)

    def forward(self, x):
        F.check_float("x", x, dtype=self.scale.data.dtype)
        self._x = x if self.training else None
        return x * self.scale.data

    def backward(self, dy):
        if getattr(self, "_x", None) is None:
            raise RuntimeError("Scale.backward: call forward in training mode first")
        x, self._x = self._x, None
        g = dy * x
        self.scale.grad += g.reshape((-1,) + self.scale.data.shape).sum(0)
        dx = dy * self.scale.data
        return sum_over_time(dx) if is_time_broadcast(x) else dx


class Threshold(Module):
    """``y = 1 where x >= threshold else 0`` elementwise (NIR's ``Threshold``; a tie spikes,
    as in every snnlite neuron); backward uses the ATan surrogate of slope
    ``surrogate_alpha``. ``threshold`` has the per-sample shape of the input."""

    kind = "threshold"

    def __init__(self, threshold, surrogate_alpha=2.0):
        super().__init__()
        self.register_buffer("threshold", np.asarray(threshold))
        F.check_float("threshold", self.threshold)
        self.surrogate_alpha = float(surrogate_alpha)
        self.spike_count = 0

    def output_shape(self, in_shape):
        if tuple(in_shape) != self.threshold.shape:
            raise ValueError(f"expected per-sample shape {self.threshold.shape}, got "
                             f"{tuple(in_shape)}")
        return tuple(in_shape)

    def forward(self, x):
        F.check_float("x", x, dtype=self.threshold.dtype)
        y = (x >= self.threshold).astype(x.dtype)
        self.spike_count = int(np.count_nonzero(y))
        self._x = x if self.training else None
        return y

    def backward(self, dy):
        if getattr(self, "_x", None) is None:
            raise RuntimeError("Threshold.backward: call forward in training mode first")
        x, self._x = self._x, None
        a = self.surrogate_alpha
        dx = dy * ((a / 2) / (1 + (math.pi / 2 * a * (x - self.threshold)) ** 2))
        return sum_over_time(dx.astype(dy.dtype)) if is_time_broadcast(x) else \
            dx.astype(dy.dtype)


__all__ = ["Scale", "Threshold"]
