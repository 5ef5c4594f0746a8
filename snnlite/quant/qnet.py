"""A quantized network: the compiled event graph with integer weights, thresholds and steps.

:class:`QNet` is what :func:`snnlite.quant.quantize` produces, the integer event engine
(:mod:`snnlite.event.qengine`) runs, a quantized checkpoint stores
(:mod:`snnlite.quant.checkpoint`) and a deploy bundle carries (:mod:`snnlite.io.bundle`,
run by :mod:`snnlite.runtime` with numpy alone). The arithmetic is stated in
:mod:`snnlite.quant.formats`.

Its structure is the float compiler's (:class:`~snnlite.event.graph.Population` and
:class:`~snnlite.event.graph.Projection`, so counts have the same rows and names); the
projections' ``weight`` are int64 arrays of the float shapes (an identity projection's is
(C,): ``round(1 / S)`` per channel), a population's ``bias`` int64 (C,) or None.

RECORD (:meth:`QNet.to_record`): ``(meta, arrays)``, a JSON-able dict and {name: array}::

    meta = {"input_shape": [C, H, W], "format": QFormat.as_dict(),
            "input": {"kind": "dense" | "events", "step": float | null, "bits": int},
            "populations": [{"name", "kind", "shape", "neuron", "source", "pool", "tau",
                             "v_threshold", "v_reset" (floats, of the source model),
                             "decay_input", "hard_reset", "leak": [M, F], "bias": bool,
                             "projections": [{"name", "kind", "source", "src_shape",
                                              "out_shape", "stride", "padding", "pool",
                                              "gain"}]}]}   # gain: 1 after sum pooling
    arrays: "p<i>.step" float64 (C,), "p<i>.v_th" / "p<i>.v_reset" int32 (C,) (LIF; the
            reset only for hard reset), "p<i>.bias" int32 (C,), "p<i>.q<j>.w" the weights
            (int8 up to 8 bits, int16 above; identity int32)
"""
from dataclasses import dataclass, replace

import numpy as np

from ..event.graph import Population, Projection
from .formats import ACC_BITS, INPUTS, QFormat

ACC_MAX = (1 << (ACC_BITS - 1)) - 1
KINDS = ("lif", "readout", "maxpool")


@dataclass
class QPopulation:
    """One population: ``pop`` (structure, integer weights and bias), ``step`` (C,) float64
    (None for max pooling), ``v_th`` / ``v_reset`` (C,) int64 (LIF; ``v_reset`` None for
    soft reset), the leak ``(d * leak_mult) >> leak_shift``."""

    pop: Population
    step: np.ndarray | None = None
    v_th: np.ndarray | None = None
    v_reset: np.ndarray | None = None
    leak_mult: int = 1
    leak_shift: int = 1

    name = property(lambda self: self.pop.name)
    kind = property(lambda self: self.pop.kind)
    shape = property(lambda self: self.pop.shape)
    size = property(lambda self: self.pop.size)
    projections = property(lambda self: self.pop.projections)
    bias = property(lambda self: self.pop.bias)

    @property
    def hard_reset(self):
        return self.pop.v_reset is not None


class QNet:
    """An integer network (see the module docstring). ``input_kind`` is ``dense`` (direct
    coding: inputs are quantized with ``input_step``) or ``events`` (binary spikes)."""

    def __init__(self, input_shape, populations, fmt, input_kind, input_step=None):
        self.input_shape = tuple(int(d) for d in input_shape)
        self.populations = list(populations)
        self.fmt = fmt
        if input_kind not in INPUTS:
            raise ValueError(f"input_kind: expected one of {list(INPUTS)}, got {input_kind!r}")
        self.input_kind = input_kind
        self.input_step = None if input_step is None else float(input_step)
        if input_kind == "dense" and not (self.input_step and self.input_step > 0):
            raise ValueError("input_step: dense input needs a positive step")
        self.check()

    @property
    def readout(self):
        return self.populations[-1]

    def __repr__(self):
        lines = [f"QNet(input {self.input_shape} {self.input_kind}, {self.fmt.describe()}"]
        for p in self.populations:
            extra = ""
            if p.step is not None:
                lo, hi = float(p.step.min()), float(p.step.max())
                extra = f", step {lo:.4g}" + (f"..{hi:.4g}" if hi != lo else "")
            if p.v_th is not None:
                extra += f", v_th {int(p.v_th.min())}..{int(p.v_th.max())}"
            lines.append(f"  {p.name}: {p.pop.describe()}  [{p.size} neurons{extra}]")
        return "\n".join(lines) + "\n)"

    # ------------------------------------------------------------------ checks
    def input_max(self, q):
        """The largest |input| of projection q: 1 for spikes, the input code range for dense
        input."""
        return self.fmt.x_max if q.source < 0 and self.input_kind == "dense" else 1

    def current_bounds(self):
        """Per population: the largest |current| any neuron can receive in one step (the sum
        of |weights| its inputs can reach, pooling and input range included, plus |bias|);
        0 for max pooling. Integers, exact."""
        out = []
        for p in self.populations:
            if p.kind == "maxpool":
                out.append(0)
                continue
            C = p.shape[0]
            per = np.zeros(C, dtype=object)
            for q in p.projections:
                w = np.asarray(q.weight, np.int64)
                if q.kind == "identity":
                    per = per + np.abs(w).astype(object)
                    continue
                reach = np.abs(w).reshape(w.shape[0], -1).sum(1).astype(object)
                per = per + reach * (q.pool ** 2) * self.input_max(q)
            if p.bias is not None:
                per = per + np.abs(np.asarray(p.bias, np.int64)).astype(object)
            out.append(int(max(per)) if C else 0)
        return out

    def check(self):
        """Raise ValueError, naming the layer, for a value outside its format or a current
        that could overflow the int32 accumulator."""
        fmt = self.fmt
        for i, p in enumerate(self.populations):
            where = f"layer {p.name!r}"
            if p.kind not in KINDS:
                raise TypeError(f"{where}: {p.kind} neurons are not supported by the integer "
                                f"engine (supported: {', '.join(KINDS)})")
            if p.pop.dynamics != "lif" or p.pop.rec_bias is not None or \
                    any(q.delay for q in p.projections):
                raise TypeError(f"{where}: CubaLIF and recurrent layers are not supported by "
                                "the integer engine")
            if p.kind == "maxpool":
                continue
            C = p.shape[0]
            if p.step is None or p.step.shape != (C,) or not (np.all(np.isfinite(p.step))
                                                             and np.all(p.step > 0)):
                raise ValueError(f"{where}: expected {C} positive steps")
            for q in p.projections:
                w = np.asarray(q.weight)
                if w.dtype.kind not in "iu":
                    raise ValueError(f"{where}: projection {q.name!r} has non-integer weights "
                                     f"({w.dtype})")
                lim = fmt.s_max if q.kind == "identity" else fmt.w_max
                if w.size and np.abs(w.astype(np.int64)).max() > lim:
                    raise ValueError(f"{where}: projection {q.name!r} has weights beyond "
                                     f"+-{lim}")
            vals = {"bias": p.bias}
            if p.kind == "lif":
                vals.update(v_th=p.v_th, v_reset=p.v_reset)
                if p.v_th is None or p.v_th.shape != (C,):
                    raise ValueError(f"{where}: expected {C} integer thresholds")
                if p.hard_reset and (p.v_reset is None or p.v_reset.shape != (C,)):
                    raise ValueError(f"{where}: expected {C} integer reset values")
                if p.v_th.min() < 1:
                    raise ValueError(f"{where}: thresholds must be positive integers")
                if not (p.leak_mult >= 0 and 0 <= p.leak_shift <= 62):
                    raise ValueError(f"{where}: invalid leak ({p.leak_mult}, {p.leak_shift})")
            for k, v in vals.items():
                if v is None:
                    continue
                v = np.asarray(v)
                if v.dtype.kind not in "iu" or v.shape != (C,):
                    raise ValueError(f"{where}: {k} must be {C} integers")
                if v.size and (v.min() < fmt.s_min or v.max() > fmt.s_max):
                    raise ValueError(f"{where}: {k} outside the {fmt.state_bits}-bit state "
                                     f"range [{fmt.s_min}, {fmt.s_max}]")
        for p, bound in zip(self.populations, self.current_bounds()):
            if bound > ACC_MAX:
                raise ValueError(f"layer {p.name!r}: its current could reach {bound}, beyond "
                                 f"the {ACC_BITS}-bit accumulator ({ACC_MAX}); use fewer "
                                 "weight or input bits")

    # ------------------------------------------------------------------ records
    def to_record(self):
        """(meta, arrays): see the module docstring."""
        wdt = np.int8 if self.fmt.weight_bits <= 8 else np.int16
        meta_pops, arrays = [], {}
        for i, p in enumerate(self.populations):
            P = p.pop
            meta_pops.append({
                "name": P.name, "kind": P.kind, "shape": list(P.shape), "neuron": P.neuron,
                "source": int(P.source), "pool": int(P.pool), "tau": float(P.tau),
                "v_threshold": float(P.v_threshold),
                "v_reset": None if P.v_reset is None else float(P.v_reset),
                "decay_input": bool(P.decay_input), "hard_reset": bool(p.hard_reset),
                "leak": [int(p.leak_mult), int(p.leak_shift)], "bias": P.bias is not None,
                "projections": [{"name": q.name, "kind": q.kind, "source": int(q.source),
                                 "src_shape": list(q.src_shape), "out_shape": list(q.out_shape),
                                 "stride": int(q.stride), "padding": int(q.padding),
                                 "pool": int(q.pool), "gain": q.gain}
                                for q in P.projections]})
            if p.step is not None:
                arrays[f"p{i}.step"] = np.asarray(p.step, np.float64)
            if p.kind == "lif":
                arrays[f"p{i}.v_th"] = np.asarray(p.v_th, np.int32)
                if p.hard_reset:
                    arrays[f"p{i}.v_reset"] = np.asarray(p.v_reset, np.int32)
            if P.bias is not None:
                arrays[f"p{i}.bias"] = np.asarray(P.bias, np.int32)
            for j, q in enumerate(P.projections):
                arrays[f"p{i}.q{j}.w"] = np.asarray(q.weight, np.int32 if q.kind == "identity"
                                                    else wdt)
        meta = {"input_shape": list(self.input_shape), "format": self.fmt.as_dict(),
                "input": {"kind": self.input_kind, "step": self.input_step,
                          "bits": self.fmt.input_bits},
                "populations": meta_pops}
        return meta, arrays

    @classmethod
    def from_record(cls, meta, arrays, where="quantized model"):
        """The QNet of a record (see :meth:`to_record`); ValueError, naming ``where`` and the
        entry, for anything missing or inconsistent."""
        try:
            fmt = QFormat.from_dict(meta["format"], f"{where}: format")
            pops = []
            for i, d in enumerate(meta["populations"]):
                projs = []
                for j, e in enumerate(d["projections"]):
                    w = _array(arrays, f"p{i}.q{j}.w", where).astype(np.int64)
                    q = Projection(name=e["name"], kind=e["kind"], source=int(e["source"]),
                                   src_shape=tuple(e["src_shape"]),
                                   out_shape=tuple(e["out_shape"]), weight=w,
                                   stride=int(e["stride"]), padding=int(e["padding"]),
                                   pool=int(e["pool"]))
                    if e.get("gain") is not None:
                        q = replace(q, gain=float(e["gain"]))
                    _check_weight_shape(q, where)
                    projs.append(q)
                bias = _array(arrays, f"p{i}.bias", where).astype(np.int64) if d["bias"] \
                    else None
                pop = Population(
                    name=d["name"], kind=d["kind"], shape=tuple(d["shape"]), neuron=d["neuron"],
                    projections=projs, bias=bias, tau=float(d["tau"]),
                    v_threshold=float(d["v_threshold"]),
                    v_reset=float(d["v_reset"] or 0.0) if d["hard_reset"] else None,
                    decay_input=bool(d["decay_input"]), source=int(d["source"]),
                    pool=int(d["pool"]))
                qp = QPopulation(pop, leak_mult=int(d["leak"][0]), leak_shift=int(d["leak"][1]))
                if d["kind"] != "maxpool":
                    qp.step = _array(arrays, f"p{i}.step", where).astype(np.float64)
                if d["kind"] == "lif":
                    qp.v_th = _array(arrays, f"p{i}.v_th", where).astype(np.int64)
                    if d["hard_reset"]:
                        qp.v_reset = _array(arrays, f"p{i}.v_reset", where).astype(np.int64)
                pops.append(qp)
            inp = meta["input"]
            return cls(meta["input_shape"], pops, fmt, inp["kind"], inp["step"])
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{where}: malformed record ({type(e).__name__}: {e})") from None

    def with_populations(self, pops):
        return QNet(self.input_shape, pops, self.fmt, self.input_kind, self.input_step)


def _array(arrays, key, where):
    if key not in arrays:
        raise ValueError(f"{where}: missing array {key!r}")
    a = np.asarray(arrays[key])
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{where}: {key!r} is not numeric ({a.dtype})")
    return a


def _check_weight_shape(q, where):
    C = q.src_shape[0]
    O = q.out_shape[0]
    if q.kind == "conv":
        ok = q.weight.ndim == 4 and q.weight.shape[:2] == (O, C)
    elif q.kind == "linear":
        _, H, W = q.src_shape
        ok = q.weight.shape == (O, C * (H // q.pool) * (W // q.pool))
    elif q.kind == "identity":
        ok = q.weight.shape == (O,)
    else:
        raise ValueError(f"{where}: projection {q.name!r} of unknown kind {q.kind!r}")
    if not ok:
        raise ValueError(f"{where}: projection {q.name!r}: weights of shape {q.weight.shape} "
                         f"do not fit {q.kind} {q.src_shape} -> {q.out_shape}")


def replace_weights(pop, weights, bias):
    """``pop`` (a float Population) with integer ``weights`` (per projection) and ``bias``."""
    projs = [replace(q, weight=w) for q, w in zip(pop.projections, weights)]
    return replace(pop, projections=projs, bias=bias)


__all__ = ["ACC_MAX", "QNet", "QPopulation", "replace_weights"]
