"""Batch-norm folding: the one place where BN is merged into the synapses before it."""
import numpy as np


def fold_bn(weight, bias, bn):
    """(w', b') in float64 for a conv/linear ``weight`` (O, ...) and ``bias`` (O,) or None
    followed by ``bn`` in eval mode (running statistics)::

        s = gamma / sqrt(running_var + eps),  w' = w * s,  b' = (b - running_mean) * s + beta
    """
    scale = bn.weight.data.astype(np.float64) / np.sqrt(
        bn.running_var.astype(np.float64) + bn.eps)
    w = np.asarray(weight, np.float64)
    b = 0.0 if bias is None else np.asarray(bias, np.float64)
    w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    b = (b - bn.running_mean.astype(np.float64)) * scale + bn.bias.data.astype(np.float64)
    return w, b


__all__ = ["fold_bn"]
