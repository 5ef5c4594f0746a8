"""Event engine: every kernel against a plain-NumPy reference; exact agreement with the dense
path (spikes in float64, every count) on cifarnet_small, a spiking ResNet and handmade nets
with stride, padding, pooling and residual blocks; hand-counted fan-outs; batch-size
independence; clear errors for bad input and unsupported layers."""
import naive
import numpy as np
import pytest

import snnlite
from snnlite import encoding, nn
from snnlite.event import KINDS, Projection, compile_model, dense_counts
from snnlite.event.program import projection_runs
from snnlite.kernels import event as kev

# ------------------------------------------------------------------------ references


def _events(rng, B, shape, density):
    """(binary maps (B, C, H, W), idx (B, N) int32, cnt (B,)) in channel-last order."""
    s = (rng.random((B,) + shape) < density).astype(np.float64)
    N = s[0].size
    idx = np.zeros((B, N), np.int32)
    cnt = np.zeros(B, np.int64)
    for b in range(B):
        nz = np.flatnonzero(s[b].transpose(1, 2, 0).ravel())
        idx[b, :nz.size], cnt[b] = nz, nz.size
    return s, idx, cnt


def _sum_pool(s, p):
    B, C, H, W = s.shape
    return s.reshape(B, C, H // p, p, W // p, p).sum((3, 5))


def _ref_fanout(s, k, stride, pad, Ho, Wo, pool):
    """Synops per sample by plain loops: (event, output position, tap) triples that meet."""
    out = np.zeros(s.shape[0], np.int64)
    for b, c, y, x in zip(*np.nonzero(s)):
        yp, xp = y // pool, x // pool
        ny = sum(1 for oy in range(Ho) for ky in range(k) if oy * stride - pad + ky == yp)
        nx = sum(1 for ox in range(Wo) for kx in range(k) if ox * stride - pad + kx == xp)
        out[b] += ny * nx
    return out


def _scatter(q, idx, cnt, dtype):
    """(currents (B, N) channel-last, synops (B,)) of projection q by ``kev.scatter``."""
    pmap, ptr, runs, wt, cc = projection_runs(q)
    run_cur, run_w, run_len = (np.ascontiguousarray(r) for r in runs.T)
    B = idx.shape[0]
    cur = np.zeros((B, int(np.prod(q.out_shape))), dtype)
    syn = np.zeros(B, np.int64)
    n = q.src_shape[0] * (len(ptr) - 1)
    mult, keys = np.zeros(n, dtype), np.zeros(n, np.int32)
    for b in range(B):
        syn[b] = kev.scatter(cur[b], idx[b], cnt[b], q.src_shape[0], q.pool, pmap, ptr,
                             run_cur, run_w, run_len, wt.ravel().astype(dtype),
                             0 if cc else wt.shape[1], cc, mult, keys)
        assert not mult.any()
    return cur, syn


TOL = {np.float64: {"rtol": 1e-12, "atol": 1e-12}, np.float32: {"rtol": 1e-5, "atol": 1e-5}}

CONV_CASES = [  # B, C, H, W, O, k, stride, pad, pool
    (2, 3, 7, 7, 4, 3, 1, 1, 1),
    (2, 3, 9, 9, 5, 3, 2, 1, 1),
    (1, 2, 8, 8, 3, 3, 2, 0, 1),
    (3, 4, 6, 6, 2, 1, 2, 0, 1),
    (2, 3, 8, 8, 4, 3, 1, 1, 2),
    (1, 2, 12, 12, 3, 3, 2, 1, 2),
    (2, 2, 5, 5, 3, 5, 1, 2, 1),
    (1, 2, 4, 4, 3, 3, 1, 1, 1),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_conv_scatter_matches_dense_conv(rng, case, density, dtype):
    B, C, H, W, O, k, s, p, pool = case
    maps, idx, cnt = _events(rng, B, (C, H, W), density)
    w = rng.standard_normal((O, C, k, k))
    Hp, Wp = H // pool, W // pool
    Ho, Wo = (Hp + 2 * p - k) // s + 1, (Wp + 2 * p - k) // s + 1
    q = Projection("c", "conv", 0, (C, H, W), (O, Ho, Wo), w, s, p, pool)
    cur, syn = _scatter(q, idx, cnt, dtype)
    ref = naive.conv2d(_sum_pool(maps, pool) / pool ** 2, w, None, s, p)
    np.testing.assert_allclose(cur, ref.transpose(0, 2, 3, 1).reshape(B, -1), **TOL[dtype])
    np.testing.assert_array_equal(syn, O * _ref_fanout(maps, k, s, p, Ho, Wo, pool))


def test_conv_runs_merge_neighbouring_taps():
    """Stride 1: the taps of a kernel row that reach neighbouring outputs are one run (3 runs
    of 3 taps for an interior 3x3 event, fewer and shorter at a border); stride 2: none."""
    w = np.zeros((4, 1, 3, 3))
    _, ptr, runs, _, _ = projection_runs(Projection("c", "conv", 0, (1, 5, 5), (4, 5, 5), w, 1,
                                                    1))
    inner, corner = 2 * 5 + 2, 0
    assert runs[ptr[inner]:ptr[inner + 1], 2].tolist() == [12, 12, 12]
    assert runs[ptr[corner]:ptr[corner + 1], 2].tolist() == [8, 8]
    _, ptr, runs, _, _ = projection_runs(Projection("c", "conv", 0, (1, 5, 5), (4, 3, 3), w, 2,
                                                    1))
    assert set(runs[:, 2].tolist()) == {4}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("pool", [1, 2])
def test_linear_and_identity_scatter(rng, pool, dtype):
    B, C, H, W, O = 3, 3, 4, 4, 5
    maps, idx, cnt = _events(rng, B, (C, H, W), 0.4)
    F = C * (H // pool) * (W // pool)
    w = rng.standard_normal((O, F))
    cur, syn = _scatter(Projection("l", "linear", 0, (C, H, W), (O, 1, 1), w, pool=pool),
                        idx, cnt, dtype)
    ref = (_sum_pool(maps, pool) / pool ** 2).reshape(B, -1) @ w.T  # PyTorch flatten order
    np.testing.assert_allclose(cur, ref, **TOL[dtype])
    np.testing.assert_array_equal(syn, maps.reshape(B, -1).sum(1) * O)
    cur, syn = _scatter(Projection("i", "identity", 0, (C, H, W), (C, H, W)), idx, cnt, dtype)
    np.testing.assert_array_equal(cur, maps.transpose(0, 2, 3, 1).reshape(B, -1))
    np.testing.assert_array_equal(syn, cnt)


def _lif_numpy(x, tau, v_th, v_reset, decay_input):
    """Spikes and post-reset membranes (T, N) of LIF neurons by whole-array NumPy in x's
    dtype (scalars cast to it), step by step."""
    dt = x.dtype.type
    tau, v_th = dt(tau), dt(v_th)
    r = dt(0.0 if v_reset is None else v_reset)
    v = np.full(x.shape[1], r)
    s_out, v_out = np.zeros(x.shape, bool), np.zeros_like(x)
    for t in range(x.shape[0]):
        h = v + (x[t] - (v - r)) / tau if decay_input else v - (v - r) / tau + x[t]
        s_out[t] = h >= v_th
        v = np.where(s_out[t], h - v_th if v_reset is None else r, h)
        v_out[t] = v
    return s_out, v_out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("v_reset,decay_input", [(0.0, True), (0.0, False), (None, True),
                                                 (-0.2, True)])
def test_lif_fire_matches_reference(rng, v_reset, decay_input, dtype):
    T, N = 6, 61  # not a multiple of 8: the last flag word is partial
    x = (rng.standard_normal((T, N)) * 1.5 + 0.5).astype(dtype)
    tie = v_reset in (0.0, None)
    if tie:  # from rest, h = x / 2 (decay_input) or x: exactly v_th, and a tie fires
        x[0, :3] = 2.0 if decay_input else 1.0
    s_ref, v_ref = _lif_numpy(x, 2.0, 1.0, v_reset, decay_input)
    if dtype == np.float64:  # the NumPy reference is the loop reference
        s_loop, _, v_loop = naive.lif(x, 2.0, 1.0, v_reset, decay_input)
        np.testing.assert_array_equal(s_ref, s_loop.astype(bool))
        np.testing.assert_array_equal(v_ref, v_loop)
    dt = np.dtype(dtype).type
    v = np.full(N, dt(0.0 if v_reset is None else v_reset))
    out, flags = np.zeros(N, np.int32), np.full(N + 8, 7, np.uint8)  # stale flags
    for t in range(T):
        k = kev.lif_fire(out, flags, v, x[t], dt(2.0), dt(1.0),
                         dt(0.0 if v_reset is None else v_reset), decay_input,
                         v_reset is not None)
        np.testing.assert_array_equal(out[:k], np.flatnonzero(s_ref[t]))  # index order
        np.testing.assert_array_equal(v, v_ref[t])  # bit for bit
        if tie and t == 0:
            assert out[:3].tolist() == [0, 1, 2]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8, np.bool_])
def test_input_events(rng, dtype):
    T, B, C, H, W = 3, 2, 2, 5, 4
    x = rng.random((T, B, C, H, W)) < 0.3
    ev = np.zeros((B, T, C * H * W + 3), np.int32)
    ecnt = np.zeros((B, T, 2), np.int64)
    bad = np.zeros(B, np.int64)
    kev.input_events(ev, ecnt, bad, x.astype(dtype), 0, B)
    assert not bad.any()
    for t in range(T):
        for b in range(B):
            nz = np.flatnonzero(x[t, b].transpose(1, 2, 0))
            assert ecnt[b, t, 0] == nz.size and not ecnt[b, t, 1]
            np.testing.assert_array_equal(ev[b, t, :nz.size], nz)
    if dtype != np.bool_:
        y = x.astype(dtype)
        y[2, 1, 0, 0, 0] = 3
        kev.input_events(ev, ecnt, bad, y, 0, B)
        assert bad.tolist() == [0, 1]  # the sample with a non-binary value


def test_maxpool_events(rng):
    B, C, H, W, k = 3, 2, 6, 4, 2
    maps, idx, cnt = _events(rng, B, (C, H, W), 0.3)
    Np = C * (H // k) * (W // k)
    out, seen = np.zeros(Np, np.int32), np.zeros(Np, np.uint8)
    ref, _ = naive.max_pool(maps, k)
    for b in range(B):
        m = kev.maxpool_events(out, seen, idx[b], cnt[b], W, C, k)
        assert not seen.any()
        got = np.zeros(Np)
        got[out[:m]] = 1
        assert m == np.count_nonzero(ref[b])  # no duplicates
        np.testing.assert_array_equal(got, ref[b].transpose(1, 2, 0).ravel())


# ------------------------------------------------------------------------ models


def _lively(model, seed=0):
    """float64 eval copy with BN statistics and biases that make every layer fire."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            C = m.num_features
            m.weight.data[:] = rng.uniform(1.0, 2.0, C)
            m.bias.data[:] = rng.normal(0.4, 0.4, C)
            m.running_mean[:] = rng.normal(0.0, 0.1, C)
            m.running_var[:] = rng.uniform(0.02, 0.2, C)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.weight.data *= 3
            m.bias.data[:] = rng.normal(0.5, 0.5, m.bias.data.shape)
    return model.astype(np.float64).eval()


def _strided_net(lif_kw=None):
    """Stride 2 with and without padding, max pooling of spikes, a biased conv without BN,
    soft reset, decay_input=False, BN1d and a hidden linear layer. Input (2, 13, 13)."""
    r = np.random.default_rng(1)
    d = np.float64
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, 2, 1, bias=False, rng=r, dtype=d), nn.BatchNorm2d(4, dtype=d),
        nn.LIF(), nn.Conv2d(4, 6, 3, 2, 0, bias=False, rng=r, dtype=d),
        nn.BatchNorm2d(6, dtype=d), nn.LIF(v_reset=None), nn.MaxPool2d(3),
        nn.Conv2d(6, 5, 1, 1, 0, bias=True, rng=r, dtype=d), nn.LIF(decay_input=False),
        nn.Flatten(), nn.Linear(5, 7, bias=False, rng=r, dtype=d), nn.BatchNorm1d(7, dtype=d),
        nn.LIF(), nn.Linear(7, 3, rng=r, dtype=d), nn.TimeMean())


def _residual_net():
    """Stem, identity block, strided downsample block, pooled conv (stride 2, padding),
    pooled flatten into the readout. Input (2, 12, 12)."""
    r = np.random.default_rng(2)
    d = np.float64
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, 1, 1, bias=False, rng=r, dtype=d), nn.BatchNorm2d(4, dtype=d),
        nn.LIF(), nn.BasicBlock(4, 4, 1, rng=r, dtype=d), nn.BasicBlock(4, 8, 2, rng=r, dtype=d),
        nn.AvgPool2d(2), nn.Conv2d(8, 8, 3, 2, 1, bias=False, rng=r, dtype=d),
        nn.BatchNorm2d(8, dtype=d), nn.LIF(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(8, 3, rng=r, dtype=d), nn.TimeMean())


MODELS = {
    "cifarnet_small": (lambda: snnlite.models.cifarnet_small(seed=0), (3, 32, 32)),
    "resnet8": (lambda: snnlite.models.spiking_resnet(depth=8, width=1), (3, 32, 32)),
    "strided": (_strided_net, (2, 13, 13)),
    "residual": (_residual_net, (2, 12, 12)),
}


def _inputs(rng, shape, B, T):
    x = rng.random((B,) + shape)
    return {"direct": encoding.direct(x, T), "ttfs": encoding.ttfs(x, T)}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request):
    build, shape = MODELS[request.param]
    model = _lively(build())
    return request.param, model, compile_model(model, shape, dtype=np.float64), shape


@pytest.mark.parametrize("enc", ["direct", "ttfs"])
def test_event_path_matches_dense_path_exactly(case, enc):
    _, model, net, shape = case
    x = _inputs(np.random.default_rng(3), shape, 2, 3)[enc]
    res = net.run(x, record=True)
    ref, ref_logits, ref_spikes = dense_counts(net, model, x)
    assert res.counts.mismatches(ref) == []
    plain = net.run(x)  # without recording, events live in one store per worker
    assert plain.counts.mismatches(ref) == []
    np.testing.assert_array_equal(plain.logits, res.logits)
    for p in net.populations:
        if p.kind != "readout":
            np.testing.assert_array_equal(res.spikes[p.name], ref_spikes[p.name], err_msg=p.name)
    np.testing.assert_allclose(res.logits, model.forward(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ref_logits, model.forward(x), rtol=1e-10, atol=1e-12)
    c = res.counts
    for lc in c.layers:  # not vacuous: every spiking layer fires, but not everywhere
        np.testing.assert_array_equal(lc.synops, lc.acs + lc.macs)
        if lc.kind != "readout":
            assert 0 < lc.firing_rate().min() and lc.firing_rate().max() < 0.9, lc.name
    first = c.layers[0]
    if enc == "direct":
        assert c.mode == "dense" and not first.acs.any() and (first.macs > 0).all()
        assert not sum(lc.macs for lc in c.layers[1:]).any()
    else:
        assert c.mode == "events" and not c.total("macs").any()
        np.testing.assert_array_equal(first.in_events, c.input_events)


def _numpy_network(net, x):
    """(spikes {population: [T, B, C, H, W]}, synops {projection: [B, T]}, logits) of
    ``net`` on binary x [T, B, C, H, W] by whole-array NumPy and the loop references, in
    float64: each population's currents at every step from the spike maps of its sources,
    its LIF neurons by ``_lif_numpy``, synops by ``_ref_fanout``."""
    T, B = x.shape[:2]
    maps, syn, logits = {-1: x.astype(np.float64)}, {}, None
    for i, p in enumerate(net.populations):
        if p.kind == "maxpool":
            maps[i] = np.stack([naive.max_pool(m, p.pool)[0] for m in maps[p.source]])
            continue
        cur = np.zeros((T, B) + p.shape)
        if p.bias is not None:
            cur += p.bias.reshape(-1, 1, 1)
        for q in p.projections:
            syn[q.name] = np.zeros((B, T), np.int64)
            for t in range(T):
                s = maps[q.source][t]
                pooled = _sum_pool(s, q.pool) / q.pool ** 2
                O = q.out_shape[0]
                if q.kind == "conv":
                    k = q.kernel
                    cur[t] += naive.conv2d(pooled, q.weight, None, q.stride, q.padding)
                    syn[q.name][:, t] = O * _ref_fanout(s, k, q.stride, q.padding,
                                                        *q.out_shape[1:], q.pool)
                elif q.kind == "linear":
                    cur[t] += (pooled.reshape(B, -1) @ q.weight.T).reshape(cur[t].shape)
                    syn[q.name][:, t] = O * s.reshape(B, -1).sum(1)
                else:
                    cur[t] += s
                    syn[q.name][:, t] = s.reshape(B, -1).sum(1)
        if p.kind == "readout":
            logits = cur.mean(0).reshape(B, -1)
        else:
            spikes, _ = _lif_numpy(cur.reshape(T, -1), p.tau, p.v_threshold, p.v_reset,
                                   p.decay_input)
            maps[i] = spikes.reshape(cur.shape).astype(np.float64)
    spikes = {p.name: maps[i] for i, p in enumerate(net.populations) if p.kind != "readout"}
    return spikes, syn, logits


@pytest.mark.parametrize("name", ["strided", "residual"])
@pytest.mark.parametrize("enc", ["ttfs", "random"])
def test_run_network_matches_numpy_reference(name, enc):
    """The whole compiled kernel against plain NumPy on the same compiled graph."""
    build, shape = MODELS[name]
    net = compile_model(_lively(build()), shape, dtype=np.float64)
    rng = np.random.default_rng(11)
    x = encoding.ttfs(rng.random((2,) + shape), 4) if enc == "ttfs" else \
        (rng.random((4, 2) + shape) < 0.3).astype(np.float64)
    res = net.run(x, record=True)
    spikes, syn, logits = _numpy_network(net, x)
    assert all(0 < ref.mean() < 0.9 for ref in spikes.values())  # not vacuous
    for k, ref in spikes.items():
        np.testing.assert_array_equal(res.spikes[k], ref, err_msg=k)
    for lc in res.counts.layers:
        for k, ref in lc.projection_synops.items():
            np.testing.assert_array_equal(ref, syn[k], err_msg=k)
    np.testing.assert_allclose(res.logits, logits, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_counts_do_not_depend_on_batch_size(case, dtype):
    _, model, _, shape = case
    net = compile_model(model, shape, dtype=dtype)
    tol = {np.float64: 1e-13, np.float32: 1e-6}[dtype]
    for x in _inputs(np.random.default_rng(4), shape, 4, 3).values():
        full = net.run(x, record=True)
        assert full.logits.dtype == dtype
        for b in range(4):
            one = net.run(x[:, b:b + 1], record=True)
            assert one.counts.mismatches(full.counts.select([b])) == []
            np.testing.assert_allclose(one.logits[0], full.logits[b], rtol=tol, atol=tol)
            for k, s in one.spikes.items():
                np.testing.assert_array_equal(s[:, 0], full.spikes[k][:, b])


def _exact_in_float32(model, seed=0):
    """float64 eval copy whose every sum is exact in float32 too: weights on a 2^-8 grid,
    BatchNorm with eps 0, unit variance, gain 2 or 4 and mean and shift on a 2^-6 grid (the
    folded weights and biases stay on a grid), tau 2 (a halving). With a few steps the
    currents and membranes need far fewer than float32's 24 significant bits, so float32
    and float64 runs cannot differ by rounding: any difference would be a bug."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data[:] = np.round(m.weight.data * 256) / 256
            if m.bias is not None:
                m.bias.data[:] = np.round(m.bias.data * 64) / 64
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            C = m.num_features
            m.eps = 0.0
            m.running_var[:] = 1.0
            m.weight.data[:] = rng.choice([2.0, 4.0], C)
            m.running_mean[:] = np.round(rng.normal(0.0, 0.1, C) * 64) / 64
            m.bias.data[:] = np.round(rng.normal(0.4, 0.4, C) * 64) / 64
    return model.astype(np.float64).eval()


@pytest.mark.parametrize("enc", ["ttfs", "direct"])
def test_float32_counts_equal_float64_counts_when_rounding_cannot_flip_a_spike(enc):
    """Counts are integers: float32 and float64 runs count the same operations for the same
    spikes. Spikes themselves can differ where a membrane lies within float32 rounding of
    the threshold, so the exact comparison is made on a model whose arithmetic is exact in
    float32 (see _exact_in_float32): there every spike and every count must be equal, to
    each other and to the float64 dense path."""
    model = _exact_in_float32(snnlite.models.cifarnet_small(seed=0))
    x = np.round(np.random.default_rng(9).random((3, 3, 32, 32)) * 64) / 64
    x = encoding.direct(x, 4) if enc == "direct" else encoding.ttfs(x, 4)
    a = compile_model(model, dtype=np.float32).run(x, record=True)
    b = compile_model(model, dtype=np.float64).run(x, record=True)
    ref, _, ref_spikes = dense_counts(compile_model(model, dtype=np.float64), model, x)
    assert a.counts.mismatches(b.counts) == [] and b.counts.mismatches(ref) == []
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k], err_msg=k)
        np.testing.assert_array_equal(a.spikes[k], ref_spikes[k], err_msg=k)
    for lc in a.counts.layers[:-1]:  # not vacuous
        assert 0 < lc.firing_rate().min() and lc.firing_rate().max() < 0.9, lc.name
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-6, atol=1e-6)


def test_float32_is_close_to_float64_on_a_general_model():
    """Without exact arithmetic, float32 rounding may flip a spike whose membrane is within
    rounding of the threshold (and what follows from it): the counts stay close, not equal."""
    model = _lively(snnlite.models.cifarnet_small(seed=0))
    x = encoding.ttfs(np.random.default_rng(10).random((4, 3, 32, 32)), 8)
    a = compile_model(model, dtype=np.float32).run(x)
    b = compile_model(model, dtype=np.float64).run(x)
    for la, lb in zip(a.counts.layers, b.counts.layers):
        for k in ("out_spikes", "synops"):
            na, nb = getattr(la, k).sum(), getattr(lb, k).sum()
            assert abs(na - nb) <= 1e-3 * nb, (la.name, k, na, nb)
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-3, atol=1e-3)


def test_hand_counted_fanouts():
    """3x3 pad 1 on 5x5: corner 4 targets, edge 6, centre 9; 3x3 stride 2 pad 1 on 5x5
    (3x3 out): (0, 0) reaches 1 target, (1, 1) 4; a 1x1 stride-2 layer ignores odd
    positions; a linear layer reaches all outputs."""
    def net(k, s, p):
        return nn.Sequential(nn.Conv2d(1, 2, k, s, p, bias=False), nn.LIF(), nn.Flatten(),
                             nn.Linear(2 * ((5 + 2 * p - k) // s + 1) ** 2, 3), nn.TimeMean())

    for (k, s, p), pos, fan in [((3, 1, 1), (0, 0), 4), ((3, 1, 1), (0, 2), 6),
                                ((3, 1, 1), (2, 2), 9), ((3, 2, 1), (0, 0), 1),
                                ((3, 2, 1), (1, 1), 4), ((3, 2, 0), (0, 0), 1),
                                ((1, 2, 0), (1, 2), 0), ((1, 2, 0), (2, 4), 1)]:
        ev = np.array([[0, 0, 0, pos[0], pos[1]]])
        res = compile_model(net(k, s, p), (1, 5, 5)).run_events(ev, T=2, B=1)
        first = res.counts.layers[0]
        assert first.acs.tolist() == [[2 * fan, 0]], (k, s, p, pos)
        assert first.in_events.tolist() == [[1, 0]]
        assert first.bias_adds.tolist() == [[0, 0]]  # no bias, no BN
        assert first.neuron_updates.tolist() == [[2 * ((5 + 2 * p - k) // s + 1) ** 2] * 2]
        readout = res.counts.layers[1]
        np.testing.assert_array_equal(readout.acs, 3 * first.out_spikes)
        assert readout.bias_adds.tolist() == [[3, 3]]


def test_dense_first_layer_macs_every_step():
    """Direct coding: border-exact MACs of a full frame at every step, though computed once."""
    model = snnlite.models.cifarnet_small(seed=0).eval()
    net = compile_model(model)
    x = encoding.direct(np.random.default_rng(5).random((1, 3, 32, 32)), 3)
    first = net.run(x).counts.layers[0]
    per_step = 3 * 32 * (32 * 3 - 2) ** 2  # taps that land inside a 32-wide padded row: 94
    assert first.macs.tolist() == [[per_step] * 3]
    assert first.in_events.tolist() == [[3 * 32 * 32] * 3]


def test_run_events_equals_binary_input():
    model = _lively(_strided_net())
    net = compile_model(model, (2, 13, 13))
    x = encoding.ttfs(np.random.default_rng(6).random((2, 2, 13, 13)), 4)
    a = net.run(x)
    b = net.run_events(np.argwhere(x), T=4, B=2)
    assert a.counts.mismatches(b.counts) == []
    np.testing.assert_array_equal(a.logits, b.logits)


# ------------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def small():
    return compile_model(_lively(_strided_net()), (2, 13, 13))


def test_bad_event_input_is_rejected(small):
    x = np.zeros((2, 1, 2, 13, 13))
    x[1, 0, 1, 4, 5] = 0.5
    with pytest.raises(ValueError, match=r"binary.*0\.5.*\[1, 0, 1, 4, 5\]"):
        small.run(x, mode="events")
    with pytest.raises(ValueError, match=r"events\[:, 3\] \(y\): 13 out of range \[0, 13\)"):
        small.run_events([[0, 0, 0, 13, 0]], T=2, B=1)
    with pytest.raises(ValueError, match=r"events\[:, 1\] \(b\): -1"):
        small.run_events([[0, -1, 0, 0, 0]], T=2, B=1)
    with pytest.raises(ValueError, match="repeated event"):
        small.run_events([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]], T=2, B=1)
    with pytest.raises(ValueError, match=r"shape \(n, 5\)"):
        small.run_events([[0, 0, 0, 1]], T=2, B=1)
    with pytest.raises(TypeError, match="integer"):
        small.run_events([[0.0, 0, 0, 1, 1]], T=2, B=1)


def test_bad_dense_input_is_rejected(small):
    with pytest.raises(ValueError, match=r"expected shape \[T, B, 2, 13, 13\]"):
        small.run(np.zeros((2, 1, 3, 13, 13)))
    with pytest.raises(ValueError, match=r"expected shape"):
        small.run(np.zeros((1, 2, 13, 13)))
    x = np.ones((2, 1, 2, 13, 13)) * 0.3
    x[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        small.run(x)
    with pytest.raises(ValueError, match="mode"):
        small.run(np.zeros((2, 1, 2, 13, 13)), mode="spikes")
    with pytest.raises(TypeError, match="numpy array"):
        small.run([[0.0]])


class Dropoutish(nn.Module):
    def forward(self, x):
        return x


def test_unsupported_layers_are_named():
    seq = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.LIF(), Dropoutish(), nn.Flatten(),
                        nn.Linear(4 * 32 * 32, 2), nn.TimeMean())
    with pytest.raises(TypeError, match=r"'2' \(Dropoutish\) is not supported"):
        compile_model(seq)
    res = snnlite.models.spiking_resnet(depth=8, width=1)
    res.layer2[0].sn1 = Dropoutish()
    with pytest.raises(TypeError, match=r"'layer2\.0\.sn1' \(Dropoutish\)"):
        compile_model(res)
    bad = {
        r"'1' \(AvgPool2d\) must act on spikes": [nn.Conv2d(3, 4, 3, 1, 1), nn.AvgPool2d(2),
                                                   nn.LIF()],
        r"'2' \(BatchNorm2d\) must directly follow": [nn.Conv2d(3, 4, 3, 1, 1), nn.LIF(),
                                                      nn.BatchNorm2d(4)],
        r"'2' \(Conv2d\) reads synaptic currents": [nn.Conv2d(3, 4, 3, 1, 1),
                                                    nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3)],
        r"'0' \(AvgPool2d\) on the network input": [nn.AvgPool2d(2)],
        r"'3' \(Linear\) comes after the readout": [nn.Flatten(), nn.Linear(3072, 2),
                                                   nn.TimeMean(), nn.Linear(2, 2)],
        "must end with": [nn.Conv2d(3, 4, 3, 1, 1), nn.LIF()],
    }
    for msg, layers in bad.items():
        with pytest.raises(TypeError, match=msg):
            compile_model(nn.Sequential(*layers))
    with pytest.raises(TypeError, match="snnlite Module"):
        compile_model(object())


def test_shape_mismatches_are_named():
    with pytest.raises(ValueError, match=r"'0' \(Conv2d\): expected 4 input channels, got 3"):
        compile_model(nn.Sequential(nn.Conv2d(4, 4, 3)))
    with pytest.raises(ValueError, match=r"'3' \(Linear\): expected 100 input features"):
        compile_model(nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.LIF(), nn.Flatten(),
                                    nn.Linear(100, 2), nn.TimeMean()))
    with pytest.raises(ValueError, match="input_shape"):
        compile_model(nn.Sequential(nn.Flatten()), (3, 32))
    with pytest.raises(TypeError, match="float32 or float64, got float16"):
        compile_model(snnlite.models.cifarnet_small(), dtype=np.float16)


def test_every_count_is_int64_per_sample_and_step(small):
    res = small.run(encoding.ttfs(np.random.default_rng(7).random((3, 2, 13, 13)), 5))
    for lc in res.counts.layers:
        for k in KINDS:
            arr = getattr(lc, k)
            assert arr.dtype == np.int64 and arr.shape == (3, 5), (lc.name, k)


def test_threads_do_not_change_results(small):
    """Workers own whole samples: any thread count gives the same spikes and counts."""
    xs = _inputs(np.random.default_rng(8), (2, 13, 13), 5, 3)
    old = snnlite.get_num_threads()
    try:
        for x in xs.values():
            snnlite.set_num_threads(1)
            a = small.run(x, record=True)
            snnlite.set_num_threads(3)
            b = small.run(x, record=True)
            c = small.run(x)
            assert a.counts.mismatches(b.counts) == [] and a.counts.mismatches(c.counts) == []
            np.testing.assert_array_equal(a.logits, c.logits)
            np.testing.assert_array_equal(a.logits, b.logits)
            for k in a.spikes:
                np.testing.assert_array_equal(a.spikes[k], b.spikes[k])
    finally:
        snnlite.set_num_threads(old)
