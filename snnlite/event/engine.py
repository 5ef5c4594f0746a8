"""The event-driven engine: step by step over T, each population updated from the events of
its sources at that step, every operation counted per sample and per step.

Per step t and population, in forward order:

    cur = bias                                   # bias_adds += N   (if there is a bias)
    for each projection:
        spike source  -> scatter its events      # acs = synops += real fan-out of each event
        dense input   -> add the dense currents  # macs = synops += connections of a frame
    LIF: charge, fire, reset from cur            # neuron_updates += N; out_spikes += fired
    readout: accumulate cur (logits = mean over T)

Everything runs in float64. Dense input repeated over time (a stride-0 view, direct coding)
is convolved once per sample; its MACs are still counted at every step (see the
conventions in :mod:`snnlite.event`).
"""
from dataclasses import dataclass

import numpy as np

from ..kernels import event as kev
from ..nn import functional as F
from ..nn.module import is_time_broadcast
from .counts import Counts, LayerCounts

MODES = ("auto", "events", "dense")


@dataclass
class EventResult:
    """logits [B, K]; counts (:class:`Counts`); spikes {population name: [T, B, C, H, W]
    float64} when recorded (``None`` otherwise)."""

    logits: np.ndarray
    counts: Counts
    spikes: dict | None = None


def check_input(net, x, mode):
    """Validate x [T, B, C, H, W] against ``net`` and resolve ``mode``; returns the mode."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy array [T, B, C, H, W], got {type(x).__name__}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x: expected a numeric array, got dtype {x.dtype}")
    if x.ndim != 5 or x.shape[2:] != net.input_shape or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x: expected shape [T, B, {', '.join(map(str, net.input_shape))}], "
                         f"got {x.shape}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    xs = x[:1] if is_time_broadcast(x) else x
    if x.dtype.kind == "f" and not np.isfinite(xs).all():
        raise ValueError("x: contains NaN or infinity")
    binary = (xs == 0) | (xs == 1)
    if mode == "events" and not binary.all():
        where = tuple(int(i) for i in np.argwhere(~binary)[0])
        raise ValueError(f"x: event input must be binary (0 or 1); found {xs[where]!r} at "
                         f"[t, b, c, y, x] = {list(where)}")
    if mode == "auto":
        mode = "events" if binary.all() else "dense"
    return mode


def events_to_dense(events, T, B, input_shape):
    """Binary [T, B, C, H, W] float64 from an event list, int array (n, 5) of
    (t, b, c, y, x). Raises ValueError for an out-of-range coordinate or a repeated event."""
    ev = np.asarray(events)
    if ev.ndim != 2 or ev.shape[1] != 5:
        raise ValueError(f"events: expected an int array of shape (n, 5) with columns "
                         f"(t, b, c, y, x), got shape {ev.shape}")
    if ev.size and ev.dtype.kind not in "iu":
        raise TypeError(f"events: expected integer coordinates, got dtype {ev.dtype}")
    dims = (int(T), int(B)) + tuple(input_shape)
    for i, (col, n) in enumerate(zip("tbcyx", dims)):
        bad = np.flatnonzero((ev[:, i] < 0) | (ev[:, i] >= n))
        if bad.size:
            raise ValueError(f"events[:, {i}] ({col}): {int(ev[bad[0], i])} out of range "
                             f"[0, {n}) at row {int(bad[0])}")
    x = np.zeros(dims, np.float64)
    np.add.at(x, tuple(ev.T.astype(np.intp)), 1.0)
    if ev.size and x.max() > 1:
        where = [int(i) for i in np.argwhere(x > 1)[0]]
        raise ValueError(f"events: repeated event at (t, b, c, y, x) = {where}; a neuron "
                         "spikes at most once per step")
    return x


def _dense_current(proj, x):
    """Currents (B, N) channel-last of a dense projection applied to x (B, C, H, W)."""
    x = np.ascontiguousarray(x, np.float64)
    B = x.shape[0]
    if proj.kind == "conv":
        y = F.conv2d_forward(x, proj.weight, None, proj.stride, proj.padding, sparse_below=0.0)
        return np.ascontiguousarray(y.transpose(0, 2, 3, 1)).reshape(B, -1)
    if proj.kind == "linear":
        return x.reshape(B, -1) @ proj.weight.T
    raise TypeError(f"projection {proj.name!r} ({proj.kind}) cannot read dense input")


def run(net, x, mode="auto", record=False):
    """Run ``net`` on x [T, B, C, H, W] (see :meth:`EventNet.run`). Returns EventResult."""
    mode = check_input(net, x, mode)
    T, B = x.shape[:2]
    C, H, W = net.input_shape
    pops = net.populations
    counts = Counts([LayerCounts.zeros(p, B, T) for p in pops], np.zeros((B, T), np.int64),
                    mode)
    v = [np.full((B, p.size), 0.0 if p.v_reset is None else p.v_reset)
         if p.kind == "lif" else None for p in pops]
    idx = [np.empty((B, p.size), np.int32) for p in pops]
    cnt = [np.zeros(B, np.int64) for p in pops]
    seen = [np.zeros((B, p.size), np.uint8) if p.kind == "maxpool" else None for p in pops]
    cur = np.empty(B * max(p.size for p in pops))
    in_idx, in_cnt = np.empty((B, C * H * W), np.int32), np.zeros(B, np.int64)
    readout = np.zeros((B, pops[-1].size))
    spikes = {p.name: np.zeros((T, B) + p.shape) for p in pops if p.kind != "readout"} \
        if record else None
    dense_once = {}
    if mode == "dense" and is_time_broadcast(x):
        dense_once = {id(q): _dense_current(q, x[0]) for p in pops for q in p.projections
                      if q.source < 0}
    syn = np.zeros(B, np.int64)
    for t in range(T):
        if mode == "events":
            kev.events_from_dense(in_idx, in_cnt, np.ascontiguousarray(x[t], np.float64))
            counts.input_events[:, t] = in_cnt
        else:
            counts.input_events[:, t] = C * H * W
        for i, p in enumerate(pops):
            lc = counts.layers[i]
            if p.kind == "maxpool":
                kev.maxpool_events(idx[i], cnt[i], seen[i], idx[p.source], cnt[p.source],
                                   pops[p.source].shape[1], pops[p.source].shape[2],
                                   p.shape[0], p.pool)
                lc.in_events[:, t] = cnt[p.source]
                lc.out_spikes[:, t] = cnt[i]
            else:
                c = cur[:B * p.size].reshape(B, p.size)
                _step_currents(c, p, lc, t, x, mode, dense_once, in_idx, in_cnt, pops, idx,
                               cnt, syn)
                if p.kind == "lif":
                    kev.lif_step(idx[i], cnt[i], v[i], c, p.tau, p.v_threshold,
                                 0.0 if p.v_reset is None else p.v_reset, p.decay_input,
                                 p.v_reset is not None)
                    lc.out_spikes[:, t] = cnt[i]
                    lc.neuron_updates[:, t] = p.size
                else:
                    readout += c
            if record and p.kind != "readout":
                _record(spikes[p.name], t, p, idx[i], cnt[i])
    return EventResult(readout / T, counts, spikes)


def _step_currents(c, p, lc, t, x, mode, dense_once, in_idx, in_cnt, pops, idx, cnt, syn):
    """c (B, N) <- bias + the contributions of every projection into ``p`` at step t."""
    B = c.shape[0]
    if p.bias is None:
        c[:] = 0.0
    else:
        c.reshape(B, -1, p.shape[0])[:] = p.bias
        lc.bias_adds[:, t] = p.size
    for q in p.projections:
        if q.source < 0 and mode == "dense":
            d = dense_once.get(id(q))
            c += _dense_current(q, x[t]) if d is None else d
            n = q.dense_connections()
            lc.macs[:, t] += n
            lc.synops[:, t] += n
            lc.projection_synops[q.name][:, t] = n
            lc.in_events[:, t] += int(np.prod(q.src_shape))
            continue
        e_idx, e_cnt = (in_idx, in_cnt) if q.source < 0 else (idx[q.source], cnt[q.source])
        Cs, Hs, Ws = q.src_shape
        syn[:] = 0
        if q.kind == "conv":
            Co, Ho, Wo = q.out_shape
            kev.conv_scatter(c.reshape(B, Ho, Wo, Co), syn, e_idx, e_cnt, q.wt, Ws, Cs, q.pool,
                             q.stride, q.padding)
        elif q.kind == "linear":
            kev.linear_scatter(c, syn, e_idx, e_cnt, q.wt, Hs, Ws, Cs, q.pool)
        else:
            kev.identity_scatter(c, syn, e_idx, e_cnt)
        lc.acs[:, t] += syn
        lc.synops[:, t] += syn
        lc.projection_synops[q.name][:, t] = syn
        lc.in_events[:, t] += e_cnt


def _record(out, t, p, idx, cnt):
    """out[t] (B, C, H, W) <- the spikes of population p from its event list."""
    B = out.shape[1]
    C, H, W = p.shape
    flat = np.zeros((B, p.size))
    for b in range(B):
        flat[b, idx[b, :cnt[b]]] = 1.0
    out[t] = flat.reshape(B, H, W, C).transpose(0, 3, 1, 2)
