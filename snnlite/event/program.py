"""The packed form of an :class:`~snnlite.event.graph.EventNet` that
:func:`snnlite.kernels.event.run_network` executes: flat arrays of per-population and
per-projection constants, the synapses as runs (see :mod:`snnlite.kernels.event`), weights,
biases and LIF constants in the compute dtype. Built once per net.
"""
import numpy as np

from ..kernels.event import CUBA, LIF, MAXPOOL, READOUT

KIND = {"lif": LIF, "readout": READOUT, "maxpool": MAXPOOL}


def kind_code(p):
    """The kernel's code for population p (a CubaLIF population has its own step)."""
    return CUBA if p.kind == "lif" and p.dynamics == "cuba_lif" else KIND[p.kind]


def conv_runs(q):
    """(runs per pooled source position, weights (C, k*k*O)) of a conv projection. The
    weights are kx-reversed, ``wt[c, (ky * k + k - 1 - kx) * O + o] = w[o, c, ky, kx] *
    q.weight_scale`` (1 / pool^2, or 1 after sum pooling), so the taps of one kernel row
    that reach neighbouring outputs form one run."""
    O, C, k, _ = q.weight.shape
    _, H, W = q.src_shape
    _, Ho, Wo = q.out_shape
    s, pad, pool = q.stride, q.padding, q.pool
    wt = q.weight[:, :, :, ::-1].transpose(1, 2, 3, 0).reshape(C, k * k * O) * q.weight_scale
    runs = []
    for y in range(H // pool):
        for x in range(W // pool):
            taps = []  # (current offset, weight offset)
            for ky in range(k):
                oy, ry = divmod(y + pad - ky, s)
                for kx in range(k):
                    ox, rx = divmod(x + pad - kx, s)
                    if ry == rx == 0 and 0 <= oy < Ho and 0 <= ox < Wo:
                        taps.append(((oy * Wo + ox) * O, (ky * k + k - 1 - kx) * O))
            runs.append(_merge(sorted(taps), O))
    return runs, wt


def linear_runs(q):
    """(runs per pooled source position, weights (C, Hp*Wp*O)): an event at pooled position
    pp = (y // pool) * Wp + x // pool and channel c adds row ``c * Hp * Wp + pp`` (the
    PyTorch flatten order) of w.T * q.weight_scale to all O outputs."""
    C, H, W = q.src_shape
    O, pool = q.out_shape[0], q.pool
    Hp, Wp = H // pool, W // pool
    wt = q.weight.T.reshape(C, Hp * Wp * O) * q.weight_scale
    return [[(0, pp * O, O)] for pp in range(Hp * Wp)], wt


def projection_runs(q):
    """(pmap (HW,), ptr (HpWp + 1,), runs (R, 3) of (cur, w, len), weights (C, row), cc) of
    projection q in the layout of ``kernels.event.scatter``: source position p pools to
    pmap[p], whose runs are ``runs[ptr[pmap[p]]:ptr[pmap[p] + 1]]``; cc = 1 for an identity
    path (the current offset moves with the channel), else 0 (the weight offset moves by a
    row per channel)."""
    C, H, W = q.src_shape
    pool = q.pool
    if q.kind == "conv":
        pos, wt = conv_runs(q)
    elif q.kind == "linear":
        pos, wt = linear_runs(q)
    else:  # identity: event j = p * C + c adds 1 to neuron j
        pos, wt = [[(p * C, 0, 1)] for p in range(H * W)], np.ones((1, 1))
    y, x = np.divmod(np.arange(H * W), W)
    pmap = (y // pool) * (W // pool) + x // pool
    ptr = np.concatenate([[0], np.cumsum([len(r) for r in pos])]).astype(np.int64)
    runs = np.array([r for rs in pos for r in rs], np.int64).reshape(-1, 3)
    return pmap.astype(np.int64), ptr, runs, wt, int(q.kind == "identity")


def _merge(taps, n):
    """Runs (cur, w, len) from taps of n weights each, joining those contiguous in both."""
    runs = []
    for c, w in taps:
        if runs and runs[-1][0] + runs[-1][2] == c and runs[-1][1] + runs[-1][2] == w:
            runs[-1][2] += n
        else:
            runs.append([c, w, n])
    return [tuple(r) for r in runs]


class Program:
    """Flat arrays for ``run_network`` (argument names as there), in ``dtype``."""

    def __init__(self, net, dtype):
        self.dtype = dt = np.dtype(dtype)
        pops = net.populations
        self.pop_off = np.cumsum([0] + [p.size for p in pops]).astype(np.int64)
        self.E = int(self.pop_off[-1])
        self.pop_off = self.pop_off[:-1].copy()
        self.n_max = max(p.size for p in pops)
        self.pop_kind = np.array([kind_code(p) for p in pops], np.int64)
        self.pop_size = np.array([p.size for p in pops], np.int64)
        self.pop_q = np.cumsum([0] + [len(p.projections) for p in pops]).astype(np.int64)
        self.pop_src = np.array([p.source + 1 for p in pops], np.int64)
        self.pop_geom = np.array([(pops[p.source].shape[2], p.shape[0], p.pool)
                                  if p.kind == "maxpool" else (1, 1, 1) for p in pops], np.int64)
        self.tau = np.array([p.tau for p in pops], dt)
        self.v_th = np.array([p.v_threshold for p in pops], dt)
        self.v_reset = np.array([0.0 if p.v_reset is None else p.v_reset for p in pops], dt)
        self.decay_input = np.array([p.decay_input for p in pops], np.bool_)
        self.hard_reset = np.array([p.v_reset is not None for p in pops], np.bool_)
        self.tau_syn, self.w_in, self.r, self.v_leak = (
            np.array([getattr(p, k) for p in pops], dt) for k in ("tau_syn", "w_in", "r",
                                                                  "v_leak"))
        biases, self.pop_bias, self.pop_bias1, off = [], [], [], 0
        for p in pops:  # the bias of the first step, then of the later ones (+ recurrent)
            for t, dst in ((0, self.pop_bias), (1, self.pop_bias1)):
                b = p.bias if t == 0 or p.rec_bias is None else \
                    (p.rec_bias if p.bias is None else p.bias + p.rec_bias)
                if b is None:
                    dst.append(-1)
                elif t == 1 and p.rec_bias is None:
                    dst.append(self.pop_bias[-1])
                else:  # channel-last: the bias of every neuron, once
                    biases.append(np.tile(b, p.size // p.shape[0]))
                    dst.append(off)
                    off += p.size
        self.pop_bias = np.array(self.pop_bias, np.int64)
        self.pop_bias1 = np.array(self.pop_bias1, np.int64)
        self.bias = concat(biases, dt)

        self.projections = [q for p in pops for q in p.projections]
        vars(self).update(pack_projections(self.projections, _float_tables, dt))
        self.q_delay = np.array([q.delay for q in self.projections], np.int64)

    KERNEL_ARGS = ("pop_off", "pop_kind", "pop_size", "pop_q", "pop_bias", "pop_bias1",
                   "pop_src", "pop_geom", "tau", "v_th", "v_reset", "decay_input",
                   "hard_reset", "tau_syn", "w_in", "r", "v_leak", "bias", "q_src", "q_delay",
                   "q_C", "q_pool", "q_pmap", "q_ptr", "q_w", "q_wc", "q_cc", "pmap",
                   "run_ptr", "run_cur", "run_w", "run_len", "w")

    def kernel_args(self):
        """The program's arrays in the order ``run_network`` takes them."""
        return tuple(getattr(self, k) for k in self.KERNEL_ARGS)


def _float_tables(q):
    pmap, ptr, run, wt, cc = projection_runs(q)
    return pmap, ptr, run, wt, (0 if cc else wt.shape[1]), cc


def pack_projections(projections, tables, dt):
    """The projection arrays of the event kernels (names as in ``KERNEL_ARGS``), with
    ``tables(q)`` giving projection q's (pmap, ptr, runs, weights, wc, cc) in the layout of
    :func:`projection_runs`: the tables concatenated, with each projection's offsets into
    them, weights as ``dt``."""
    pmaps, ptrs, runs, ws, q_pmap, q_ptr, q_w, q_wc, q_cc = ([] for _ in range(9))
    n_pmap = n_ptr = n_run = n_w = 0
    for q in projections:
        pmap, ptr, run, wt, wc, cc = tables(q)
        q_pmap.append(n_pmap)
        q_ptr.append(n_ptr)
        q_w.append(n_w)
        q_wc.append(wc)
        q_cc.append(cc)
        pmaps.append(pmap)
        ptrs.append(ptr + n_run)
        runs.append(run)
        ws.append(wt.ravel())
        n_pmap, n_ptr, n_run, n_w = (n_pmap + len(pmap), n_ptr + len(ptr),
                                     n_run + len(run), n_w + wt.size)
    out = {"q_src": np.array([q.source + 1 for q in projections], np.int64),
           "q_C": np.array([q.src_shape[0] for q in projections], np.int64),
           "q_pool": np.array([q.pool for q in projections], np.int64),
           "n_pooled": max([q.src_shape[0] * len(ptr) for q, ptr in zip(projections, ptrs)
                            if q.pool > 1] + [1]),
           "pmap": np.concatenate(pmaps), "run_ptr": np.concatenate(ptrs), "w": concat(ws, dt)}
    out.update((k, np.array(v, np.int64)) for k, v in
               zip(("q_pmap", "q_ptr", "q_w", "q_wc", "q_cc"), (q_pmap, q_ptr, q_w, q_wc, q_cc)))
    out.update(zip(("run_cur", "run_w", "run_len"),
                   (np.ascontiguousarray(a) for a in np.concatenate(runs).T)))
    return out


def concat(parts, dt):
    """The arrays ``parts`` end to end as ``dt`` (a single zero when there are none)."""
    return np.concatenate(parts).astype(dt) if parts else np.zeros(1, dt)
