"""Event engine: every kernel against a plain-NumPy reference; exact agreement with the dense
path (spikes in float64, every count) on cifarnet_small, a spiking ResNet and handmade nets
with stride, padding, pooling and residual blocks; hand-counted fan-outs; batch-size
independence; clear errors for bad input and unsupported layers."""
import naive
import numpy as np
import pytest

import snnlite
from snnlite import encoding, nn
from snnlite.event import KINDS, compile_model, dense_counts
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


CONV_CASES = [  # B, C, H, W, O, k, stride, pad, pool
    (2, 3, 7, 7, 4, 3, 1, 1, 1),
    (2, 3, 9, 9, 5, 3, 2, 1, 1),
    (1, 2, 8, 8, 3, 3, 2, 0, 1),
    (3, 4, 6, 6, 2, 1, 2, 0, 1),
    (2, 3, 8, 8, 4, 3, 1, 1, 2),
    (1, 2, 12, 12, 3, 3, 2, 1, 2),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("density", [0.0, 0.3, 1.0])
def test_conv_scatter_matches_dense_conv(rng, case, density):
    B, C, H, W, O, k, s, p, pool = case
    maps, idx, cnt = _events(rng, B, (C, H, W), density)
    w = rng.standard_normal((O, C, k, k))
    Hp, Wp = H // pool, W // pool
    Ho, Wo = (Hp + 2 * p - k) // s + 1, (Wp + 2 * p - k) // s + 1
    cur = np.zeros((B, Ho, Wo, O))
    syn = np.zeros(B, np.int64)
    wt = np.ascontiguousarray(w.transpose(1, 2, 3, 0)) / pool ** 2
    kev.conv_scatter(cur, syn, idx, cnt, wt, W, C, pool, s, p)
    ref = naive.conv2d(_sum_pool(maps, pool) / pool ** 2, w, None, s, p)
    np.testing.assert_allclose(cur, ref.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(syn, O * _ref_fanout(maps, k, s, p, Ho, Wo, pool))


@pytest.mark.parametrize("pool", [1, 2])
def test_linear_and_identity_scatter(rng, pool):
    B, C, H, W, O = 3, 3, 4, 4, 5
    maps, idx, cnt = _events(rng, B, (C, H, W), 0.4)
    F = C * (H // pool) * (W // pool)
    w = rng.standard_normal((O, F))
    cur, syn = np.zeros((B, O)), np.zeros(B, np.int64)
    kev.linear_scatter(cur, syn, idx, cnt, np.ascontiguousarray(w.T) / pool ** 2, H, W, C,
                       pool)
    ref = (_sum_pool(maps, pool) / pool ** 2).reshape(B, -1) @ w.T  # PyTorch flatten order
    np.testing.assert_allclose(cur, ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(syn, maps.reshape(B, -1).sum(1) * O)
    cur, syn = np.zeros((B, H * W * C)), np.zeros(B, np.int64)
    kev.identity_scatter(cur, syn, idx, cnt)
    np.testing.assert_array_equal(cur, maps.transpose(0, 2, 3, 1).reshape(B, -1))
    np.testing.assert_array_equal(syn, cnt)


@pytest.mark.parametrize("v_reset,decay_input", [(0.0, True), (0.0, False), (None, True),
                                                 (-0.2, True)])
def test_lif_step_matches_reference(rng, v_reset, decay_input):
    T, B, N = 6, 2, 50
    x = rng.standard_normal((T, B, N)) * 1.5 + 0.5
    tie = v_reset in (0.0, None)
    if tie:  # from rest, h = x / 2 (decay_input) or x: exactly v_th, and a tie fires
        x[0, 0, :3] = 2.0 if decay_input else 1.0
    v = np.full((B, N), 0.0 if v_reset is None else v_reset)
    idx, cnt = np.zeros((B, N), np.int32), np.zeros(B, np.int64)
    s_ref, _, v_ref = naive.lif(x.reshape(T, B * N), 2.0, 1.0, v_reset, decay_input)
    for t in range(T):
        kev.lif_step(idx, cnt, v, np.ascontiguousarray(x[t]), 2.0, 1.0,
                     0.0 if v_reset is None else v_reset, decay_input, v_reset is not None)
        s = np.zeros((B, N))
        for b in range(B):
            s[b, idx[b, :cnt[b]]] = 1
            assert np.all(np.diff(idx[b, :cnt[b]]) > 0)  # index order
        np.testing.assert_array_equal(s.ravel(), s_ref[t])
        np.testing.assert_array_equal(v.ravel(), v_ref[t])  # bit for bit
        if tie and t == 0:
            assert s[0, :3].all()


def test_events_from_dense_and_maxpool_events(rng):
    B, C, H, W, k = 3, 2, 6, 4, 2
    maps, idx_ref, cnt_ref = _events(rng, B, (C, H, W), 0.3)
    idx, cnt = np.zeros((B, C * H * W), np.int32), np.zeros(B, np.int64)
    kev.events_from_dense(idx, cnt, maps)
    np.testing.assert_array_equal(cnt, cnt_ref)
    for b in range(B):
        np.testing.assert_array_equal(idx[b, :cnt[b]], idx_ref[b, :cnt[b]])
    Np = C * (H // k) * (W // k)
    out, ocnt = np.zeros((B, Np), np.int32), np.zeros(B, np.int64)
    seen = np.zeros((B, Np), np.uint8)
    kev.maxpool_events(out, ocnt, seen, idx, cnt, H, W, C, k)
    ref, _ = naive.max_pool(maps, k)
    assert not seen.any()
    for b in range(B):
        got = np.zeros(Np)
        got[out[b, :ocnt[b]]] = 1
        assert ocnt[b] == np.count_nonzero(ref[b])  # no duplicates
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
    return request.param, model, compile_model(model, shape), shape


@pytest.mark.parametrize("enc", ["direct", "ttfs"])
def test_event_path_matches_dense_path_exactly(case, enc):
    _, model, net, shape = case
    x = _inputs(np.random.default_rng(3), shape, 2, 3)[enc]
    res = net.run(x, record=True)
    ref, ref_logits, ref_spikes = dense_counts(net, model, x)
    assert res.counts.mismatches(ref) == []
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


def test_counts_do_not_depend_on_batch_size(case):
    _, _, net, shape = case
    for x in _inputs(np.random.default_rng(4), shape, 4, 3).values():
        full = net.run(x, record=True)
        for b in range(4):
            one = net.run(x[:, b:b + 1], record=True)
            assert one.counts.mismatches(full.counts.select([b])) == []
            np.testing.assert_allclose(one.logits[0], full.logits[b], rtol=1e-13, atol=1e-15)
            for k, s in one.spikes.items():
                np.testing.assert_array_equal(s[:, 0], full.spikes[k][:, b])


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


def test_every_count_is_int64_per_sample_and_step(small):
    res = small.run(encoding.ttfs(np.random.default_rng(7).random((3, 2, 13, 13)), 5))
    for lc in res.counts.layers:
        for k in KINDS:
            arr = getattr(lc, k)
            assert arr.dtype == np.int64 and arr.shape == (3, 5), (lc.name, k)


def test_threads_do_not_change_results(small):
    """Workers own whole samples: any thread count gives the same spikes and counts."""
    import numba
    xs = _inputs(np.random.default_rng(8), (2, 13, 13), 5, 3)
    old = numba.get_num_threads()
    try:
        for x in xs.values():
            numba.set_num_threads(1)
            a = small.run(x, record=True)
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            b = small.run(x, record=True)
            assert a.counts.mismatches(b.counts) == []
            np.testing.assert_array_equal(a.logits, b.logits)
            for k in a.spikes:
                np.testing.assert_array_equal(a.spikes[k], b.spikes[k])
    finally:
        numba.set_num_threads(old)
