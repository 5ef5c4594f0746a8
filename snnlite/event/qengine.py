"""The integer event engine: a quantized network (:class:`snnlite.quant.QNet`) run in integer
arithmetic, with the float engine's exact counts (:class:`~snnlite.event.counts.Counts`,
same rows and conventions, see :mod:`snnlite.event`) and every saturated membrane counted.

    res = run(qnet, x)       # x [T, B, C, H, W]: binary spikes, or dense floats (direct)
    res.logits               # [B, K] float64: acc * step / T
    res.acc                  # [B, K] int64: the readout's integer currents summed over T
    res.counts               # exact per-sample, per-step counts
    res.saturated            # {layer: [B, T] int64} membranes clipped to the state width

A net quantized for dense input (direct coding) quantizes x with its input step and its
first layer does MACs at every step (as the float engine counts them); a net quantized for
events takes binary input only. Arithmetic: :mod:`snnlite.quant.formats`; the kernel:
:func:`snnlite.kernels.qevent.qrun_network`, the float engine's layout with integer
weights (:func:`snnlite.event.program.projection_runs` lays them out).
"""
from dataclasses import dataclass, replace

import numpy as np

from .. import _pool
from ..kernels import event as kev
from ..kernels import qevent as kq
from ..nn.module import is_time_broadcast
from .counts import Counts
from .engine import check_array, dense_currents, recorded_spikes, run_counts
from .program import KIND, concat, pack_projections, projection_runs


@dataclass
class QResult:
    """logits [B, K] float64; acc [B, K] int64; counts; saturated {layer name: [B, T]
    int64} for LIF layers; spikes {layer name: [T, B, C, H, W] float64} when recorded."""

    logits: np.ndarray
    acc: np.ndarray
    counts: Counts
    saturated: dict
    spikes: dict | None = None


def _int_weights(q):
    """(pmap, ptr, runs, int32 weights (C, row), wc, cc) of projection q (integer weights)
    in the layout of ``projection_runs``."""
    if q.kind == "identity":
        pmap, ptr, runs, _, cc = projection_runs(q)
        return pmap, ptr, runs, np.asarray(q.weight, np.int32).reshape(1, -1), 1, cc
    w = np.asarray(q.weight, np.int64)
    pmap, ptr, runs, wt, cc = projection_runs(replace(q, weight=w.astype(np.float64)))
    wi = np.rint(wt / q.weight_scale).astype(np.int64)  # undo the float layout's / pool^2
    if not np.array_equal(np.sort(wi.ravel()), np.sort(w.ravel())):
        raise AssertionError(f"{q.name}: integer weights changed in the layout")
    return pmap, ptr, runs, wi.astype(np.int32), wi.shape[1], cc


class QProgram:
    """Flat int32 arrays for :func:`~snnlite.kernels.qevent.qrun_network` (names as there)."""

    def __init__(self, qnet):
        pops = qnet.populations
        fmt = qnet.fmt
        sizes = [p.size for p in pops]
        self.pop_off = np.cumsum([0] + sizes).astype(np.int64)
        self.E = int(self.pop_off[-1])
        self.pop_off = self.pop_off[:-1].copy()
        self.n_max = max(sizes)
        self.pop_kind = np.array([KIND[p.kind] for p in pops], np.int64)
        self.pop_size = np.array(sizes, np.int64)
        self.pop_q = np.cumsum([0] + [len(p.projections) for p in pops]).astype(np.int64)
        self.pop_src = np.array([p.pop.source + 1 for p in pops], np.int64)
        self.pop_geom = np.array([(pops[p.pop.source].shape[2], p.shape[0], p.pop.pool)
                                  if p.kind == "maxpool" else (1, 1, 1) for p in pops], np.int64)
        self.s_lo = np.full(len(pops), fmt.s_min, np.int64)
        self.s_hi = np.full(len(pops), fmt.s_max, np.int64)
        self.leak_m = np.array([p.leak_mult for p in pops], np.int64)
        self.leak_f = np.array([p.leak_shift for p in pops], np.int64)
        self.decay_input = np.array([p.pop.decay_input for p in pops], np.bool_)
        self.hard_reset = np.array([p.hard_reset for p in pops], np.bool_)
        biases, ths, rests, self.pop_bias, self.pop_nrn = [], [], [], [], []
        nb = nn = 0
        for p in pops:
            per = p.size // p.shape[0]  # channel-last: a channel's value at every position
            if p.bias is None:
                self.pop_bias.append(-1)
            else:
                biases.append(np.tile(p.bias, per))
                self.pop_bias.append(nb)
                nb += p.size
            if p.kind == "lif":
                ths.append(np.tile(p.v_th, per))
                rests.append(np.tile(p.v_reset if p.hard_reset else np.zeros_like(p.v_th), per))
                self.pop_nrn.append(nn)
                nn += p.size
            else:
                self.pop_nrn.append(-1)
        self.pop_bias = np.array(self.pop_bias, np.int64)
        self.pop_nrn = np.array(self.pop_nrn, np.int64)
        self.bias, self.th, self.rest = (concat(a, np.int32) for a in (biases, ths, rests))

        self.projections = [q for p in pops for q in p.projections]
        vars(self).update(pack_projections(self.projections, _int_weights, np.int32))

    KERNEL_ARGS = ("pop_off", "pop_kind", "pop_size", "pop_q", "pop_bias", "pop_nrn", "pop_src",
                   "pop_geom", "s_lo", "s_hi", "leak_m", "leak_f", "decay_input", "hard_reset",
                   "bias", "th", "rest", "q_src", "q_C", "q_pool", "q_pmap", "q_ptr", "q_w",
                   "q_wc", "q_cc", "pmap", "run_ptr", "run_cur", "run_w", "run_len", "w")

    def kernel_args(self):
        return tuple(getattr(self, k) for k in self.KERNEL_ARGS)


def program(qnet):
    """The packed arrays of ``qnet`` (built once, kept on the net)."""
    prog = getattr(qnet, "_qprogram", None)
    if prog is None:
        prog = qnet._qprogram = QProgram(qnet)
    return prog


def _check(qnet, x):
    if not (hasattr(qnet, "fmt") and hasattr(qnet, "input_kind")):
        raise TypeError(f"qnet: expected a quantized network (snnlite.quant.QNet), got "
                        f"{type(qnet).__name__}")
    check_array(x, qnet.input_shape)
    xs = x[:1] if is_time_broadcast(x) else x
    if x.dtype.kind == "f" and not np.isfinite(xs).all():
        raise ValueError("x: contains NaN or infinity")


def quantize_input(qnet, x):
    """The integer codes of dense input x: ``clip(rint(x / step), +-x_max)`` (int64; a
    time-broadcast x gives a time-broadcast result)."""
    bc = is_time_broadcast(x)
    xs = np.asarray(x[:1] if bc else x, np.float64)
    m = qnet.fmt.x_max
    codes = np.clip(np.rint(xs / qnet.input_step), -m, m).astype(np.int64)
    return np.broadcast_to(codes, x.shape) if bc else codes


def run(qnet, x, record=False):
    """Run ``qnet`` on x [T, B, C, H, W] (see the module docstring). Returns QResult."""
    _check(qnet, x)
    prog = program(qnet)
    pops = qnet.populations
    T, B = x.shape[:2]
    inp = np.zeros((B, T, int(np.prod(qnet.input_shape))), np.int32)
    ecnt = np.zeros((B, T, len(pops) + 1), np.int64)
    if qnet.input_kind == "events":
        bad = np.zeros(B, np.int64)
        _pool.chunks(kev.input_events, B, inp, ecnt, bad, x)
        if bad.any():
            b = int(np.flatnonzero(bad)[0])
            xb = x[:, b]
            v = xb[(xb != 0) & (xb != 1)].ravel()[0]
            raise ValueError(f"x: this integer model takes binary event input (it was "
                             f"quantized for events); found {v!r} in sample {b}")
        mode = "events"
        q_dense, dense = np.full(len(prog.projections), -1, np.int64), \
            np.zeros((B, 1, 0), np.int32)
    else:
        mode = "dense"
        # float64 on integer codes is exact: every partial sum is an integer within the
        # proven int32 bound
        q_dense, dense = dense_currents(prog.projections, quantize_input(qnet, x), B,
                                        np.float64)
        dense = np.rint(dense, out=dense).astype(np.int32)
    P = _pool.get_num_threads()
    syn = np.zeros((B, T, len(prog.projections)), np.int64)
    sat = np.zeros((B, T, len(pops)), np.int64)
    acc = np.zeros((B, pops[-1].size), np.int64)
    scratch = (np.empty((P, prog.n_max), np.int32), np.empty((P, prog.n_max), np.int32),
               np.empty((P, prog.n_max + 8), np.uint8), np.zeros((P, prog.n_max), np.uint8),
               np.zeros((P, prog.n_pooled), np.int32), np.empty((P, prog.n_pooled), np.int32))
    ev = np.empty((B if record else P, T, prog.E), np.int32)
    _pool.shares(kq.qrun_network, inp, ev, record, ecnt, syn, sat, acc, dense, q_dense,
                 *scratch, *prog.kernel_args())
    counts = run_counts([qp.pop for qp in qnet.populations], qnet.input_shape, mode, ecnt,
                        syn)
    saturated = {p.name: sat[:, :, i].copy() for i, p in enumerate(pops) if p.kind == "lif"}
    spikes = recorded_spikes(ev, ecnt, prog.pop_off, pops) if record else None
    return QResult(logits(qnet, acc, T), acc, counts, saturated, spikes)


def logits(qnet, acc, T):
    """float64 logits [B, K] of the readout's summed integer currents: acc * step / T."""
    return acc.astype(np.float64) * qnet.readout.step[None, :] / float(T)


__all__ = ["QProgram", "QResult", "logits", "program", "quantize_input", "run"]
