"""Integer formats and the arithmetic rules of a quantized model, stated once.

A quantized model (:class:`~snnlite.quant.qnet.QNet`) holds, per population (a layer of the
event engine: LIF neurons or the readout, see :mod:`snnlite.event`), a *step* S: the real
value of one unit of its currents, membranes, thresholds and biases (one S per layer, or
one per output channel with ``per_channel``). With BN folded and input pooling folded in,
a projection's float weight w (its spike or input value being x = k * u for an integer k)
becomes the integer ``round(w * u / S)``; u = 1 for spikes, the input step for dense input.

Rules (the integer engine, the NumPy reference in the tests and :mod:`snnlite.runtime`
all follow them):

- rounding: ``round half to even`` (NumPy's ``rint``), for weights, biases, thresholds,
  resets, identity weights and the dense input, then saturation to the format's range;
- weights: signed, symmetric, ``|w| <= 2^(weight_bits - 1) - 1`` (no -2^(b-1));
- dense input (direct coding): ``round(x / u)`` clipped to ``+-(2^(input_bits - 1) - 1)``;
- states (membranes): two's complement ``[-2^(state_bits - 1), 2^(state_bits - 1) - 1]``,
  saturating; thresholds, resets, biases and identity weights (a residual shortcut adds
  ``round(1 / S)``) must fit the state width;
- currents: accumulated in int32 from integer weights; the quantizer proves, per neuron, that
  the sum of |weights| its inputs can reach (times pooling, times the largest input) plus
  |bias| fits int32, and refuses a model where it might not, so they cannot overflow;
- leak, on the int64 difference d: ``shift``: ``d >> k`` (tau = 2^k; an arithmetic shift,
  i.e. rounding towards minus infinity); ``multiply``: ``(d * M) >> F`` with
  ``M = round(2^F / tau)`` and F = ``leak_frac_bits`` (12 by default, Loihi's decay width);
  for tau = 2^k and F >= k the two agree exactly; an IF neuron (tau = inf) has none. The
  step (cf. :mod:`snnlite.kernels.lif`)::

      h = v + leak(x - (v - r))        decay_input
      h = v - leak(v - r) + x          otherwise            (r: v_reset, 0 for soft reset)
      h = clip(h, state range)         counted: a saturation
      s = h >= v_th;  v = v_reset if s else h  (soft reset: v = h - v_th)

- the readout sums its integer currents over T in int64; its logits are ``acc * S / T`` in
  float64.

``scale`` chooses the steps: ``pow2`` (S a power of two: thresholds of 1 become 2^e) or
``int`` (S = v_th / N for an integer N: the threshold is exactly N units, S any real).
``clip``: ``max`` puts the largest |weight| of a layer (or channel) at the top code;
``mse`` chooses the clipping level, from 30% to 100% of it, that minimises the squared
weight error (deterministic; clipped weights saturate).
"""
import math
from dataclasses import asdict, dataclass, fields

import numpy as np

ROUNDING = "half_even"
"""The rounding mode of every float-to-integer conversion (``numpy.rint``)."""
ACC_BITS = 32
"""Width of the synaptic current accumulators."""
SCALES = ("pow2", "int")
CLIPS = ("max", "mse")
LEAKS = ("shift", "multiply")
INPUTS = ("dense", "events")


@dataclass(frozen=True)
class QFormat:
    """The integer formats of a quantized model (see the module docstring)."""

    weight_bits: int = 8
    state_bits: int = 16
    input_bits: int = 8
    per_channel: bool = False
    scale: str = "pow2"
    clip: str = "mse"
    leak: str = "shift"
    leak_frac_bits: int = 12

    def __post_init__(self):
        for name, lo, hi in (("weight_bits", 2, 16), ("state_bits", 4, 32),
                             ("input_bits", 2, 16), ("leak_frac_bits", 1, 24)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
                raise ValueError(f"{name}: expected an integer in [{lo}, {hi}], got {v!r}")
        if self.state_bits < self.weight_bits:
            raise ValueError(f"state_bits ({self.state_bits}) must be at least weight_bits "
                             f"({self.weight_bits})")
        if not isinstance(self.per_channel, (bool, np.bool_)):
            raise TypeError(f"per_channel: expected True or False, got {self.per_channel!r}")
        for name, allowed in (("scale", SCALES), ("clip", CLIPS), ("leak", LEAKS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: expected one of {list(allowed)}, got "
                                 f"{getattr(self, name)!r}")

    @property
    def w_max(self):
        return (1 << (self.weight_bits - 1)) - 1

    @property
    def s_min(self):
        return -(1 << (self.state_bits - 1))

    @property
    def s_max(self):
        return (1 << (self.state_bits - 1)) - 1

    @property
    def x_max(self):
        return (1 << (self.input_bits - 1)) - 1

    def as_dict(self):
        """JSON-able, with the fixed rules (rounding, accumulator width) stated."""
        return dict(asdict(self), per_channel=bool(self.per_channel), rounding=ROUNDING,
                    acc_bits=ACC_BITS)

    @classmethod
    def from_dict(cls, d, where="format"):
        """The format of a dict written by :meth:`as_dict` (``bits`` is ``weight_bits``)."""
        if not isinstance(d, dict):
            raise ValueError(f"{where}: expected an object, got {d!r}")
        d = dict(d)
        if "bits" in d:
            d.setdefault("weight_bits", d.pop("bits"))
        for k, want in (("rounding", ROUNDING), ("acc_bits", ACC_BITS)):
            if k in d and d.pop(k) != want:
                raise ValueError(f"{where}: {k} must be {want!r} (this snnlite's rule)")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}")
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None

    def describe(self):
        return (f"w{self.weight_bits}/s{self.state_bits}/x{self.input_bits}, "
                f"{'per-channel' if self.per_channel else 'per-layer'} {self.scale} steps, "
                f"{self.clip} clipping, {self.leak} leak")


def rint(x):
    """Round half to even (the one rounding rule)."""
    return np.rint(x)


def leak_constants(tau, fmt):
    """(M, F) of the leak ``(d * M) >> F`` for time constant ``tau`` (see module doc).

    ``shift`` needs tau = 2^k (k >= 1) and gives (1, k); ``multiply`` gives
    (round(2^F / tau), F); an IF neuron (tau = inf) has no leak: (0, 0). Raises ValueError
    for a tau the chosen form cannot express."""
    tau = float(tau)
    if tau == math.inf:
        return 0, 0
    k = math.log2(tau) if tau > 0 else float("nan")
    if fmt.leak == "shift":
        if not (k >= 1 and k.is_integer()):
            raise ValueError(f"leak 'shift' needs tau = 2^k (k >= 1), got tau = {tau:g}: use "
                             "leak='multiply' (--leak multiply)")
        return 1, int(k)
    F = fmt.leak_frac_bits
    M = int(rint(2.0 ** F / tau))
    if M < 1:
        raise ValueError(f"tau = {tau:g} is too large for a {F}-bit leak multiplier")
    return M, F


def pow2_ceil(x):
    """The smallest power of two >= x (elementwise, x > 0)."""
    x = np.asarray(x, np.float64)
    m, e = np.frexp(x)  # x = m * 2^e, m in [0.5, 1)
    return np.ldexp(1.0, np.where(m == 0.5, e - 1, e))


__all__ = ["ACC_BITS", "CLIPS", "INPUTS", "LEAKS", "QFormat", "ROUNDING", "SCALES",
           "leak_constants", "pow2_ceil", "rint"]
