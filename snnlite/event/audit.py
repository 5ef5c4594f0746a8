"""Audit a model on images: the event engine's exact spike / synop / MAC counts and energy
estimates per encoding (the engine behind ``snnlite audit``, :mod:`snnlite.cli.audit`).

RESULT, per encoding, is documented in :mod:`snnlite.event.report` (per-sample means, per
layer and total).
"""
import numpy as np

from ..encoding import model_input
from .compile import compile_model
from .counts import Counts
from .dense import dense_counts
from .report import summarize

ENCODINGS = ("direct", "ttfs", "latency")


def audit(model, images, labels, mean, std, encodings, T, table, batch_size=16,
          check=False):
    """Audit ``model`` on raw images [N, 3, H, W] in [0, 1]. Returns ({encoding: RESULT},
    {encoding: list of count mismatches}) (mismatches only with ``check``)."""
    model.astype(np.float64).eval()  # exact float64 copies of the parameters
    net = compile_model(model, images.shape[1:], dtype=np.float64)
    results, problems = {}, {}
    for enc in encodings:
        parts, logits, bad = [], [], []
        for i in range(0, len(images), batch_size):
            x = model_input(images[i:i + batch_size], enc, T, mean, std)
            res = net.run(x)
            parts.append(res.counts)
            logits.append(res.logits)
            if check:
                ref, _, _ = dense_counts(net, model, x)
                bad += [f"samples {i}+: {m}" for m in res.counts.mismatches(ref)]
        results[enc] = summarize(Counts.concat(parts), table, enc, np.concatenate(logits),
                                 labels)
        problems[enc] = bad
    return results, problems
