"""Post-training quantization: a trained float model -> a :class:`~snnlite.quant.qnet.QNet`.

    qnet, report = quantize(model, QFormat(weight_bits=8, state_bits=16), images, mean, std,
                            encoding="direct", T=4)

The model is compiled for the event engine (:func:`snnlite.event.compile_model`, float64:
BN folded by :func:`snnlite.nn.fold_bn`, input pooling and residual paths as projections);
each population's step and integer values come from :func:`quantize_population`.
Calibration (:func:`calibrate`) runs on the given images (the first few hundred training
images, in order: deterministic): the dense input's step is the largest |input| over them
divided by the top input code; on the same images the report then compares the integer
engine with the float one (prediction agreement, firing rates, saturated membranes).
"""
import numpy as np

from ..encoding import model_input
from ..event.compile import compile_model
from .formats import leak_constants, pow2_ceil
from .qnet import QNet, QPopulation, replace_weights
from .quantizer import quantize_population

CALIBRATION_IMAGES = 256
"""Default number of calibration images (the first of the training split)."""


def input_kind(encoding):
    """``dense`` for direct coding, ``events`` for spike encoders."""
    return "dense" if encoding == "direct" else "events"


def input_step(x, fmt):
    """The dense input's step from calibration input x: max |x| / x_max (a power of two or
    above with ``scale='pow2'``)."""
    top = float(np.max(np.abs(x[:1] if x.strides[0] == 0 else x))) if x.size else 0.0
    step = (top if top > 0 else 1.0) / fmt.x_max
    return float(pow2_ceil(step)) if fmt.scale == "pow2" else step


def quantize_net(net, fmt, kind, step=None):
    """The QNet of a compiled float ``net`` (an EventNet) in format ``fmt``, for input of
    ``kind`` (dense with input step ``step``, or events)."""
    pops = []
    for p in net.populations:
        if p.kind == "maxpool":
            pops.append(QPopulation(p))
            continue
        dyn = p.dynamics
        if p.kind not in ("lif", "readout") or dyn != "lif":
            raise TypeError(f"layer {p.name!r}: {dyn if p.kind == 'lif' else p.kind} neurons "
                            "cannot be quantized (the integer engine runs LIF and IF neurons "
                            "and the readout)")
        for q in p.projections:
            if q.delay:
                raise TypeError(f"layer {p.name!r}: the recurrent projection {q.name!r} "
                                "cannot be quantized (the integer engine is feedforward)")
        weights = [None if q.kind == "identity" else q.weight * q.weight_scale
                   for q in p.projections]
        units = [step if (q.source < 0 and kind == "dense") else 1.0 for q in p.projections]
        lif = p.kind == "lif"
        vals = quantize_population(weights, units, p.bias, p.v_threshold if lif else None,
                                   p.v_reset if lif else None, fmt, p.shape[0])
        M, Fb = leak_constants(p.tau, fmt) if lif else (1, 0)
        pops.append(QPopulation(replace_weights(p, vals.weights, vals.bias), vals.step,
                                vals.v_th, vals.v_reset, M, Fb))
    return QNet(net.input_shape, pops, fmt, kind, step if kind == "dense" else None)


def calibrate(images, mean, std, encoding, T, fmt):
    """{"kind", "step", "images", "encoding", "T", "max_abs_input"} of the calibration
    images (raw [N, C, H, W] in [0, 1])."""
    x = model_input(images, encoding, T, mean, std)
    kind = input_kind(encoding)
    top = float(np.max(np.abs(x[:1]))) if kind == "dense" and x.size else None
    return {"kind": kind, "step": input_step(x, fmt) if kind == "dense" else None,
            "images": int(len(images)), "encoding": encoding, "T": int(T),
            "max_abs_input": top}, x


def quantize(model, fmt, images, mean, std, encoding, T, step=None, batch_size=64):
    """(QNet, report) of ``model`` (a float snnlite SNN) in format ``fmt``, calibrated on raw
    images [N, C, H, W] in [0, 1] under ``encoding`` with ``T`` steps. ``step`` fixes the
    dense input's step (e.g. the one a quantization-aware run trained with).

    report: {"calibration": {...}, "agreement": fraction of calibration images whose
    integer prediction equals the float model's, "layers": [{"name", "firing_rate_float",
    "firing_rate_int", "saturated"}]} (saturated: membranes clipped per image and step).
    """
    from ..event import qengine  # the engine reads QNets; quant builds them

    images = np.asarray(images)
    if images.ndim != 4 or len(images) < 1:
        raise ValueError(f"images: expected calibration images [N, C, H, W], got shape "
                         f"{images.shape}")
    model.eval()
    net = compile_model(model, images.shape[1:], dtype=np.float64)
    cal, _ = calibrate(images, mean, std, encoding, T, fmt)
    if step is not None:
        cal["step"] = float(step)
    qnet = quantize_net(net, fmt, cal["kind"], cal["step"])
    agree, rates_f, rates_i, sat, n = 0, 0.0, 0.0, 0.0, len(images)
    for i in range(0, n, batch_size):
        x = model_input(images[i:i + batch_size], encoding, T, mean, std)
        rf = net.run(x)
        ri = qengine.run(qnet, x)
        agree += int((rf.logits.argmax(1) == ri.logits.argmax(1)).sum())
        rates_f = rates_f + np.array([lc.firing_rate().sum() for lc in rf.counts.layers])
        rates_i = rates_i + np.array([lc.firing_rate().sum() for lc in ri.counts.layers])
        sat = sat + np.array([ri.saturated[p.name].sum() / T if p.name in ri.saturated
                              else 0.0 for p in qnet.populations])
    layers = [{"name": p.name, "kind": p.kind, "firing_rate_float": float(rates_f[k] / n),
               "firing_rate_int": float(rates_i[k] / n), "saturated": float(sat[k] / n)}
              for k, p in enumerate(qnet.populations)]
    return qnet, {"calibration": cal, "agreement": agree / n, "layers": layers}


__all__ = ["CALIBRATION_IMAGES", "calibrate", "input_kind", "input_step", "quantize",
           "quantize_net"]
