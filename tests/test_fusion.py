"""The fused BatchNorm -> LIF [-> AvgPool] pass equals the modules run one by one."""
import numpy as np
import pytest

from snnlite import encoding, nn


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
