"""Statistics of a transfer study: weight digests, correlation, paired significance."""
import hashlib

import numpy as np


def state_digest(state):
    """SHA-256 of a ``state_dict`` (names, dtypes, shapes and bytes, in its order). A 0-d
    array (``num_batches_tracked``) hashes as shape ``(1,)``, as it always has, so that the
    digests recorded in existing runs' checkpoints and results still match."""
    h = hashlib.sha256()
    for k, v in state.items():
        v = np.ascontiguousarray(v)
        h.update(f"{k}:{v.dtype.str}:{v.shape};".encode())
        h.update(v.tobytes())
    return h.hexdigest()


def pearson(x, y):
    """Pearson correlation of two sequences; None if fewer than 3 points or one is
    constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def mcnemar(correct_a, correct_b):
    """Exact two-sided McNemar test of two classifiers on the same samples.

    ``correct_a``, ``correct_b``: boolean arrays, True where each was right. Returns
    ``(b, c, p)``: the samples only A got right, only B got right, and the probability of
    a split at least as uneven as (b, c) if both were equally accurate (binomial, 1/2)."""
    ra, rb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if ra.shape != rb.shape or ra.ndim != 1:
        raise ValueError(f"correct_a, correct_b: expected two 1-D arrays of one length, got "
                         f"shapes {ra.shape} and {rb.shape}")
    b, c = int((ra & ~rb).sum()), int((~ra & rb).sum())
    if b + c == 0:
        return b, c, 1.0
    from scipy.stats import binom
    return b, c, float(min(1.0, 2 * binom.cdf(min(b, c), b + c, 0.5)))
