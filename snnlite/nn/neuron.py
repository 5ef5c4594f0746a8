"""Spiking neurons as modules (the maths lives in ``kernels/lif.py``).

Every neuron is a node of kind ``lif`` in the traced graph (a spiking layer: it has
``spike_count`` and as many neurons as its input has elements); ``dynamics`` says which:
``"lif"`` (:class:`LIF`), ``"if"`` (:class:`IF`, a LIF without leak, so every consumer that
handles a LIF handles it) or ``"cuba_lif"`` (:class:`CubaLIF`, with a synaptic current).
"""
import math

import numpy as np

from . import functional as F
from .module import Module, first_step


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
    dynamics = "lif"

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
        x2 = first_step(x)
        s, h, v = F.lif_forward(x2.reshape(x2.shape[0], -1), self.tau, self.v_threshold,
                                self.v_reset, self.decay_input, v0, T)
        self.spike_count = int(np.count_nonzero(s))
        return s.reshape((T,) + x.shape[1:]), h, v.reshape(x.shape[1:])

    def forward(self, x):
        s, h, _ = self._run(x)
        self._h = h if self.training else None
        return s

    def backward(self, ds):
        if getattr(self, "_h", None) is None:
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


class IF(LIF):
    """Integrate-and-fire, SpikingJelly's ``IFNode`` in multi-step mode: ``h = v + x``, fire
    at ``h >= v_threshold``, then hard reset to ``v_reset`` (or soft reset, subtracting the
    threshold, with ``v_reset=None``).

    It is exactly :class:`LIF` with ``tau = inf`` and ``decay_input=False`` (the leak
    ``(v - v_reset) / tau`` is then an exact zero), so it shares the LIF kernels, fusion
    with batch norm and the event engine.
    """

    dynamics = "if"

    def __init__(self, v_threshold=1.0, v_reset=0.0, detach_reset=False, surrogate_alpha=2.0):
        super().__init__(math.inf, v_threshold, v_reset, False, detach_reset, surrogate_alpha)

    def extra_repr(self):
        return (f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, "
                f"detach_reset={self.detach_reset}, surrogate_alpha={self.surrogate_alpha}")


class CubaLIF(Module):
    """Current-based LIF (NIR's ``CubaLIF``; SpikingJelly's ``CUBALIFNode`` and snnTorch's
    ``Synaptic`` with ``w_in = r = 1``): per step, with synaptic current i and membrane v
    (both start at rest: i = 0, v = v_reset, or 0 under soft reset)::

        i = i - i / tau_syn + w_in * x                # synaptic current
        h = v - (v - v_leak) / tau_mem + r * i        # charge
        s = h >= v_threshold                          # fire (a tie spikes)
        v = v_reset if s else h                       # reset (h - v_threshold if soft)

    Time constants are in steps (> 1). Backward is BPTT with the ATan surrogate, as LIF.
    :meth:`stream` carries ``(v, i)`` explicitly.
    """

    kind = "lif"
    dynamics = "cuba_lif"

    def __init__(self, tau_syn=2.0, tau_mem=2.0, v_threshold=1.0, v_reset=0.0, v_leak=0.0,
                 w_in=1.0, r=1.0, detach_reset=False, surrogate_alpha=2.0):
        super().__init__()
        for name, tau in (("tau_syn", tau_syn), ("tau_mem", tau_mem)):
            if not tau > 1.0:
                raise ValueError(f"CubaLIF: {name} must be > 1, got {tau}")
        self.tau_syn, self.tau_mem = float(tau_syn), float(tau_mem)
        self.v_threshold, self.v_reset = float(v_threshold), v_reset
        self.v_leak, self.w_in, self.r = float(v_leak), float(w_in), float(r)
        self.detach_reset, self.surrogate_alpha = bool(detach_reset), float(surrogate_alpha)
        self.spike_count = 0

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def extra_repr(self):
        return (f"tau_syn={self.tau_syn}, tau_mem={self.tau_mem}, v_threshold="
                f"{self.v_threshold}, v_reset={self.v_reset}, v_leak={self.v_leak}, "
                f"w_in={self.w_in}, r={self.r}")

    def _params(self):
        return dict(tau_syn=self.tau_syn, tau_mem=self.tau_mem, w_in=self.w_in, r=self.r,
                    v_threshold=self.v_threshold, v_reset=self.v_reset)

    def _run(self, x, v0=None, i0=None):
        F.check_float("x", x)
        if x.ndim < 2:
            raise ValueError(f"CubaLIF: expected input [T, B, ...], got shape {x.shape}")
        T = x.shape[0]
        x2 = first_step(x)
        s, h, v, i = F.cuba_forward(x2.reshape(x2.shape[0], -1), v_leak=self.v_leak, v0=v0,
                                    i0=i0, T=T, **self._params())
        self.spike_count = int(np.count_nonzero(s))
        return s.reshape((T,) + x.shape[1:]), h, v.reshape(x.shape[1:]), i.reshape(x.shape[1:])

    def forward(self, x):
        s, h, _, _ = self._run(x)
        self._h = h if self.training else None
        return s

    def backward(self, ds):
        if getattr(self, "_h", None) is None:
            raise RuntimeError("CubaLIF.backward: call forward in training mode first")
        p = self._params()
        dx = F.cuba_backward(np.ascontiguousarray(ds).reshape(self._h.shape), self._h,
                             detach_reset=self.detach_reset, alpha=self.surrogate_alpha, **p)
        self._h = None
        return dx.reshape(ds.shape)

    def stream(self, x, state=None):
        """Advance ``x`` ([T, B, ...]) from ``state = (v, i)`` ([B, ...] each, default at
        rest). Returns ``(spikes, (v, i))``; no gradient is kept."""
        v0 = i0 = None
        if state is not None:
            v0, i0 = (np.ascontiguousarray(a, x.dtype).reshape(-1) for a in state)
        s, _, v, i = self._run(x, v0, i0)
        return s, (v, i)
