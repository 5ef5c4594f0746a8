"""The fused BatchNorm -> LIF [-> AvgPool] pass equals the modules run one by one."""
import naive
import numpy as np
import pytest

from snnlite import encoding, nn
from snnlite.nn import functional as F


def _net(seed, dtype, pool, **lif):
    rng = np.random.default_rng(seed)
    layers = [nn.Conv2d(3, 4, 3, 1, 1, bias=False, rng=rng, dtype=dtype),
              nn.BatchNorm2d(4, dtype=dtype), nn.LIF(**lif)]
    if pool:
        layers.append(nn.AvgPool2d(2))
    layers += [nn.Conv2d(4, 5, 3, 2, 1, rng=rng, dtype=dtype), nn.BatchNorm2d(5, dtype=dtype),
               nn.LIF(**lif), nn.Flatten(), nn.Linear(5 * (2 if pool else 4) ** 2, 3, rng=rng,
                                                      dtype=dtype), nn.TimeMean()]
    net = nn.Sequential(*layers)
    for m in net.layers():  # non-trivial affine so that both spiking and silent neurons occur
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data[:] = rng.uniform(0.5, 2.0, m.num_features)
            m.bias.data[:] = rng.uniform(-0.5, 1.0, m.num_features)
    return net


LIF_KW = [{}, dict(v_reset=None), dict(decay_input=False), dict(detach_reset=True),
          dict(v_reset=-0.2, tau=3.0)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("broadcast", [True, False])
@pytest.mark.parametrize("lif", LIF_KW, ids=lambda d: ",".join(d) or "default")
def test_fused_equals_unfused(rng, dtype, pool, broadcast, lif):
    img = rng.random((3, 3, 8, 8)).astype(dtype) * 2
    x = encoding.direct(img, 4) if broadcast else rng.random((4, 3, 3, 8, 8)).astype(dtype) * 2
    a, b = _net(7, dtype, pool, **lif), _net(7, dtype, pool, **lif)
    b.fuse = False
    a.requires_input_grad = b.requires_input_grad = True
    ya, yb = a.forward(x), b.forward(x)
    np.testing.assert_array_equal(ya, yb)
    counts = [m.spike_count for m in a.layers() if isinstance(m, nn.LIF)]
    assert counts == [m.spike_count for m in b.layers() if isinstance(m, nn.LIF)]
    assert all(c > 0 for c in counts)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k], err_msg=k)
    g = rng.standard_normal(ya.shape).astype(dtype)
    dxa, dxb = a.backward(g), b.backward(g)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(dxa, dxb, **tol)
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(pa.grad, pb.grad, err_msg=n, **tol)
    a.eval()
    b.eval()
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("pool", [True, False])
def test_fused_blocks_of_small_planes_equal_unfused(rng, threads, pool):
    """Small maps run as blocks of several planes (``fused.PLANES`` values): 160 planes of
    8x8 and 200 of 4x4 (or 2x2) split over the workers give whole and partial blocks."""
    from snnlite import _pool
    x = rng.random((4, 40, 3, 8, 8)).astype(np.float32) * 2
    a, b = _net(3, np.float32, pool), _net(3, np.float32, pool)
    b.fuse = False
    a.requires_input_grad = b.requires_input_grad = True
    old = _pool.get_num_threads()
    _pool.set_num_threads(threads)
    try:
        ya, yb = a.forward(x), b.forward(x)
        np.testing.assert_array_equal(ya, yb)
        assert [m.spike_count for m in a.layers() if isinstance(m, nn.LIF)] == \
            [m.spike_count for m in b.layers() if isinstance(m, nn.LIF)]
        g = rng.standard_normal(ya.shape).astype(np.float32)
        np.testing.assert_allclose(a.backward(g), b.backward(g), rtol=1e-5, atol=1e-6)
        for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
            np.testing.assert_allclose(pa.grad, pb.grad, err_msg=n, rtol=1e-5, atol=1e-6)
    finally:
        _pool.set_num_threads(old)


@pytest.mark.parametrize("downsample", [True, False])
def test_fused_basic_block_equals_unfused(rng, downsample):
    cout, stride = (8, 2) if downsample else (4, 1)
    a = nn.BasicBlock(4, cout, stride, rng=np.random.default_rng(1), dtype=np.float64)
    b = nn.BasicBlock(4, cout, stride, rng=np.random.default_rng(1), dtype=np.float64)
    b.fuse = False
    x = (rng.random((3, 2, 4, 8, 8)) < 0.5).astype(np.float64)
    ya, yb = a.forward(x), b.forward(x)
    np.testing.assert_array_equal(ya, yb)
    assert 0 < ya.mean() < 1
    g = rng.standard_normal(ya.shape)
    np.testing.assert_allclose(a.backward(g), b.backward(g), rtol=1e-11, atol=1e-13)
    for (n, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(pa.grad, pb.grad, rtol=1e-11, atol=1e-13, err_msg=n)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k], err_msg=k)


# ------------------------------------------- conv -> BN -> LIF in inference (event path)
def _spiking_net(seed, dtype, pool, bias, neuron):
    """Spike input -> two conv/BN/neuron stages: both convolutions join the fused pass."""
    rng = np.random.default_rng(seed)
    layers = [nn.Conv2d(6, 20, 3, 1, 1, bias=bias, rng=rng, dtype=dtype),
              nn.BatchNorm2d(20, dtype=dtype), neuron()]
    if pool:
        layers.append(nn.AvgPool2d(2))
    layers += [nn.Conv2d(20, 70, 3, 2, 1, bias=bias, rng=rng, dtype=dtype),
               nn.BatchNorm2d(70, dtype=dtype), neuron(), nn.Flatten(),
               nn.Linear(70 * (2 if pool else 4) ** 2, 3, rng=rng, dtype=dtype), nn.TimeMean()]
    net = nn.Sequential(*layers)
    for m in net.layers():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data[:] = rng.uniform(0.5, 2.0, m.num_features)
            m.bias.data[:] = rng.uniform(-0.5, 1.0, m.num_features)
            m.running_mean[:] = rng.uniform(-0.2, 0.2, m.num_features)
            m.running_var[:] = rng.uniform(0.05, 0.3, m.num_features)
        if isinstance(m, nn.Conv2d):
            m.sparse_below = 0.6  # the same path per image with and without fusion
    return net.eval()


@pytest.fixture
def fused_calls(monkeypatch):
    """The ``ok`` flags of every fused conv -> BN -> LIF call."""
    calls, inner = [], F.conv_bn_lif_forward

    def spy(*args, **kw):
        out = inner(*args, **kw)
        calls.append(out[2])
        return out
    monkeypatch.setattr(F, "conv_bn_lif_forward", spy)
    return calls


NEURONS = {"lif": nn.LIF, "soft": lambda: nn.LIF(v_reset=None),
           "tau3": lambda: nn.LIF(tau=3.0, v_reset=-0.2, decay_input=False),
           "if": lambda: nn.IF(v_threshold=0.5)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("neuron", sorted(NEURONS))
def test_fused_conv_inference_equals_unfused(rng, fused_calls, dtype, pool, bias, neuron):
    x = (rng.random((5, 4, 6, 8, 8)) < 0.15).astype(dtype)
    x[:, 1] = (rng.random((5, 6, 8, 8)) < 0.9)  # a dense sample: the convolution on its own
    x[:, 2] = 0  # a silent one
    a, b = (_spiking_net(3, dtype, pool, bias, NEURONS[neuron]) for _ in range(2))
    b.fuse = False
    ya, yb = a.forward(x), b.forward(x)
    np.testing.assert_array_equal(ya, yb)
    counts = [m.spike_count for m in a.layers() if hasattr(m, "spike_count")]
    assert counts == [m.spike_count for m in b.layers() if hasattr(m, "spike_count")]
    assert all(c > 0 for c in counts)
    assert len(fused_calls) == 2 and fused_calls[0].tolist() == [True, False, True, True]
    assert fused_calls[1].any()  # the second stage reads spikes
    a.train()
    a.forward(x)
    assert len(fused_calls) == 2  # training runs the convolution on its own


def test_fused_conv_inference_time_broadcast_input(rng, fused_calls):
    img = (rng.random((3, 6, 8, 8)) < 0.1).astype(np.float32)  # a sparse image, direct-coded
    a, b = (_spiking_net(5, np.float32, True, False, nn.LIF) for _ in range(2))
    b.fuse = False
    x = encoding.direct(img, 6)
    np.testing.assert_array_equal(a.forward(x), b.forward(x))
    assert fused_calls[0].all()


@pytest.mark.parametrize("downsample", [True, False])
def test_fused_conv_inference_residual_block(rng, fused_calls, downsample):
    cout, stride = (24, 2) if downsample else (20, 1)

    def block():
        r = np.random.default_rng(1)
        m = nn.BasicBlock(20, cout, stride, rng=r, dtype=np.float64).eval()
        for k in m.modules():
            if isinstance(k, nn.Conv2d):
                k.sparse_below = 0.6
            if isinstance(k, nn.BatchNorm2d):
                k.weight.data[:] = r.uniform(0.5, 2.0, k.num_features)
                k.bias.data[:] = r.uniform(0.0, 1.0, k.num_features)
        return m

    a, b = block(), block()
    b.fuse = False
    x = (rng.random((3, 2, 20, 8, 8)) < 0.2).astype(np.float64)
    ya = a.forward(x)
    np.testing.assert_array_equal(ya, b.forward(x))
    assert 0 < ya.mean() < 1
    assert len(fused_calls) == 2 and all(ok.all() for ok in fused_calls)


@pytest.mark.parametrize("pool", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("O", [12, 18])  # a 16-wide register block, and a 64/128-wide one
def test_conv_bn_lif_kernel_matches_reference(rng, pool, stride, O):
    T, B, C, H = 4, 3, 5, 8
    x = (rng.random((T, B, C, H, H)) < 0.2).astype(np.float64)
    x[:, 1, 0] = 1  # sample 1 is dense at every step
    w = rng.normal(0, 0.6, (O, C, 3, 3))
    bias = rng.normal(0, 0.2, O)
    res = rng.normal(0, 0.5, (T, B, O, H // stride, H // stride))
    mean, rstd = rng.normal(0, 0.2, O), rng.uniform(1, 3, O)
    gamma, beta = rng.uniform(0.5, 2, O), rng.uniform(-0.5, 1, O)
    out, counts, ok = F.conv_bn_lif_forward(x, w, bias, stride, 1, 0.3, mean, rstd, gamma,
                                            beta, T, 2.0, 1.0, 0.0, True, pool, residual=res)
    assert ok.tolist() == [True, False, True]
    y = naive.conv2d(x.reshape(T * B, C, H, H), w, bias, stride, 1).reshape(res.shape)
    cur = (y - mean[:, None, None]) * rstd[:, None, None] * gamma[:, None, None] + \
        beta[:, None, None] + res
    s = naive.lif(cur.reshape(T, -1), 2.0, 1.0, 0.0, True)[0].reshape(cur.shape)
    ref = naive.avg_pool(s.reshape((T * B,) + s.shape[2:]), pool).reshape(out.shape) \
        if pool > 1 else s
    np.testing.assert_allclose(out[:, ok], ref[:, ok], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(counts[ok], s[:, ok].sum((0, 3, 4)))
    assert 0 < s[:, ok].mean() < 1


def test_conv_bn_lif_rejects_bad_arguments(rng):
    x = np.zeros((2, 1, 3, 4, 4))
    w, one = np.zeros((4, 3, 3, 3)), np.ones(4)
    args = (one, one, one, one, 2, 2.0, 1.0, 0.0, True, 1)
    with pytest.raises(ValueError, match="positive fraction"):
        F.conv_bn_lif_forward(x, w, None, 1, 1, 0.0, *args)
    with pytest.raises(ValueError, match="input channels"):
        F.conv_bn_lif_forward(x, np.zeros((4, 2, 3, 3)), None, 1, 1, 0.3, *args)
    with pytest.raises(ValueError, match="pooling"):
        F.conv_bn_lif_forward(np.zeros((2, 1, 3, 5, 5)), w, None, 1, 1, 0.3, *args[:-1], 2)
    with pytest.raises(ValueError, match="residual"):
        F.conv_bn_lif_forward(x, w, None, 1, 1, 0.3, *args, residual=np.zeros((2, 1, 4, 2, 2)))


def test_fused_conv_inference_respects_dense_only(rng, fused_calls):
    """``sparse_below = 0`` (dense convolutions everywhere) keeps the fused event pass off."""
    a = _spiking_net(3, np.float32, True, False, nn.LIF)
    for m in a.layers():
        if isinstance(m, nn.Conv2d):
            m.sparse_below = 0.0
    a.forward((rng.random((3, 2, 6, 8, 8)) < 0.1).astype(np.float32))
    assert fused_calls == []
