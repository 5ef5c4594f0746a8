"""The event-driven engine: sample by sample, step by step over T, each population updated
from the events of its sources at that step, every operation counted per sample and per step.

Per sample, step t and population, in forward order:

    cur = bias                                   # bias_adds += N   (if there is a bias)
    for each projection:
        spike source  -> scatter its events      # acs = synops += real fan-out of each event
                         (a recurrent projection: the population's own events of step t-1)
        dense input   -> add the dense currents  # macs = synops += connections of a frame
    LIF / IF / CubaLIF: (current,) charge, fire, reset from cur
                                                 # neuron_updates += N; out_spikes += fired
    readout: accumulate cur (logits = mean over T)

The whole loop is one compiled kernel (:func:`snnlite.kernels.event.run_network`); the input
events of all steps are extracted before it, the counts assembled after it. Weights,
currents and membranes are in the net's dtype (``compile_model(..., dtype=)``): float32 by
default, float64 to reproduce a float64 dense forward spike for spike. Dense input repeated
over time (a stride-0 view, direct coding) is convolved once per sample; its MACs are still
counted at every step (see the conventions in :mod:`snnlite.event`).
"""
from dataclasses import dataclass

import numpy as np

from .. import _pool
from ..kernels import event as kev
from ..nn import functional as F
from ..nn.module import is_time_broadcast
from .counts import Counts, LayerCounts

MODES = ("auto", "events", "dense")


@dataclass
class EventResult:
    """logits [B, K] in the net's dtype; counts (:class:`Counts`); spikes {population name:
    [T, B, C, H, W] float64} when recorded (``None`` otherwise)."""

    logits: np.ndarray
    counts: Counts
    spikes: dict | None = None


def check_input(net, x, mode):
    """Validate x [T, B, C, H, W] against ``net`` and resolve ``mode``; returns the mode."""
    _check_array(net, x, mode)
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


def check_array(x, input_shape):
    """Type and shape checks of an engine's input x [T, B, *input_shape] (no pass over the
    values)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x: expected a numpy array [T, B, C, H, W], got {type(x).__name__}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x: expected a numeric array, got dtype {x.dtype}")
    if x.ndim != 5 or x.shape[2:] != input_shape or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x: expected shape [T, B, {', '.join(map(str, input_shape))}], "
                         f"got {x.shape}")


def _check_array(net, x, mode):
    """Type, shape and mode checks (no pass over the values)."""
    check_array(x, net.input_shape)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")


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


def dense_currents(projections, x, B, dtype):
    """(q_dense, dense (B, 1 or T, D)): the currents, in ``dtype``, of every projection that
    reads the dense input x, channel-last, side by side (``q_dense``: each projection's
    offset in a row, or -1); computed once if x repeats over time."""
    q_dense, width = np.full(len(projections), -1, np.int64), 0
    frames = x[:1] if is_time_broadcast(x) else x
    Tf = frames.shape[0]
    frames = np.ascontiguousarray(frames, dtype).reshape((Tf * B,) + frames.shape[2:])
    parts = []
    for i, q in enumerate(projections):
        if q.source >= 0:
            continue
        w = np.asarray(q.weight, dtype)
        if q.kind == "conv":
            y = F.conv2d_forward(frames, w, None, q.stride, q.padding, sparse_below=0.0)
            y = y.transpose(0, 2, 3, 1)
        elif q.kind == "linear":
            y = frames.reshape(Tf * B, -1) @ w.T
        else:
            raise TypeError(f"projection {q.name!r} ({q.kind}) cannot read dense input")
        q_dense[i] = width
        width += int(np.prod(q.out_shape))
        parts.append(y.reshape(Tf, B, -1))
    dense = np.concatenate(parts, axis=2).transpose(1, 0, 2)
    return q_dense, np.ascontiguousarray(dense, dtype)


def _input_events(inp, ecnt, x):
    """inp (B, T, N_in), ecnt[:, :, 0] <- the input's events; [B] 1 where x is not binary."""
    bad = np.zeros(x.shape[1], np.int64)
    _pool.chunks(kev.input_events, x.shape[1], inp, ecnt, bad, x)
    return bad


def run(net, x, mode="auto", record=False):
    """Run ``net`` on x [T, B, C, H, W] (see :meth:`EventNet.run`). Returns EventResult."""
    _check_array(net, x, mode)
    prog = net.program
    pops = net.populations
    T, B = x.shape[:2]
    inp = np.empty((B, T, int(np.prod(net.input_shape))), np.int32)
    ecnt = np.zeros((B, T, len(pops) + 1), np.int64)
    if mode != "dense" and not _input_events(inp, ecnt, x).any():
        mode = "events"
    else:  # not binary: raises for mode="events", or for NaN / infinity
        mode = check_input(net, x, mode)
    dt = prog.dtype
    if mode == "dense":
        ecnt[:, :, 0] = 0
        q_dense, dense = dense_currents(prog.projections, x, B, dt)
    else:
        q_dense, dense = np.full(len(prog.projections), -1, np.int64), np.zeros((B, 1, 0), dt)
    P = _pool.get_num_threads()
    syn = np.zeros((B, T, len(prog.projections)), np.int64)
    acc = np.zeros((B, pops[-1].size), dt)
    scratch = (np.empty((P, prog.n_max), dt), np.empty((P, prog.n_max), dt),  # cur, mem
               np.empty((P, prog.n_max), dt),  # CubaLIF synaptic currents
               np.empty((P, prog.n_max + 8), np.uint8), np.zeros((P, prog.n_max), np.uint8),
               np.zeros((P, prog.n_pooled), dt), np.empty((P, prog.n_pooled), np.int32))
    ev = np.empty((B if record else P, T, prog.E), np.int32)
    _pool.shares(kev.run_network, inp, ev, record, ecnt, syn, acc, dense, q_dense,
                     *scratch, *prog.kernel_args())
    counts = run_counts(net.populations, net.input_shape, mode, ecnt, syn)
    spikes = recorded_spikes(ev, ecnt, prog.pop_off, pops) if record else None
    return EventResult(acc / dt.type(T), counts, spikes)


def run_counts(populations, input_shape, mode, ecnt, syn):
    """Counts of a run of ``populations`` (the float or the integer engine's) from the
    per-(sample, step) event counts ecnt (B, T, S) and the synops per projection
    syn (B, T, Q)."""
    B, T = ecnt.shape[:2]
    n_in = int(np.prod(input_shape))
    events = [np.full((B, T), n_in, np.int64) if mode == "dense" else ecnt[:, :, 0].copy()]
    events += [ecnt[:, :, i + 1].copy() for i in range(len(populations))]
    layers, k = [], 0
    for i, p in enumerate(populations):
        lc = LayerCounts.zeros(p, B, T)
        if p.kind == "maxpool":
            lc.in_events[:] = events[p.source + 1]
        for q in p.projections:
            if q.source < 0 and mode == "dense":
                s = np.full((B, T), q.dense_connections(), np.int64)
                lc.macs += s
            else:
                s = syn[:, :, k]
                lc.acs += s
            lc.synops += s
            lc.projection_synops[q.name][:] = s
            lc.in_events += delayed(events[q.source + 1], q.delay)
            k += 1
        for t in range(T):
            lc.bias_adds[:, t] = p.size if p.biased(t) else 0
        if p.kind == "lif":
            lc.neuron_updates[:] = p.size
        if p.kind != "readout":
            lc.out_spikes[:] = events[i + 1]
        layers.append(lc)
    return Counts(layers, events[0], mode)


def delayed(counts, d):
    """counts [B, T] of a source as a projection with delay d (0 or 1) sees them."""
    if d == 0:
        return counts
    out = np.zeros_like(counts)
    out[:, d:] = counts[:, :-d]
    return out


def recorded_spikes(ev, ecnt, pop_off, pops):
    """{population name: its spike maps (see :func:`spike_maps`)} of a recorded run, from
    the event lists ev (B, T, E) at offsets pop_off and the counts ecnt (B, T, S); the
    readout has none."""
    return {p.name: spike_maps(ev[:, :, pop_off[i]:pop_off[i] + p.size], ecnt[:, :, i + 1],
                               p.shape)
            for i, p in enumerate(pops) if p.kind != "readout"}


def spike_maps(ev, cnt, shape):
    """[T, B, C, H, W] float64 binary maps from the event lists ev (B, T, N), cnt (B, T)."""
    B, T, N = ev.shape
    b, t, e = np.nonzero(np.arange(N) < cnt[..., None])
    flat = np.zeros((B, T, N))
    flat[b, t, ev[b, t, e]] = 1.0
    C, H, W = shape
    return np.ascontiguousarray(flat.reshape(B, T, H, W, C).transpose(1, 0, 4, 2, 3))
