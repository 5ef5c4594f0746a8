"""The step of one population and its integer values (see :mod:`snnlite.quant.formats`).

:func:`quantize_population` is the one place float values become integers: post-training
quantization (:mod:`snnlite.quant.ptq`) calls it on the compiled model's folded weights,
quantization-aware training (:mod:`snnlite.quant.qat`) on the modules' weights folded at
every step, so both put the same numbers on the same grid.
"""
from dataclasses import dataclass

import numpy as np

from .formats import pow2_ceil, rint

CLIP_RATIOS = np.linspace(0.3, 1.0, 36)
"""Candidate clipping levels of ``clip='mse'``, as fractions of the largest |weight|."""


@dataclass
class QValues:
    """Integer values of one population: ``step`` (O,) float64, ``weights`` (a list parallel
    to the projections: int64 arrays of the float weights' shapes, or (O,) for an identity
    projection), ``bias`` (O,) int64 or None, ``v_th`` and ``v_reset`` (O,) int64 (None for
    the readout; ``v_reset`` None for soft reset), ``in_range`` (per projection: bool masks,
    True where the weight was not clipped, for the straight-through estimator; None for an
    identity projection)."""

    step: np.ndarray
    weights: list
    bias: np.ndarray | None
    v_th: np.ndarray | None
    v_reset: np.ndarray | None
    in_range: list


def _per_out(a):
    """Per-output-channel max |a| of a weight array (O, ...)."""
    return np.abs(a).reshape(a.shape[0], -1).max(1)


def _steps(raw, v_th, fmt):
    """Steps from the lower bounds ``raw`` (O,) after the format's scale rule. A threshold
    keeps at least one unit: the step never passes v_th (weights beyond the top code then
    saturate; such a neuron fires on any one of them anyway)."""
    raw = np.where(raw > 0, raw, 1.0 / fmt.s_max)
    if fmt.scale == "pow2":
        step = pow2_ceil(raw)
        if v_th is not None:
            top = np.ldexp(1.0, int(np.floor(np.log2(abs(float(v_th))))))  # 2^k <= v_th
            step = np.minimum(step, top)
        return step
    if v_th is None:  # the readout has no threshold to divide: any real step
        return raw
    n = np.maximum(np.floor(v_th / raw), 1.0)
    return v_th / n


def quantize_population(weights, units, bias, v_th, v_reset, fmt, channels):
    """The integer values of a population of ``channels`` output channels.

    weights: per projection, the effective float64 weights (O, ...) (BN and input pooling
    folded in), or None for an identity projection (a spike adds 1.0); units: per
    projection, the real value of one unit of its input (1 for spikes, the input step for
    dense input); bias (O,) or None; v_th (float, None for the readout) and v_reset (float,
    None for soft reset); fmt: :class:`~snnlite.quant.formats.QFormat`. Returns QValues.
    """
    O = int(channels)
    floor = np.zeros(O)  # what the state width needs: thresholds, resets, biases, identities
    if v_th is not None:
        floor = np.maximum(floor, abs(float(v_th)) / fmt.s_max)
        if v_reset is not None:
            floor = np.maximum(floor, abs(float(v_reset)) / fmt.s_max)
    if bias is not None:
        floor = np.maximum(floor, np.abs(bias) / fmt.s_max)
    if any(w is None for w in weights):
        floor = np.maximum(floor, 1.0 / fmt.s_max)
    real = [None if w is None else np.asarray(w, np.float64) * u
            for w, u in zip(weights, units)]  # weights times input units: what S steps
    top = np.zeros(O)
    for r in real:
        if r is not None:
            top = np.maximum(top, _per_out(r))
    if not fmt.per_channel:
        floor, top = np.full(O, floor.max()), np.full(O, top.max())

    def error(step):
        """Squared error per output channel of the weights on the grid ``step``."""
        e = np.zeros(O)
        for r in real:
            if r is not None:
                s = step.reshape((-1,) + (1,) * (r.ndim - 1))
                q = np.clip(rint(r / s), -fmt.w_max, fmt.w_max) * s
                e += ((q - r) ** 2).reshape(O, -1).sum(1)
        return e

    ratios = CLIP_RATIOS if fmt.clip == "mse" else np.ones(1)
    best_step, best_err = None, None
    for ratio in ratios[::-1]:  # from 1 down: a tie keeps the larger clipping level
        step = _steps(np.maximum(floor, ratio * top / fmt.w_max), v_th, fmt)
        err = error(step)
        if not fmt.per_channel:
            err = np.full(O, err.sum())
        if best_step is None:
            best_step, best_err = step, err
        else:
            better = err < best_err
            best_step = np.where(better, step, best_step)
            best_err = np.where(better, err, best_err)
    step = best_step

    ints, masks = [], []
    for w, r in zip(weights, real):
        if r is None:
            ints.append(rint(1.0 / step).astype(np.int64))
            masks.append(None)
            continue
        s = step.reshape((-1,) + (1,) * (r.ndim - 1))
        z = r / s
        ints.append(np.clip(rint(z), -fmt.w_max, fmt.w_max).astype(np.int64))
        masks.append(np.abs(z) <= fmt.w_max + 0.5)

    def to_int(v):
        return np.clip(rint(np.asarray(v, np.float64) / step), fmt.s_min, fmt.s_max) \
            .astype(np.int64)

    b = None if bias is None else to_int(bias)
    th = None if v_th is None else to_int(np.full(O, float(v_th)))
    rs = None if v_th is None or v_reset is None else to_int(np.full(O, float(v_reset)))
    return QValues(step, ints, b, th, rs, masks)


__all__ = ["CLIP_RATIOS", "QValues", "quantize_population"]
