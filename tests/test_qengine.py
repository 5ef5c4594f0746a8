"""Integer event engine: spike for spike, synop for synop and logit for logit equal to the
plain-NumPy integer reference (tests/qnaive.py) on every layer and step, for handmade nets
(stride, padding, max pooling, soft reset, decay_input off, BN1d, residual blocks) and
cifarnet_small, on events and on dense input; saturation counted exactly; counts with the
float engine's structure; batch and thread independence; refusal of overflow and bad input."""
from dataclasses import replace

import numpy as np
import pytest
import qnaive

import snnlite
from snnlite import encoding, nn
from snnlite.event import compile_model, qengine
from snnlite.event.counts import KINDS
from snnlite.kernels import qevent as kq
from snnlite.quant import QFormat, QNet, quantize_net
from snnlite.quant.ptq import input_step


def lively(model, seed=0):
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


def strided_net():
    """Stride 2 with and without padding, max pooling, a biased conv without BN, soft reset,
    decay_input=False with tau 4, BN1d and a hidden linear layer. Input (2, 13, 13)."""
    r = np.random.default_rng(1)
    d = np.float64
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, 2, 1, bias=False, rng=r, dtype=d), nn.BatchNorm2d(4, dtype=d),
        nn.LIF(), nn.Conv2d(4, 6, 3, 2, 0, bias=False, rng=r, dtype=d),
        nn.BatchNorm2d(6, dtype=d), nn.LIF(v_reset=None), nn.MaxPool2d(3),
        nn.Conv2d(6, 5, 1, 1, 0, bias=True, rng=r, dtype=d), nn.LIF(tau=4.0, decay_input=False),
        nn.Flatten(), nn.Linear(5, 7, bias=False, rng=r, dtype=d), nn.BatchNorm1d(7, dtype=d),
        nn.LIF(), nn.Linear(7, 3, rng=r, dtype=d), nn.TimeMean())


def residual_net():
    """Stem, identity block, strided downsample block, pooled conv, pooled flatten into the
    readout. Input (2, 12, 12)."""
    r = np.random.default_rng(2)
    d = np.float64
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, 1, 1, bias=False, rng=r, dtype=d), nn.BatchNorm2d(4, dtype=d),
        nn.LIF(), nn.BasicBlock(4, 4, 1, rng=r, dtype=d), nn.BasicBlock(4, 8, 2, rng=r, dtype=d),
        nn.AvgPool2d(2), nn.Conv2d(8, 8, 3, 2, 1, bias=False, rng=r, dtype=d),
        nn.BatchNorm2d(8, dtype=d), nn.LIF(), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(8, 3, rng=r, dtype=d), nn.TimeMean())


def if_sumpool_net():
    """IF neurons (no leak), sum pooling of spikes, a plain LIF after it. Input (2, 8, 8)."""
    r = np.random.default_rng(3)
    d = np.float64
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, 1, 1, bias=False, rng=r, dtype=d), nn.BatchNorm2d(4, dtype=d),
        nn.IF(), nn.SumPool2d(2), nn.Conv2d(4, 5, 3, 1, 1, bias=False, rng=r, dtype=d),
        nn.BatchNorm2d(5, dtype=d), nn.LIF(), nn.Flatten(),
        nn.Linear(80, 3, rng=r, dtype=d), nn.TimeMean())


NETS = {"strided": (strided_net, (2, 13, 13)), "residual": (residual_net, (2, 12, 12)),
        "if_sumpool": (if_sumpool_net, (2, 8, 8)),
        "cifarnet_small": (lambda: snnlite.models.cifarnet_small(seed=0), (3, 32, 32))}
FORMATS = {"w8s16": QFormat(), "w4s8-int-pc": QFormat(weight_bits=4, state_bits=8,
                                                      per_channel=True, scale="int"),
           "w6s12-mult": QFormat(weight_bits=6, state_bits=12, leak="multiply",
                                 leak_frac_bits=10, clip="max")}


def qnet_for(name, fmt, kind, rng=None, B=2, T=3):
    """(qnet, x) for net ``name`` quantized in ``fmt`` for ``kind`` input."""
    build, shape = NETS[name]
    net = compile_model(lively(build()), shape, dtype=np.float64)
    rng = rng or np.random.default_rng(3)
    img = rng.random((B,) + shape)
    if kind == "dense":
        x = encoding.direct(img * 4 - 2, T)
        return quantize_net(net, fmt, "dense", input_step(x, fmt)), x
    return quantize_net(net, fmt, "events"), encoding.ttfs(img, T)


def assert_matches_reference(qnet, x):
    res = qengine.run(qnet, x, record=True)
    spikes, syn, acc, sat = qnaive.qnetwork(qnet, x)
    for k, ref in spikes.items():
        np.testing.assert_array_equal(res.spikes[k], ref, err_msg=k)
    for lc in res.counts.layers:
        for k, ref in lc.projection_synops.items():
            np.testing.assert_array_equal(ref, syn[k], err_msg=k)
        if lc.kind != "readout":
            np.testing.assert_array_equal(
                lc.out_spikes, spikes[lc.name].reshape(x.shape[0], x.shape[1], -1).sum(2).T)
    np.testing.assert_array_equal(res.acc, acc)
    for k, ref in sat.items():
        np.testing.assert_array_equal(res.saturated[k], ref, err_msg=k)
    np.testing.assert_array_equal(res.logits, acc * qnet.readout.step / x.shape[0])
    return res, spikes


# ------------------------------------------------------------------------ the neuron


@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("hard_reset", [True, False])
@pytest.mark.parametrize("leak", [(1, 1), (1, 2), (1365, 12), (3, 3)])
def test_qlif_fire_matches_reference(rng, decay_input, hard_reset, leak):
    T, N = 6, 203
    x = rng.integers(-900, 1000, (T, N))
    th = rng.integers(1, 200, N)
    rest = rng.integers(-20, 20, N) if hard_reset else np.zeros(N, np.int64)
    lo, hi = -256, 255  # 9-bit states: some saturate
    ref_s, _, ref_sat = qnaive.qlif(x, th, rest, lo, hi, *leak, decay_input, hard_reset)
    v = rest.astype(np.int32)
    out = np.empty(N, np.int32)
    flags = np.zeros(N + 8, np.uint8)
    for t in range(T):
        k, ns = kq.qlif_fire(out, flags, v, x[t].astype(np.int32), th.astype(np.int32),
                             rest.astype(np.int32), lo, hi, *leak, decay_input, hard_reset)
        np.testing.assert_array_equal(out[:k], np.flatnonzero(ref_s[t]))
        assert ns == ref_sat[t]
    assert ref_sat.sum() > 0 and 0 < ref_s.mean() < 1  # not vacuous


def test_integer_lif_golden_trajectory():
    """Hand-computed: tau 2 (>> 1, rounding towards minus infinity), v_th 6, hard reset to
    0, states in [-8, 7]."""
    x = np.array([[5], [5], [-3], [20], [-40], [-40], [9], [9]])
    s, h, sat = qnaive.qlif(x, [6], [0], -8, 7, 1, 1)
    # h: 0+(5>>1)=2; 2+(3>>1)=3; 3+(-6>>1)=0; 0+(20>>1)=10 -> 7 (sat), fires, v=0;
    # 0+(-40>>1)=-20 -> -8 (sat); -8+(-32>>1)=-24 -> -8 (sat); -8+(17>>1)=0; 0+(9>>1)=4
    assert h[:, 0].tolist() == [2, 3, 0, 7, -8, -8, 0, 4]
    assert s[:, 0].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]
    assert sat.tolist() == [0, 0, 0, 1, 1, 1, 0, 0]
    v = np.zeros(1, np.int32)
    out, flags = np.empty(1, np.int32), np.zeros(9, np.uint8)
    got = []
    for t in range(len(x)):
        k, ns = kq.qlif_fire(out, flags, v, x[t].astype(np.int32), np.array([6], np.int32),
                             np.array([0], np.int32), -8, 7, 1, 1, True, True)
        got.append((k, ns))
    assert got == [(0, 0), (0, 0), (0, 0), (1, 1), (0, 1), (0, 1), (0, 0), (0, 0)]


# ------------------------------------------------------------------------ whole networks


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", ["strided", "residual", "if_sumpool"])
@pytest.mark.parametrize("kind", ["events", "dense"])
def test_engine_matches_integer_reference(name, fmt, kind):
    qnet, x = qnet_for(name, FORMATS[fmt], kind)
    res, spikes = assert_matches_reference(qnet, x)
    rates = [s.mean() for s in spikes.values()]  # not vacuous: layers fire, not everywhere
    assert max(rates) < 0.9 and (min(rates) > 0 if fmt == "w8s16" else
                                 sum(r > 0 for r in rates) >= len(rates) // 2)
    assert res.counts.mode == kind


@pytest.mark.parametrize("kind", ["events", "dense"])
def test_cifarnet_small_matches_integer_reference(kind):
    qnet, x = qnet_for("cifarnet_small", QFormat(), kind, B=2, T=2)
    res, spikes = assert_matches_reference(qnet, x)
    assert all(0 < s.mean() < 0.9 for s in spikes.values())
    first = res.counts.layers[0]
    if kind == "dense":
        assert (first.macs > 0).all() and not first.acs.any()
    else:
        assert not res.counts.total("macs").any()


def test_saturation_is_counted():
    """A state width narrower than the currents saturates; the engine counts exactly what
    the reference counts (the 16-bit model's integers, held in 13-bit states)."""
    q, x = qnet_for("strided", QFormat(), "dense")
    narrow = QNet(q.input_shape, q.populations, replace(q.fmt, state_bits=13), q.input_kind,
                  q.input_step)
    res, _ = assert_matches_reference(narrow, x)
    assert sum(int(v.sum()) for v in res.saturated.values()) > 0
    wide = qengine.run(q, x)
    assert sum(int(v.sum()) for v in wide.saturated.values()) == 0


def test_counts_have_the_float_engines_structure():
    build, shape = NETS["residual"]
    model = lively(build())
    net = compile_model(model, shape, dtype=np.float64)
    x = encoding.ttfs(np.random.default_rng(5).random((2,) + shape), 3)
    a = net.run(x).counts
    b = qengine.run(quantize_net(net, QFormat(), "events"), x).counts
    assert [(lc.name, lc.kind, lc.desc, lc.neurons, sorted(lc.projection_synops))
            for lc in a.layers] == [(lc.name, lc.kind, lc.desc, lc.neurons,
                                     sorted(lc.projection_synops)) for lc in b.layers]
    for lc in b.layers:
        for k in KINDS:
            v = getattr(lc, k)
            assert v.dtype == np.int64 and v.shape == (2, 3), (lc.name, k)
        np.testing.assert_array_equal(lc.synops, lc.acs + lc.macs)
    # what does not depend on the spikes is the same
    for la, lb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(la.neuron_updates, lb.neuron_updates)
        np.testing.assert_array_equal(la.bias_adds, lb.bias_adds)
    np.testing.assert_array_equal(a.layers[0].synops, b.layers[0].synops)


@pytest.mark.parametrize("kind", ["events", "dense"])
def test_batch_and_threads_do_not_change_results(kind):
    qnet, x = qnet_for("residual", QFormat(weight_bits=4, state_bits=8), kind, B=4)
    full = qengine.run(qnet, x, record=True)
    for b in range(4):
        one = qengine.run(qnet, x[:, b:b + 1], record=True)
        assert one.counts.mismatches(full.counts.select([b])) == []
        np.testing.assert_array_equal(one.acc[0], full.acc[b])
    old = snnlite.get_num_threads()
    try:
        snnlite.set_num_threads(1)
        single = qengine.run(qnet, x, record=True)
    finally:
        snnlite.set_num_threads(old)
    assert single.counts.mismatches(full.counts) == []
    np.testing.assert_array_equal(single.acc, full.acc)


# ------------------------------------------------------------------------ refusals


def test_a_current_that_could_overflow_int32_is_refused():
    """16-bit weights on 16-bit inputs: 18 taps of up to 32767 * 32767 can pass 2^31 - 1."""
    build, shape = NETS["strided"]
    net = compile_model(lively(build()), shape, dtype=np.float64)
    fmt = QFormat(weight_bits=16, state_bits=32, input_bits=16)
    with pytest.raises(ValueError, match=r"layer '0': its current could reach \d+, beyond "
                                         "the 32-bit accumulator"):
        quantize_net(net, fmt, "dense", 1e-3)
    q = quantize_net(net, fmt, "events")  # spikes (inputs of 1) fit
    assert max(q.current_bounds()) < 2 ** 31
    q.populations[3].projections[0].weight[:] = fmt.w_max  # 5 inputs of 32767: fits
    q.check()
    q.populations[0].bias[:] = 2 ** 31 - 1  # a bias at the top of the state range: the
    with pytest.raises(ValueError, match="layer '0'.*accumulator"):  # sum could pass int32
        q.check()


def test_bad_input_is_refused():
    qnet, x = qnet_for("strided", QFormat(), "events")
    with pytest.raises(ValueError, match="binary event input"):
        qengine.run(qnet, x * 0.5)
    with pytest.raises(ValueError, match="expected shape"):
        qengine.run(qnet, x[:, :, :1])
    with pytest.raises(TypeError, match="quantized network"):
        qengine.run(compile_model(lively(strided_net()), (2, 13, 13)), x)
    dense, xd = qnet_for("strided", QFormat(), "dense")
    bad = np.array(xd)
    bad[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        qengine.run(dense, bad)
