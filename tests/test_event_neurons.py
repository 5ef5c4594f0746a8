"""The event engine with IF, CubaLIF, sum pooling and recurrent layers: counts equal the dense
reference's exactly, spikes equal the model's own forward (float64), and recurrent synops
are the real fan-out of the previous step's spikes."""
import numpy as np
import pytest

from snnlite import encoding, nn
from snnlite.event import compile_model, dense_counts


def lively(model, seed=0):
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            C = m.num_features
            m.weight.data[:] = rng.uniform(1.0, 2.0, C)
            m.bias.data[:] = rng.normal(0.4, 0.4, C)
            m.running_mean[:] = rng.normal(0.0, 0.1, C)
            m.running_var[:] = rng.uniform(0.02, 0.2, C)
        elif isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            m.weight.data *= 3
            m.bias.data[:] = rng.normal(0.3, 0.5, m.bias.data.shape)
    return model.astype(np.float64).eval()


def if_net():
    """BN -> IF (fused in the dense path), sum pooling into a conv, IF soft reset, readout."""
    r, d = np.random.default_rng(1), np.float64
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, 1, 1, bias=False, rng=r, dtype=d), nn.BatchNorm2d(4, dtype=d),
        nn.IF(), nn.SumPool2d(2), nn.Conv2d(4, 5, 3, 1, 1, rng=r, dtype=d),
        nn.IF(v_reset=None, v_threshold=2.0), nn.AvgPool2d(2), nn.Flatten(),
        nn.Linear(5 * 9, 3, rng=r, dtype=d), nn.TimeMean())


def recurrent_net(neuron):
    r, d = np.random.default_rng(2), np.float64
    lin = nn.Linear(12, 12, rng=r, dtype=d)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, 2, 1, rng=r, dtype=d), nn.CubaLIF(2.0, 3.0), nn.SumPool2d(3),
        nn.Flatten(), nn.Linear(3 * 4, 12, rng=r, dtype=d), nn.Recurrent(neuron, lin),
        nn.Linear(12, 6, bias=False, rng=r, dtype=d), nn.CubaLIF(4.0, 2.0, v_reset=None),
        nn.Linear(6, 3, rng=r, dtype=d), nn.TimeMean())


MODELS = {
    "if": (if_net, (2, 12, 12)),
    "rec_cuba": (lambda: recurrent_net(nn.CubaLIF(3.0, 2.5)), (2, 12, 12)),
    "rec_lif": (lambda: recurrent_net(nn.LIF(tau=3.0)), (2, 12, 12)),
    "rec_if": (lambda: recurrent_net(nn.IF(v_threshold=1.5)), (2, 12, 12)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("enc", ["direct", "ttfs"])
def test_event_path_matches_dense_path_exactly(name, enc):
    build, shape = MODELS[name]
    model = lively(build())
    net = compile_model(model, shape, dtype=np.float64)
    x = np.random.default_rng(3).random((3,) + shape)
    x = encoding.direct(x, 6) if enc == "direct" else encoding.ttfs(x, 6)
    res = net.run(x, record=True)
    ref, ref_logits, ref_spikes = dense_counts(net, model, x)
    assert res.counts.mismatches(ref) == []
    for p in net.populations:
        if p.kind != "readout":
            np.testing.assert_array_equal(res.spikes[p.name], ref_spikes[p.name], err_msg=p.name)
    np.testing.assert_allclose(res.logits, model.forward(x), rtol=1e-10, atol=1e-12)
    for lc in res.counts.layers:
        if lc.kind != "readout":
            assert 0 < lc.firing_rate().max() < 0.95, lc.name


def test_recurrent_projection_counts_by_hand():
    model = lively(recurrent_net(nn.CubaLIF(3.0, 2.5)))
    net = compile_model(model, (2, 12, 12), dtype=np.float64)
    x = encoding.ttfs(np.random.default_rng(4).random((2, 2, 12, 12)), 5)
    res = net.run(x, record=True)
    rec = next(p for p in net.populations if p.neuron == "5")
    assert "recurrent, t-1" in rec.describe()
    lc = res.counts.layer(rec.name)
    s = res.spikes[rec.name].reshape(5, 2, -1).sum(2).T  # [B, T] spikes of the layer
    np.testing.assert_array_equal(lc.projection_synops["5.recurrent"][:, 0], 0)
    np.testing.assert_array_equal(lc.projection_synops["5.recurrent"][:, 1:], s[:, :-1] * 12)
    # the feedback bias joins the layer's bias from the second step: one add either way
    np.testing.assert_array_equal(lc.bias_adds, np.full((2, 5), 12))


def test_event_float32_close_to_float64_with_new_neurons():
    model = lively(recurrent_net(nn.CubaLIF(3.0, 2.5)))
    x = encoding.ttfs(np.random.default_rng(5).random((2, 2, 12, 12)), 6)
    a = compile_model(model, (2, 12, 12), dtype=np.float32).run(x)
    b = compile_model(model, (2, 12, 12), dtype=np.float64).run(x)
    np.testing.assert_allclose(a.logits, b.logits, rtol=1e-3, atol=1e-3)
