"""IF, CubaLIF and Recurrent neurons: kernels against plain-NumPy references, BPTT against
the chain rule and finite differences (below threshold, where the surrogate gradient is a
true one), golden trajectories, fusion of BN -> IF and tracing of recurrent layers."""
import math

import naive
import numpy as np
import pytest
from gradcheck import directional_check

from snnlite.nn import (
    IF,
    LIF,
    BatchNorm2d,
    Conv2d,
    CubaLIF,
    Flatten,
    Linear,
    Recurrent,
    Scale,
    Sequential,
    Threshold,
    TimeMean,
    trace,
)
from snnlite.nn import functional as F
from snnlite.nn.fusion import fusion_groups


def antiderivative(u, alpha=2.0):
    """The function whose derivative is the ATan surrogate."""
    return np.arctan(math.pi / 2 * alpha * u) / math.pi + 0.5


# ---------------------------------------------------------------- IF
@pytest.mark.parametrize("v_reset", [0.0, None, -0.5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_if_is_spikingjelly_ifnode_bit_for_bit(rng, v_reset, dtype):
    x = rng.normal(0.4, 0.8, (9, 300)).astype(dtype)
    m = IF(v_reset=v_reset)
    s = m.forward(x[:, None, :])[:, 0]
    rs, rh = naive.if_neuron(x, 1.0, v_reset)
    np.testing.assert_array_equal(s, rs)
    _, h, _ = F.lif_forward(x, math.inf, 1.0, v_reset, False)
    np.testing.assert_array_equal(h, rh)
    assert 0.1 < s.mean() < 0.9


def test_if_golden_trajectory_with_reset_and_tie():
    x = np.array([[0.6], [0.6], [0.5], [1.2], [-0.3]])
    s, h, v = F.lif_forward(x, math.inf, 1.0, 0.0, False)
    np.testing.assert_allclose(h[:, 0], [0.6, 1.2, 0.5, 1.7, -0.3])
    np.testing.assert_array_equal(s[:, 0], [0, 1, 0, 1, 0])
    assert v[0] == -0.3
    s, h, _ = F.lif_forward(np.array([[0.5], [0.5]], np.float32), math.inf, 1.0, None, False)
    assert s[:, 0].tolist() == [0, 1] and h[1, 0] == 1.0  # h = 1.0 exactly: a tie spikes


@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_if_backward_matches_chain_rule(rng, v_reset, detach_reset):
    x = rng.normal(0.4, 0.8, (7, 50))
    m = IF(v_reset=v_reset, detach_reset=detach_reset)
    s = m.forward(x[:, None])
    ds = rng.normal(size=s.shape)
    dx = m.backward(ds)[:, 0]
    _, h, _ = F.lif_forward(x, math.inf, 1.0, v_reset, False)
    ref = naive.lif_backward(ds[:, 0], h, math.inf, 1.0, v_reset, False, detach_reset)
    np.testing.assert_allclose(dx, ref, rtol=1e-12, atol=1e-14)


def test_bn_if_fuses_and_matches_unfused(rng):
    def model(fuse):
        r = np.random.default_rng(0)
        m = Sequential(Conv2d(2, 3, 3, 1, 1, rng=r, dtype=np.float64), BatchNorm2d(3),
                       IF(v_threshold=0.5), Flatten(), Linear(3 * 16, 2, rng=r,
                                                                  dtype=np.float64))
        m.fuse = fuse
        return m.astype(np.float64)

    x = rng.normal(0, 1, (5, 2, 2, 4, 4))
    groups = fusion_groups(trace(model(True), (2, 4, 4)))
    assert groups == [(("0", "1", "2"), None)]
    a, b = model(True), model(False)
    ya, yb = a.forward(x), b.forward(x)
    np.testing.assert_array_equal(ya, yb)
    dy = rng.normal(size=ya.shape)
    np.testing.assert_allclose(a.backward(dy), b.backward(dy), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a[1].weight.grad, b[1].weight.grad, rtol=1e-10)
    assert a[2].spike_count == b[2].spike_count > 0


# ---------------------------------------------------------------- CubaLIF
CUBA_CASES = [dict(), dict(v_reset=None), dict(v_reset=-0.25, v_leak=0.1),
              dict(w_in=0.5, r=1.5), dict(tau_syn=4.0, tau_mem=8.0)]


def cuba(kw):
    p = dict(tau_syn=3.0, tau_mem=2.5, w_in=1.0, r=1.0, v_leak=0.0, v_reset=0.0)
    p.update(kw)
    return p


@pytest.mark.parametrize("kw", CUBA_CASES)
def test_cuba_forward_matches_reference(rng, kw):
    p = cuba(kw)
    x = rng.normal(0.4, 0.8, (12, 200))
    s, h, v, i = F.cuba_forward(x, p["tau_syn"], p["tau_mem"], p["w_in"], p["r"], p["v_leak"],
                                1.0, p["v_reset"])
    rs, rh, ri = naive.cuba_lif(x, p["tau_syn"], p["tau_mem"], p["w_in"], p["r"],
                                p["v_leak"], 1.0, p["v_reset"])
    np.testing.assert_array_equal(s, rs)
    np.testing.assert_allclose(h, rh, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(i, ri[-1], rtol=1e-13, atol=1e-13)
    assert 0.05 < s.mean() < 0.9


def test_cuba_golden_trajectory():
    x = np.array([[1.0], [1.0], [0.0], [0.0]])
    s, h, v, i = F.cuba_forward(x, 2.0, 2.0)
    # i: 1, 1.5, 0.75, 0.375; h: 1 (tie: spikes), 1.5 (spikes), 0.75, 0.75 - 0.375 + 0.375
    np.testing.assert_array_equal(h[:, 0], [1.0, 1.5, 0.75, 0.75])
    np.testing.assert_array_equal(s[:, 0], [1, 1, 0, 0])
    assert (v[0], i[0]) == (0.75, 0.375)


@pytest.mark.parametrize("kw", CUBA_CASES)
@pytest.mark.parametrize("detach_reset", [False, True])
def test_cuba_backward_matches_chain_rule(rng, kw, detach_reset):
    p = cuba(kw)
    m = CubaLIF(p["tau_syn"], p["tau_mem"], 1.0, p["v_reset"], p["v_leak"], p["w_in"], p["r"],
                detach_reset=detach_reset)
    x = rng.normal(0.4, 0.8, (10, 2, 30))
    s = m.forward(x)
    ds = rng.normal(size=s.shape)
    dx = m.backward(ds)
    _, h, _ = naive.cuba_lif(x.reshape(10, -1), p["tau_syn"], p["tau_mem"], p["w_in"], p["r"],
                             p["v_leak"], 1.0, p["v_reset"])
    ref = naive.cuba_lif_backward(ds.reshape(10, -1), h, p["tau_syn"], p["tau_mem"],
                                  p["w_in"], p["r"], 1.0, p["v_reset"], detach_reset)
    np.testing.assert_allclose(dx.reshape(10, -1), ref, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("neuron", ["cuba", "if"])
def test_gradient_below_threshold_is_exact(rng, neuron):
    """With no spike and the reset detached, BPTT's surrogate gradient is the true gradient
    of sum(ds * S(h - v_th)), S the surrogate's antiderivative: a finite-difference check
    of the charge and current paths."""
    x = rng.uniform(-0.2, 0.1, (8, 20))
    ds = rng.normal(size=x.shape)
    if neuron == "cuba":
        def h_of(a):
            return F.cuba_forward(a, 3.0, 2.5, 0.7, 1.3, 0.05, 1.0)[1]
        dx = F.cuba_backward(ds, h_of(x), 3.0, 2.5, 0.7, 1.3, 1.0, detach_reset=True)
    else:
        def h_of(a):
            return F.lif_forward(a, math.inf, 1.0, 0.0, False)[1]
        dx = F.lif_backward(ds, h_of(x), math.inf, 1.0, 0.0, False, detach_reset=True)
    assert not (h_of(x) >= 1.0).any()
    directional_check(lambda a: float((ds * antiderivative(h_of(a) - 1.0)).sum()), [x], [dx],
                      rng)


def test_cuba_stream_and_time_broadcast(rng):
    m = CubaLIF(3.0, 2.0)
    x = rng.normal(0.5, 1, (6, 2, 4))
    s, _ = m.stream(x)
    s1, st = m.stream(x[:2])
    s2, _ = m.stream(x[2:], st)
    np.testing.assert_array_equal(np.concatenate([s1, s2]), s)
    x0 = rng.normal(0.5, 1, (1, 2, 4))
    np.testing.assert_array_equal(m.forward(np.broadcast_to(x0, (5, 2, 4))),
                                  m.forward(np.repeat(x0, 5, 0)))


def test_cuba_rejects_bad_time_constants():
    with pytest.raises(ValueError, match="tau_syn must be > 1"):
        CubaLIF(tau_syn=1.0)


# ---------------------------------------------------------------- Recurrent
def lif_step(tau, v_reset=0.0, decay_input=True):
    def step(cur, state):
        s, h, v = naive.lif(cur[None], tau, 1.0, v_reset, decay_input) if state is None else \
            _lif_from(cur, state, tau, v_reset, decay_input)
        return s[0], h[0], v[0]
    return step


def _lif_from(cur, v, tau, v_reset, decay_input):
    r = 0.0 if v_reset is None else v_reset
    h = v + (cur - (v - r)) / tau if decay_input else v - (v - r) / tau + cur
    s = (h >= 1.0).astype(float)
    v = np.where(s > 0, h - 1.0, h) if v_reset is None else np.where(s > 0, v_reset, h)
    return s[None], h[None], v[None]


def cuba_step(p):
    def step(cur, state):
        v, i = state if state is not None else (np.full(cur.shape, p["v_reset"] or 0.0),
                                                np.zeros(cur.shape))
        i = i - i / p["tau_syn"] + p["w_in"] * cur
        h = v - (v - p["v_leak"]) / p["tau_mem"] + p["r"] * i
        s = (h >= 1.0).astype(float)
        v = np.where(s > 0, h - 1.0, h) if p["v_reset"] is None else \
            np.where(s > 0, p["v_reset"], h)
        return s, h, (v, i)
    return step


NEURON_CASES = {
    "lif": (lambda: LIF(tau=2.0), lif_step(2.0)),
    "lif_soft_nodecay": (lambda: LIF(tau=3.0, v_reset=None, decay_input=False),
                         lif_step(3.0, None, False)),
    "if": (lambda: IF(), lif_step(math.inf, 0.0, False)),
    "cuba": (lambda: CubaLIF(3.0, 2.5, w_in=1.0, r=1.0),
             cuba_step(cuba({}))),
    "cuba_soft": (lambda: CubaLIF(3.0, 2.5, v_reset=None, v_leak=0.1, w_in=0.5, r=1.5),
                  cuba_step(cuba(dict(v_reset=None, v_leak=0.1, w_in=0.5, r=1.5)))),
}


def recurrent_layer(rng, make, M=6, bias=True):
    lin = Linear(M, M, bias=bias, rng=rng, dtype=np.float64)
    lin.weight.data *= 2.0
    return Recurrent(make(), lin)


@pytest.mark.parametrize("case", list(NEURON_CASES))
def test_recurrent_forward_matches_reference(rng, case):
    make, step = NEURON_CASES[case]
    m = recurrent_layer(rng, make)
    x = rng.normal(0.3, 0.8, (10, 3, 6))
    s = m.forward(x)
    rs, _ = naive.recurrent(x, m.recurrent.weight.data, m.recurrent.bias.data, step)
    np.testing.assert_array_equal(s, rs)
    assert 0.05 < s.mean() < 0.9 and m.spike_count == int(rs.sum())
    # the feedback matters: without it the spikes differ
    plain = make().forward(x)
    assert not np.array_equal(plain, s)


@pytest.mark.parametrize("case", list(NEURON_CASES))
def test_recurrent_backward_matches_chain_rule(rng, case):
    """BPTT: the gradient of the spikes of step t also reaches step t + 1 through W."""
    make, _ = NEURON_CASES[case]
    m = recurrent_layer(rng, make)
    x = rng.normal(0.3, 0.8, (8, 2, 6))
    s = m.forward(x)
    ds = rng.normal(size=s.shape)
    dx = m.backward(ds)
    W, b = m.recurrent.weight.data, m.recurrent.bias.data
    # unrolled by hand: each step a plain neuron of one step fed its carried state
    ref = _unrolled_backward(m.neuron, x, s, ds, W, b)
    np.testing.assert_allclose(dx, ref, rtol=1e-10, atol=1e-12)
    dW = sum(np.einsum("bj,bk->jk", dx[t], s[t - 1]) for t in range(1, len(x)))
    np.testing.assert_allclose(m.recurrent.weight.grad, dW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(m.recurrent.bias.grad, dx[1:].sum((0, 1)), rtol=1e-10)


def _unrolled_backward(neuron, x, s, ds, W, b):
    """Reference BPTT for a recurrent layer: the neuron's own (checked) backward on the
    sequence of total currents, iterated until the feedback term is consistent."""
    T = len(x)
    cur = x.copy()
    cur[1:] += np.einsum("tbk,jk->tbj", s[:-1], W) + b
    g = ds.copy()
    for _ in range(T + 1):  # the feedback reaches back one step per round: T rounds suffice
        neuron.train()
        neuron.forward(cur)
        dcur = neuron.backward(g)
        g = ds.copy()
        g[:-1] += np.einsum("tbj,jk->tbk", dcur[1:], W)
    return dcur


def test_recurrent_without_feedback_is_the_neuron(rng):
    lin = Linear(5, 5, bias=False, dtype=np.float64)
    lin.weight.data[...] = 0
    x = rng.normal(0.5, 1, (6, 2, 5))
    for make in (lambda: LIF(), lambda: CubaLIF(3.0, 2.0)):
        m, n = Recurrent(make(), lin), make()
        np.testing.assert_array_equal(m.forward(x), n.forward(x))
        dy = rng.normal(size=x.shape)
        np.testing.assert_allclose(m.backward(dy), n.backward(dy), rtol=1e-13)


def test_recurrent_traces_as_one_node_and_trains(rng):
    model = Sequential(Linear(4, 6, rng=rng, dtype=np.float64),
                       recurrent_layer(rng, lambda: CubaLIF(2.0, 2.0)),
                       Linear(6, 3, rng=rng, dtype=np.float64), LIF(), TimeMean())
    g = trace(model, (4,))
    assert [n.kind for n in g] == ["input", "linear", "recurrent", "linear", "lif", "mean"]
    assert "1.recurrent.weight" in model.state_dict()
    x = np.broadcast_to(rng.normal(0.5, 1, (1, 2, 4)), (6, 2, 4))
    y = model.forward(x)
    dx = model.backward(np.ones_like(y))
    assert dx.shape == (1, 2, 4) and np.abs(model[1].recurrent.weight.grad).sum() > 0


def test_recurrent_rejects_bad_parts():
    with pytest.raises(TypeError, match="square Linear"):
        Recurrent(LIF(), Linear(3, 4))
    with pytest.raises(TypeError, match="LIF, IF or CubaLIF"):
        Recurrent(Linear(3, 3), Linear(3, 3))
    with pytest.raises(ValueError, match=r"per-sample shape \(3,\)"):
        trace(Sequential(Recurrent(LIF(), Linear(3, 3))), (4,))


# ---------------------------------------------------------------- Scale, Threshold
def test_scale_and_threshold(rng):
    sc = rng.uniform(0.5, 2, (4,))
    m = Sequential(Scale(sc), Threshold(np.full(4, 0.5)))
    x = rng.normal(0, 1, (3, 2, 4))
    y = m.forward(x)
    np.testing.assert_array_equal(y, (x * sc >= 0.5).astype(float))
    dy = rng.normal(size=y.shape)
    dx = m.backward(dy)
    u = x * sc - 0.5
    np.testing.assert_allclose(dx, dy / (1 + (math.pi * u) ** 2) * sc, rtol=1e-12)
    np.testing.assert_allclose(m[0].scale.grad, (dy / (1 + (math.pi * u) ** 2) * x).sum((0, 1)),
                               rtol=1e-12)
