"""Module contract: names, loading, modes, dtypes, time broadcast, residual blocks."""
import subprocess
import sys

import numpy as np
import pytest
from gradcheck import directional_check

import snnlite
from snnlite import nn

# the same network as a PyTorch nn.Sequential: (name, shape) in state_dict order
TORCH_CIFARNET_KEYS = []
for i, (cin, cout) in zip((0, 3, 7, 11), ((3, 32), (32, 64), (64, 128), (128, 128))):
    TORCH_CIFARNET_KEYS += [(f"{i}.weight", (cout, cin, 3, 3))]
    TORCH_CIFARNET_KEYS += [(f"{i + 1}.{k}", (cout,)) for k in
                            ("weight", "bias", "running_mean", "running_var")]
    TORCH_CIFARNET_KEYS += [(f"{i + 1}.num_batches_tracked", ())]
TORCH_CIFARNET_KEYS += [("16.weight", (10, 2048)), ("16.bias", (10,))]


def test_import_does_not_import_torch():
    code = "import sys, snnlite, snnlite.nn, snnlite.models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_cifarnet_state_dict_matches_pytorch_names():
    sd = snnlite.models.cifarnet_small().state_dict()
    assert [(k, v.shape) for k, v in sd.items()] == TORCH_CIFARNET_KEYS
    assert sd["1.num_batches_tracked"].dtype == np.int64


def test_load_state_dict_strict_errors():
    m = snnlite.models.cifarnet_small()
    sd = m.state_dict()
    bad = dict(sd)
    del bad["0.weight"]
    bad["extra"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys \['0.weight'\].*unexpected keys "
                                         r"\['extra'\]"):
        m.load_state_dict(bad)
    m.load_state_dict(bad, strict=False)  # tolerated, but shapes still checked
    bad = dict(sd)
    bad["16.weight"] = np.zeros((10, 100))
    with pytest.raises(ValueError, match=r"16.weight: expected shape \(10, 2048\)"):
        m.load_state_dict(bad)


def test_state_dict_round_trip_and_copy_semantics(rng):
    a, b = snnlite.models.cifarnet_small(seed=1), snnlite.models.cifarnet_small(seed=2)
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and np.array_equal(va, vb)
    sd = a.state_dict()
    sd["0.weight"][:] = 0  # a copy: the model is untouched
    assert a[0].weight.data.any()


def test_train_eval_and_astype(rng):
    m = snnlite.models.cifarnet_small().astype(np.float64)
    assert all(p.data.dtype == np.float64 for p in m.parameters())
    assert m[1].running_mean.dtype == np.float64
    assert m[1].num_batches_tracked.dtype == np.int64
    x = snnlite.encoding.direct(rng.random((2, 3, 32, 32)), 2)
    m.eval()
    y1 = m.forward(x)
    assert y1.dtype == np.float64 and m[1].num_batches_tracked == 0
    np.testing.assert_array_equal(y1, m.forward(x))  # eval is deterministic, stateless
    with pytest.raises(RuntimeError, match="training mode"):
        m.backward(np.ones_like(y1))
    m.train()
    m.forward(x)
    assert m[1].num_batches_tracked == 1


def test_forward_has_no_hidden_state(rng):
    m = snnlite.models.cifarnet_small()
    x = snnlite.encoding.direct(rng.random((2, 3, 32, 32)).astype(np.float32), 3)
    m.eval()
    y1 = m.forward(x)
    m.forward(snnlite.encoding.direct(np.ones((2, 3, 32, 32), np.float32), 3))
    np.testing.assert_array_equal(m.forward(x), y1)


def test_time_broadcast_equals_materialised_input(rng):
    """Direct coding computes the first conv/BN once; results and gradients must equal the
    same network fed T explicit copies."""
    m1 = snnlite.models.cifarnet_small(seed=3, dtype=np.float64)
    m2 = snnlite.models.cifarnet_small(seed=3, dtype=np.float64)
    img = rng.random((2, 3, 32, 32))
    xb = snnlite.encoding.direct(img, 3)
    y1, y2 = m1.forward(xb), m2.forward(np.ascontiguousarray(xb))
    np.testing.assert_allclose(y1, y2, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y1.shape)
    m1.requires_input_grad = m2.requires_input_grad = True
    dx1, dx2 = m1.backward(g), m2.backward(g)
    assert dx1.shape == (1, 2, 3, 32, 32)  # the gradient of the un-broadcast image
    np.testing.assert_allclose(dx1[0], dx2.sum(0), rtol=1e-9, atol=1e-12)
    for (n, p1), (_, p2) in zip(m1.named_parameters(), m2.named_parameters()):
        np.testing.assert_allclose(p1.grad, p2.grad, rtol=1e-9, atol=1e-12, err_msg=n)
    for k, v in m1.state_dict().items():
        np.testing.assert_allclose(v, m2.state_dict()[k], rtol=1e-12, err_msg=k)


READ_ONLY_PROBE = """
import types
import numba
import numpy as np
import snnlite
from snnlite import kernels
m = snnlite.models.cifarnet_small(seed=0)
x = snnlite.encoding.direct(np.random.default_rng(0).random((2, 3, 32, 32), np.float32), 2)
m.backward(np.ones_like(m.forward(x)))
m.eval()
m.forward(x)
sigs = [(mod.__name__, name, sig) for mod in vars(kernels).values()
        if isinstance(mod, types.ModuleType)
        for name, f in vars(mod).items() if isinstance(f, numba.core.registry.CPUDispatcher)
        for sig in f.signatures]
assert len(sigs) > 10, sigs
bad = [w for w in sigs if any(isinstance(a, numba.types.Array) and not a.mutable for a in w[2])]
assert not bad, bad
"""


def test_kernels_never_see_read_only_arrays():
    """A time-broadcast input (direct coding) is a read-only view; handing it to a kernel
    would compile that kernel a second time, for read-only arrays (seconds of JIT each). A
    training and an eval step with direct coding, in a fresh process, leave no read-only
    signature."""
    p = subprocess.run([sys.executable, "-c", READ_ONLY_PROBE], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]


def test_stateless_stack_gradcheck(rng):
    """conv -> BN -> avgpool -> flatten -> linear -> time mean, float64 finite differences
    through the module system (time folded into the batch, broadcast input)."""
    net = nn.Sequential(nn.Conv2d(2, 3, 3, 2, 1, rng=rng, dtype=np.float64),
                        nn.BatchNorm2d(3, dtype=np.float64), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(12, 4, rng=rng, dtype=np.float64),
                        nn.TimeMean())
    x = rng.standard_normal((3, 2, 2, 8, 8))
    g = rng.standard_normal((2, 4))
    params = net.parameters()

    def f(x, *ws):
        saved = [p.data for p in params]
        for p, w in zip(params, ws):
            p.data = w
        try:
            return float((net.forward(x) * g).sum())
        finally:
            for p, w in zip(params, saved):
                p.data = w

    net.zero_grad()
    net.forward(x)
    dx = net.backward(g)
    directional_check(f, [x] + [p.data.copy() for p in params], [dx] + [p.grad for p in params],
                      rng, names=["x"] + [n for n, _ in net.named_parameters()])


def test_basic_block_names_and_gradient_paths(rng):
    blk = nn.BasicBlock(4, 8, stride=2, rng=rng, dtype=np.float64)
    names = list(blk.state_dict())
    assert names[:2] == ["conv1.weight", "bn1.weight"]
    assert "downsample.0.weight" in names and "downsample.1.running_var" in names
    assert nn.BasicBlock(8, 8, rng=rng).downsample is None
    x = (rng.random((3, 2, 4, 8, 8)) < 0.3).astype(np.float64)
    y = blk.forward(x)
    assert y.shape == (3, 2, 8, 4, 4) and set(np.unique(y)) <= {0.0, 1.0}
    dx = blk.backward(rng.standard_normal(y.shape))
    assert dx.shape == x.shape and np.isfinite(dx).all()
    assert all(np.abs(p.grad).sum() > 0 for p in blk.parameters())


def test_lif_module_stream_equals_forward(rng):
    lif = nn.LIF()
    x = rng.standard_normal((6, 2, 5)).astype(np.float32) + 0.8
    s = lif.forward(x)
    s1, v = lif.stream(x[:4])
    s2, v = lif.stream(x[4:], v)
    np.testing.assert_array_equal(np.concatenate([s1, s2]), s)
    assert v.shape == (2, 5)
    with pytest.raises(ValueError, match="tau"):
        nn.LIF(tau=1.0)


def test_bad_input_is_named(rng):
    m = snnlite.models.cifarnet_small()
    with pytest.raises(ValueError, match=r"rank 5"):
        m.forward(np.zeros((2, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="input channels"):
        m.forward(np.zeros((2, 2, 1, 32, 32), np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        m.forward(np.zeros((2, 2, 3, 32, 32), np.uint8))
    with pytest.raises(TypeError, match="not a Module"):
        nn.Sequential(nn.LIF(), "relu")


def test_resnet_depths():
    from snnlite.models.resnet import blocks_per_stage
    assert [blocks_per_stage(d) for d in (8, 20, 16, 10, 32)] == [1, 3, 2, 1, 5]
    with pytest.raises(ValueError, match="6n"):
        blocks_per_stage(17)
    m = snnlite.models.build("wrn16_4")
    assert len(m.layer1) == 2 and m.fc.in_features == 256
