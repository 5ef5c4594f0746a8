"""The dense reference path: the model's traced graph run densely, unfused (eval mode),
and the same counts derived from its spike maps by dense array arithmetic, independently of
the event engine.

Fan-out is measured by convolution: an event map (sum-pooled when the projection pools) is
convolved with an all-ones kernel, which gives at each output position the number of events
in its receptive field; the sum over positions times the output channels is the number of
(event, target neuron) pairs, i.e. the synops. Dense input uses an all-ones input map.
"""
import numpy as np

from ..nn import functional as F
from ..nn.graph import trace
from ..nn.module import is_time_broadcast
from ..nn.plan import Plan
from .counts import Counts, LayerCounts
from .engine import check_input


def dense_forward(model, x, names=()):
    """Eval forward of ``model`` on x [T, B, C, H, W], node by node of its traced graph
    (each layer's own dense ``forward``, unfused). Returns (output, {name: output of the
    node ``name``, for each node name in ``names``})."""
    names = set(names)
    graph = trace(model, x.shape[2:])
    missing = sorted(n for n in names if n not in graph)
    if missing:
        raise KeyError(f"dense_forward: no modules named {missing} ran in the forward")
    was_training = model.training
    model.eval()
    try:
        out, rec = Plan(graph, fuse=False).forward(x, record=names)
    finally:
        model.train(was_training)
    return out, rec


def _sum_pool(s, p):
    """s (N, C, H, W) summed over p x p windows."""
    if p == 1:
        return s
    N, C, H, W = s.shape
    return s.reshape(N, C, H // p, p, W // p, p).sum((3, 5))


def _fanout(q, s):
    """(N,) int64 synops of projection q for event maps s (N, C, H, W) (0/1 or all ones)."""
    s = np.ascontiguousarray(_sum_pool(s.astype(np.float64), q.pool))
    O = q.out_shape[0]
    if q.kind == "conv":
        k = q.kernel
        hits = F.conv2d_forward(s, np.ones((1, s.shape[1], k, k)), None, q.stride, q.padding,
                                sparse_below=0.0)
        return np.rint(hits.sum((1, 2, 3))).astype(np.int64) * O
    total = np.rint(s.sum((1, 2, 3))).astype(np.int64)
    return total * (O if q.kind == "linear" else 1)


def dense_counts(net, model, x, mode="auto"):
    """Counts of ``net`` on x from the dense forward of ``model`` (the model ``net`` was
    compiled from). Returns (Counts, logits [B, K], {population name: spikes [T, B, ...]}).
    ``model`` should be float64, and ``net`` compiled with ``dtype=np.float64``, for the
    spikes to match the event engine's exactly."""
    mode = check_input(net, x, mode)
    T, B = x.shape[:2]
    pops = net.populations
    names = [p.neuron for p in pops if p.kind != "readout"]
    xm = x
    if x.dtype != model.dtype:
        xm = x[:1].astype(model.dtype) if is_time_broadcast(x) else x.astype(model.dtype)
        xm = np.broadcast_to(xm, x.shape) if is_time_broadcast(x) else xm
    logits, rec = dense_forward(model, xm, names)
    spikes = {p.name: rec[p.neuron].reshape((T, B) + p.shape) for p in pops
              if p.kind != "readout"}
    maps = [spikes.get(p.name) for p in pops]
    xin = np.asarray(x, np.float64)
    if mode == "dense":
        xin = np.ones((T, B) + net.input_shape)
    counts = Counts([], _nonzero(xin), mode)
    for i, p in enumerate(pops):
        lc = LayerCounts.zeros(p, B, T)
        if p.kind == "maxpool":
            lc.in_events[:] = _nonzero(maps[p.source])
        for q in p.projections:
            src = xin if q.source < 0 else maps[q.source]
            if q.delay:  # a recurrent projection sees the spikes of the step before
                src = np.concatenate([np.zeros_like(src[:q.delay]), src[:-q.delay]])
            syn = _fanout(q, src.reshape((T * B,) + src.shape[2:])).reshape(T, B).T
            lc.projection_synops[q.name][:] = syn
            lc.synops += syn
            lc.in_events += _nonzero(src)
            if q.source < 0 and mode == "dense":
                lc.macs += syn
            else:
                lc.acs += syn
        if p.kind != "readout":
            lc.out_spikes[:] = _nonzero(maps[i])
        for t in range(T):
            lc.bias_adds[:, t] = p.size if p.biased(t) else 0
        if p.kind == "lif":
            lc.neuron_updates[:] = p.size
        counts.layers.append(lc)
    return counts, logits, spikes


def _nonzero(s):
    """[B, T] int64 nonzero count of s [T, B, ...]."""
    T, B = s.shape[:2]
    return np.count_nonzero(s.reshape(T, B, -1), axis=2).T.astype(np.int64)
