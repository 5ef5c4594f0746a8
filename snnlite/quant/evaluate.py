"""Accuracy and audit of a quantized network, through the integer event engine (what
``snnlite eval`` and ``snnlite audit`` run for a quantized checkpoint)."""
import numpy as np

from .. import losses
from ..encoding import model_input
from ..event import qengine
from ..event.counts import Counts
from ..event.graph import EventNet
from ..event.report import summarize
from ..event.targets import get_target
from ..event.targets_fit import fit


def check_encoding(qnet, enc):
    """Raise ValueError when ``enc`` cannot feed ``qnet``: a net quantized for events takes
    spike encodings only."""
    if qnet.input_kind == "events" and enc == "direct":
        raise ValueError("encoding 'direct': this integer model was quantized for event input "
                         "(its first layer takes spikes); evaluate it with ttfs or latency, or "
                         "quantize the model again from direct-coded calibration")


def evaluate_quantized(qnet, ds, T, enc, batch_size=100, progress=False):
    """{"acc", "loss", "logits", "saturated", "images"} of ``qnet`` on dataset ``ds``
    (``saturated``: membranes clipped per image, summed over layers and steps)."""
    check_encoding(qnet, enc)
    n = len(ds)
    logits, total, sat = [], 0.0, 0
    it = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(it, desc=f"eval {enc} (integer)", leave=False, dynamic_ncols=True)
    for i in it:
        x = ds.images[i:i + batch_size].astype(np.float32) / np.float32(255)
        res = qengine.run(qnet, model_input(x, enc, T, ds.mean, ds.std))
        loss, _ = losses.cross_entropy(res.logits, ds.labels[i:i + batch_size])
        total += float(loss) * len(res.logits)
        sat += sum(int(v.sum()) for v in res.saturated.values())
        logits.append(res.logits)
    logits = np.concatenate(logits)
    return {"acc": float((logits.argmax(1) == ds.labels).mean()), "loss": total / n,
            "logits": logits, "saturated": sat / n, "images": n}


def event_net(qnet):
    """The structure of ``qnet`` as an EventNet (integer weights inside), for what reads
    only the structure: memory sizes, the target fit check."""
    return EventNet(qnet.input_shape, [p.pop for p in qnet.populations], np.float64)


def runtime_mismatches(qnet, x, res):
    """Differences between the integer engine's result ``res`` (recorded) on x and the numpy
    runtime's (:mod:`snnlite.runtime`, an independent implementation): spikes of every
    layer and step, their counts, the integer readout and the logits."""
    from .. import runtime

    meta, arrays = qnet.to_record()
    rt = runtime.run(runtime.from_record(meta, arrays), x, record=True)
    bad = []
    for lc in res.counts.layers:
        if lc.kind == "readout":
            continue
        s = rt.spikes[lc.name]
        if not np.array_equal(s, res.spikes[lc.name]):
            bad.append(f"{lc.name}: spikes differ")
        if not np.array_equal(s.reshape(s.shape[0], s.shape[1], -1).sum(2).T, lc.out_spikes):
            bad.append(f"{lc.name}: out_spikes differ from the runtime's spikes")
        if lc.name in rt.saturated and not np.array_equal(rt.saturated[lc.name],
                                                          res.saturated[lc.name]):
            bad.append(f"{lc.name}: saturations differ")
    if not np.array_equal(rt.acc, res.acc) or not np.array_equal(rt.logits, res.logits):
        bad.append("readout differs")
    return bad


def audit_quantized(qnet, images, labels, mean, std, encodings, T, target, batch_size=16,
                    formats=None, check=False):
    """The integer engine's counts and energy estimates per encoding, as
    :func:`snnlite.event.audit.audit_model` returns them for a float model (RESULT of
    :mod:`snnlite.event.report`, plus ``"saturated"``: clipped membranes per sample), without
    NeuroBench's metrics. ``check``: compare every batch with the numpy runtime
    (:func:`runtime_mismatches`)."""
    target = get_target(target)
    net = event_net(qnet)
    formats = formats or {"weight_bits": qnet.fmt.weight_bits,
                          "state_bits": qnet.fmt.state_bits}
    results, problems = {}, {}
    for enc in encodings:
        check_encoding(qnet, enc)
        parts, logits, sat, bad = [], [], 0, []
        for i in range(0, len(images), batch_size):
            x = model_input(images[i:i + batch_size], enc, T, mean, std)
            res = qengine.run(qnet, x, record=check)
            if check:
                bad += [f"samples {i}+: {m}" for m in runtime_mismatches(qnet, x, res)]
            parts.append(res.counts)
            logits.append(res.logits)
            sat += sum(int(v.sum()) for v in res.saturated.values())
        results[enc] = summarize(Counts.concat(parts), target, enc, np.concatenate(logits),
                                 labels, net=net, formats=formats)
        results[enc]["saturated"] = sat / len(images)
        problems[enc] = bad
    return {"results": results, "problems": problems, "fit": fit(net, target, formats),
            "net": net}


__all__ = ["audit_quantized", "check_encoding", "evaluate_quantized", "event_net",
           "runtime_mismatches"]
