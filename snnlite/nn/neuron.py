"""Spiking neurons as modules (the maths lives in ``kernels/lif.py``)."""
import numpy as np

from . import functional as F
from .module import Module, is_time_broadcast


class LIF(Module):
    """Leaky integrate-and-fire, SpikingJelly's ``LIFNode`` in multi-step mode.

    ``forward(x)`` takes ``[T, B, ...]`` currents and returns spikes of the same shape and
    dtype; every call starts at rest (v = v_reset), so there is no state to reset.
    ``v_reset=None`` selects soft reset (subtract the threshold). Backward is BPTT with the
    ATan surrogate of slope ``surrogate_alpha``; ``detach_reset`` cuts the reset path.

    For streaming, :meth:`stream` takes the membrane in and hands it back explicitly.
    After a forward, ``spike_count`` holds the number of spikes it emitted.
    """

    def __init__(self, tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True,
                 detach_reset=False, surrogate_alpha=2.0):
        super().__init__()
        if not tau > 1.0:
            raise ValueError(f"LIF: tau must be > 1, got {tau}")
        self.tau, self.v_threshold, self.v_reset = float(tau), float(v_threshold), v_reset
        self.decay_input, self.detach_reset = bool(decay_input), bool(detach_reset)
        self.surrogate_alpha = float(surrogate_alpha)
        self.spike_count = 0

    kind = "lif"

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def extra_repr(self):
        return (f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
                f"decay_input={self.decay_input}, detach_reset={self.detach_reset}, "
                f"surrogate_alpha={self.surrogate_alpha}")

    def _run(self, x, v0=None):
        F.check_float("x", x)
        if x.ndim < 2:
            raise ValueError(f"LIF: expected input [T, B, ...], got shape {x.shape}")
        T = x.shape[0]
        x2 = x[:1] if is_time_broadcast(x) else x
        s, h, v = F.lif_forward(x2.reshape(x2.shape[0], -1), self.tau, self.v_threshold,
                                self.v_reset, self.decay_input, v0, T)
        self.spike_count = int(np.count_nonzero(s))
        return s.reshape((T,) + x.shape[1:]), h, v.reshape(x.shape[1:])

    def forward(self, x):
        s, h, _ = self._run(x)
        self._h = h if self.training else None
        return s

    def backward(self, ds):
        if self._h is None:
            raise RuntimeError("LIF.backward: call forward in training mode first")
        dx = F.lif_backward(np.ascontiguousarray(ds).reshape(self._h.shape), self._h, self.tau,
                            self.v_threshold, self.v_reset, self.decay_input,
                            self.detach_reset, self.surrogate_alpha)
        self._h = None
        return dx.reshape(ds.shape)

    def stream(self, x, v=None):
        """Advance ``x`` ([T, B, ...], T >= 1) from membrane ``v`` ([B, ...], default at rest).
        Returns ``(spikes, v)``; no gradient is kept."""
        v0 = None if v is None else np.ascontiguousarray(v, x.dtype).reshape(-1)
        s, _, v = self._run(x, v0)
        return s, v
