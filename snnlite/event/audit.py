"""Audit a model on images: the event engine's exact spike / synop / MAC counts, energy
estimates with memory on a target, NeuroBench's metrics and the target fit check, per
encoding (the engine behind ``snnlite audit``, :mod:`snnlite.cli.audit`).

RESULT, per encoding, is documented in :mod:`snnlite.event.report` (per-sample means, per
layer and total), with ``"neurobench"`` (:mod:`snnlite.event.neurobench`) added.
"""
import numpy as np

from ..encoding import model_input
from .compile import compile_model
from .counts import Counts
from .dense import dense_counts
from .neurobench import WorkloadCounter, static_metrics
from .report import summarize
from .targets import get_target
from .targets_fit import fit

ENCODINGS = ("direct", "ttfs", "latency")


def audit_model(model, images, labels, mean, std, encodings, T, target, batch_size=16,
                check=False, formats=None, neurobench=True):
    """Audit ``model`` on raw images [N, C, H, W] in [0, 1]. Returns {"results":
    {encoding: RESULT}, "problems": {encoding: [count mismatches]} (with ``check``),
    "fit": the fit report (:func:`snnlite.event.targets_fit.fit`), "net": the EventNet}.
    ``formats``: the checkpoint's integer formats, if it records any."""
    target = get_target(target)
    static = static_metrics(model) if neurobench else None  # the model as stored
    model.astype(np.float64).eval()  # exact float64 copies of the parameters
    net = compile_model(model, images.shape[1:], dtype=np.float64)
    results, problems = {}, {}
    for enc in encodings:
        parts, logits, bad = [], [], []
        nb = WorkloadCounter(model, images.shape[1:]) if neurobench else None
        for i in range(0, len(images), batch_size):
            x = model_input(images[i:i + batch_size], enc, T, mean, std)
            res = net.run(x)
            parts.append(res.counts)
            logits.append(res.logits)
            if check:
                ref, _, _ = dense_counts(net, model, x)
                bad += [f"samples {i}+: {m}" for m in res.counts.mismatches(ref)]
            if nb is not None:
                nb.add(np.asarray(x, np.float64), labels[i:i + batch_size])
        results[enc] = summarize(Counts.concat(parts), target, enc, np.concatenate(logits),
                                 labels, net=net, formats=formats)
        if nb is not None:
            results[enc]["neurobench"] = {**static, **nb.compute(), "batch_size": batch_size}
        problems[enc] = bad
    return {"results": results, "problems": problems, "fit": fit(net, target, formats),
            "net": net}


def audit(model, images, labels, mean, std, encodings, T, target, batch_size=16,
          check=False):
    """Counts and energies only: ({encoding: RESULT}, {encoding: mismatches})."""
    out = audit_model(model, images, labels, mean, std, encodings, T, target, batch_size,
                      check, neurobench=False)
    return out["results"], out["problems"]
