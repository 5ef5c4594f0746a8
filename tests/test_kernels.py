"""Every kernel against its plain-loop reference, and its backward against finite
differences in float64. Parallel kernels are run at 1 and at all threads."""
import naive
import numpy as np
import pytest
from gradcheck import directional_check

from snnlite import _pool
from snnlite.nn import functional as F

CONV_CASES = [  # N, C, H, W, O, k, stride, pad
    (2, 3, 7, 6, 4, 3, 1, 1),
    (2, 3, 9, 9, 5, 3, 2, 1),
    (1, 2, 8, 8, 3, 3, 2, 0),
    (3, 4, 5, 5, 2, 1, 1, 0),
    (1, 1, 4, 4, 2, 3, 1, 0),
    (3, 3, 6, 8, 5, 3, 1, 1),  # even 3x3 stride-1 'same': Winograd input gradient
    (1, 2, 2, 2, 3, 3, 1, 1),  # ... a single tile
]


def _spiky(rng, shape, density):
    return (rng.random(shape) < density) * rng.random(shape)


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("sparse_below", [0.0, 1.1], ids=["gemm", "event"])
def test_conv2d_matches_reference(rng, case, sparse_below):
    N, C, H, W, O, k, s, p = case
    x = _spiky(rng, (N, C, H, W), 0.4)
    w = rng.standard_normal((O, C, k, k))
    b = rng.standard_normal(O)
    y = F.conv2d_forward(x, w, b, s, p, sparse_below)
    np.testing.assert_allclose(y, naive.conv2d(x, w, b, s, p), rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx, dw = F.conv2d_backward(dy, x, w, s, p, sparse_below=sparse_below)
    rdx, rdw = naive.conv2d_backward(dy, x, w, s, p)
    np.testing.assert_allclose(dx, rdx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, rdw, rtol=1e-12, atol=1e-12)


def _conv_gradcheck(rng, x_shape, out_channels, stride, pad):
    """Float64 directional finite-difference check of conv2d's input and weight gradients."""
    x = rng.standard_normal(x_shape)
    w = rng.standard_normal((out_channels, x_shape[1], 3, 3))
    g = rng.standard_normal(F.conv2d_forward(x, w, None, stride, pad).shape)

    def f(x, w):
        return float((F.conv2d_forward(x, w, None, stride, pad) * g).sum())

    dx, dw = F.conv2d_backward(g, x, w, stride, pad)
    directional_check(f, [x, w], [dx, dw], rng, names=["x", "weight"])


def test_conv2d_gradcheck(rng):
    _conv_gradcheck(rng, (2, 3, 6, 6), 4, 2, 1)


def test_conv2d_winograd_gradcheck_and_agreement(rng):
    """The Winograd input gradient (3x3, stride 1, padding 1, even sizes) passes a float64
    finite-difference check and agrees with im2col in float32 to rounding."""
    from snnlite.kernels import winograd
    assert winograd.usable(3, 3, 1, 1, 8, 6) and not winograd.usable(3, 3, 1, 1, 7, 6)
    assert not winograd.usable(3, 3, 2, 1, 8, 8) and not winograd.usable(1, 1, 1, 0, 8, 8)
    _conv_gradcheck(rng, (3, 4, 8, 6), 5, 1, 1)
    for N in (1, 2, 5):  # an odd count leaves a partial group of images
        x32 = rng.standard_normal((N, 16, 4, 4)).astype(np.float32)
        w32 = rng.standard_normal((8, 16, 3, 3)).astype(np.float32)
        g32 = rng.standard_normal((N, 8, 4, 4)).astype(np.float32)
        wino, _ = F.conv2d_backward(g32, x32, w32, 1, 1, need_dw=False)
        ref, _ = F.conv2d_backward(g32, x32, w32, 1, 1, need_dw=False, winograd=False)
        assert wino.dtype == np.float32
        np.testing.assert_allclose(wino, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


@pytest.mark.parametrize("threads", [1, 3])
def test_conv2d_event_winograd_and_im2col_paths_agree(rng, threads, monkeypatch):
    """Every path of the forward pass and the weight gradient gives the plain-loop result:
    event lists, Winograd (grouped as for BLAS libraries with small-matrix kernels, with a
    partial last group) and im2col, on a batch whose images split between the event and
    the dense path, with output channels that are no multiple of the register block (narrow
    and wide) and channels with few and with many events (the two event weight-gradient loops)."""
    from snnlite import _blas
    from snnlite.kernels import conv_event, winograd
    monkeypatch.setattr(_blas, "small_gemm_limit", lambda: 3e4)
    assert winograd.group_size(16, 20, 6, 6, 3e4) * 16 * 20 * 12 > 3e4
    old = _pool.get_num_threads()
    _pool.set_num_threads(threads)
    try:
        for N, C, H, W, O, s, p in [(5, 16, 6, 8, 2 * conv_event.OB + 3, 1, 1),
                                    (3, 16, 7, 6, 20, 2, 1), (3, 4, 6, 6, 5, 1, 0),
                                    (2, 8, 6, 6, 16, 1, 1), (2, 8, 6, 6, 17, 1, 1)]:
            x = np.concatenate([_spiky(rng, (1, C, H, W), d) for d in (0.05, 0.7) * N][:N])
            w = rng.standard_normal((O, C, 3, 3))
            ry = naive.conv2d(x, w, None, s, p)
            g = rng.standard_normal(ry.shape)
            _, rdw = naive.conv2d_backward(g, x, w, s, p)
            for sparse_below in (0.0, 0.3, 1.1):
                for wino in (True, False):
                    y = F.conv2d_forward(x, w, None, s, p, sparse_below, winograd=wino)
                    np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-12)
                    _, dw = F.conv2d_backward(g, x, w, s, p, need_dx=False,
                                              sparse_below=sparse_below, winograd=wino)
                    np.testing.assert_allclose(dw, rdw, rtol=1e-12, atol=1e-12)
    finally:
        _pool.set_num_threads(old)


def test_conv2d_event_and_winograd_gradcheck(rng):
    """Float64 finite differences through the event path (spiky input) and through the
    Winograd forward, input and weight gradients (16 channels: Winograd is worth it)."""
    x = _spiky(rng, (2, 3, 6, 6), 0.3)
    w = rng.standard_normal((4, 3, 3, 3))
    g = rng.standard_normal((2, 4, 6, 6))
    dx, dw = F.conv2d_backward(g, x, w, 1, 1, sparse_below=1.1)
    directional_check(lambda x, w: float((F.conv2d_forward(x, w, None, 1, 1, 1.1) * g).sum()),
                      [x, w], [dx, dw], rng, names=["x", "weight"])
    x = rng.standard_normal((2, 16, 6, 8))
    w = rng.standard_normal((16, 16, 3, 3))
    g = rng.standard_normal((2, 16, 6, 8))
    dx, dw = F.conv2d_backward(g, x, w, 1, 1, sparse_below=0.0)
    directional_check(lambda x, w: float((F.conv2d_forward(x, w, None, 1, 1, 0.0) * g).sum()),
                      [x, w], [dx, dw], rng, names=["x", "weight"])


def test_blas_small_kernel_limit_follows_the_core(monkeypatch):
    """OpenBLAS's AVX-512 cores (which AMD Zen 4/5 run) multiply M*N*K <= 1e6 unpacked."""
    from snnlite import _blas
    assert all(isinstance(c, str) and c for c in _blas.blas_cores())
    for cores, limit in [(["Haswell"], 0), (["Zen"], 0), (["Haswell", "SkylakeX"], 1e6),
                         (["Cooperlake"], 1e6), (["SapphireRapids"], 1e6), ([], 0)]:
        monkeypatch.setattr(_blas, "blas_cores", lambda cores=cores: cores)
        assert _blas.small_gemm_limit() == limit, cores


def test_vector_width_follows_the_cpu_llvm_compiles_for(monkeypatch):
    """Register blocks are sized for 512-bit vectors only where LLVM emits them: AVX-512 on
    AMD Zen (its Intel models prefer 256-bit vectors)."""
    import numba

    from snnlite import _config
    avx512 = "+avx,+avx2,+fma,+avx512f,+avx512bw"
    for name, features, bits in [("znver5", avx512, 512), ("znver4", avx512, 512),
                                 ("skylake-avx512", avx512, 256),
                                 ("znver3", "+avx,+avx2,+fma,-avx512f", 256)]:
        monkeypatch.setattr(numba.config, "CPU_NAME", name)
        monkeypatch.setattr(numba.config, "CPU_FEATURES", features)
        assert _config._vector_bits() == bits, name


def test_conv2d_float32_and_all_zero_input(rng):
    x = np.zeros((2, 3, 5, 5), np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    y = F.conv2d_forward(x, w, None, 1, 1)
    assert y.dtype == np.float32 and not y.any()
    dx, dw = F.conv2d_backward(np.ones_like(y), x, w, 1, 1)
    assert dx.dtype == np.float32 and not dw.any()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_kernels_split_across_workers_equal_serial(rng, threads):
    """Every worker count gives the reference result (work split by images or rows)."""
    x = _spiky(rng, (5, 3, 8, 8), 0.1)
    w = rng.standard_normal((4, 3, 3, 3))
    old = _pool.get_num_threads()
    _pool.set_num_threads(threads)
    try:
        y = F.conv2d_forward(x, w, None, 1, 1)
        np.testing.assert_allclose(y, naive.conv2d(x, w, None, 1, 1), atol=1e-12)
        dx, dw = F.conv2d_backward(np.ones_like(y), x, w, 1, 1)
        rdx, rdw = naive.conv2d_backward(np.ones_like(y), x, w, 1, 1)
        np.testing.assert_allclose(dw, rdw, atol=1e-12)
        np.testing.assert_allclose(dx, rdx, atol=1e-12)
        xc = rng.standard_normal((7, 3, 5))
        np.testing.assert_allclose(F.batch_norm_train(xc, np.ones(3), np.zeros(3), 1e-5)[0],
                                   naive.batch_norm_train(xc, np.ones(3), np.zeros(3))[0],
                                   atol=1e-12)
        xs = rng.standard_normal((4, 37)) + 0.8
        np.testing.assert_array_equal(F.lif_forward(xs)[0], naive.lif(xs)[0])
    finally:
        _pool.set_num_threads(old)


def test_conv2d_bad_input(rng):
    w = np.zeros((4, 3, 3, 3))
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d_forward(np.zeros((1, 2, 5, 5)), w)
    with pytest.raises(TypeError, match="float32 or float64"):
        F.conv2d_forward(np.zeros((1, 3, 5, 5), np.int32), w)
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d_forward(np.zeros((1, 3, 5, 5), np.float32), w)
    with pytest.raises(ValueError, match="too small"):
        F.conv2d_forward(np.zeros((1, 3, 2, 2)), w)


def test_batch_norm_matches_reference_and_gradcheck(rng):
    x = rng.standard_normal((4, 3, 5)) * 2 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y, mean, var, rstd = F.batch_norm_train(x, gamma, beta, 1e-5)
    ry, rmean, rvar = naive.batch_norm_train(x, gamma, beta)
    np.testing.assert_allclose(y, ry, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(mean, rmean, rtol=1e-12)
    np.testing.assert_allclose(var, rvar, rtol=1e-12)
    g = rng.standard_normal(x.shape)
    dx, dgamma, dbeta = F.batch_norm_train_backward(g, x, gamma, mean, rstd)

    def f(x, gamma, beta):
        return float((F.batch_norm_train(x, gamma, beta, 1e-5)[0] * g).sum())

    directional_check(f, [x, gamma, beta], [dx, dgamma, dbeta], rng,
                      names=["x", "gamma", "beta"])


def test_batch_norm_eval_uses_running_stats(rng):
    x = rng.standard_normal((2, 3, 4))
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    y = F.batch_norm_eval(x, np.ones(3), np.zeros(3), rm, rv, 1e-5)
    np.testing.assert_allclose(y, (x - rm[:, None]) / np.sqrt(rv[:, None] + 1e-5), rtol=1e-12)


LIF_CASES = [dict(decay_input=d, v_reset=r) for d in (True, False) for r in (0.0, None, -0.5)]


@pytest.mark.parametrize("kw", LIF_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lif_forward_matches_reference(rng, kw, dtype):
    x = (rng.standard_normal((7, 300)) * 1.5 + 0.8).astype(dtype)
    s, h, v = F.lif_forward(x, 2.0, 1.0, kw["v_reset"], kw["decay_input"])
    rs, rh, rv = naive.lif(x.astype(np.float64), 2.0, 1.0, kw["v_reset"], kw["decay_input"])
    tol = 0 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(h, rh, rtol=tol, atol=tol)
    agree = (s == rs)  # float32 may flip a spike within rounding of the threshold
    assert agree.all() if dtype == np.float64 else agree.mean() > 0.999
    if dtype == np.float64:
        np.testing.assert_array_equal(v, rv[-1])
    assert s.dtype == dtype and set(np.unique(s)) <= {0, 1}


@pytest.mark.parametrize("tau", [2.0, 4.0, 0.5, 3.0, 1.7])
def test_lif_float32_is_bit_exact_for_any_tau(rng, tau):
    """A power-of-two tau divides by multiplying with its exact reciprocal; any other tau
    divides. Either way float32 results equal IEEE float32 arithmetic done step by step."""
    x = (rng.standard_normal((6, 500)) * 1.5 + 0.8).astype(np.float32)
    s, h, _ = F.lif_forward(x, tau, 1.0, 0.0, True)
    t32, one = np.float32(tau), np.float32(1)
    v = np.zeros(500, np.float32)
    for t in range(6):
        ref_h = v + (x[t] - v) / t32
        np.testing.assert_array_equal(h[t], ref_h)
        v = np.where(ref_h >= one, np.float32(0), ref_h)
    ds = rng.standard_normal(h.shape).astype(np.float32)
    dx = F.lif_backward(ds, h, tau, 1.0, 0.0, True, True, 2.0)
    carry = np.zeros(500, np.float32)
    for t in reversed(range(6)):
        z = (h[t] - one) * np.float32(np.pi / 2 * 2.0)
        sg = np.float32(1.0) / (one + z * z)
        gh = ds[t] * sg + carry * np.where(h[t] >= one, np.float32(0), one)
        np.testing.assert_array_equal(dx[t], gh / t32)
        carry = gh - gh / t32


@pytest.mark.parametrize("kw", LIF_CASES)
@pytest.mark.parametrize("detach_reset", [False, True])
def test_lif_backward_matches_reference(rng, kw, detach_reset):
    """The Heaviside has no useful derivative, so BPTT is checked against the chain rule
    written out step by step (and against SpikingJelly in test_spikingjelly_golden)."""
    x = rng.standard_normal((6, 200)) * 1.5 + 0.8
    _, h, _ = F.lif_forward(x, 2.0, 1.0, kw["v_reset"], kw["decay_input"])
    ds = rng.standard_normal(h.shape)
    dx = F.lif_backward(ds, h, 2.0, 1.0, kw["v_reset"], kw["decay_input"], detach_reset, 2.0)
    ref = naive.lif_backward(ds, h, 2.0, 1.0, kw["v_reset"], kw["decay_input"], detach_reset)
    np.testing.assert_allclose(dx, ref, rtol=1e-12, atol=1e-14)


def test_lif_golden_trajectory_with_reset_and_tie():
    """Hand-computed: tau=2, v_th=1, hard reset to 0, decay_input.
    t0: h = 0 + (1.2 - 0)/2 = 0.6          -> no spike, v = 0.6
    t1: h = 0.6 + (1.4 - 0.6)/2 = 1.0      -> tie spikes, v = 0
    t2: h = 0 + (0.4 - 0)/2 = 0.2          -> v = 0.2
    t3: h = 0.2 + (3.0 - 0.2)/2 = 1.6      -> spike, v = 0
    t4: h = 0 + (-1.0 - 0)/2 = -0.5        -> v = -0.5
    """
    x = np.array([1.2, 1.4, 0.4, 3.0, -1.0])[:, None]
    s, h, v = F.lif_forward(x)
    np.testing.assert_allclose(h[:, 0], [0.6, 1.0, 0.2, 1.6, -0.5], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(s[:, 0], [0, 1, 0, 1, 0])
    assert v[0] == -0.5
    s32, _, _ = F.lif_forward(np.array([[2.0]], np.float32))  # h = 1.0 exactly: a tie spikes
    assert s32[0, 0] == 1


def test_lif_time_broadcast_and_initial_state(rng):
    x = rng.standard_normal((1, 50)) + 0.7
    s1, h1, v1 = F.lif_forward(x, T=5)
    s2, h2, v2 = F.lif_forward(np.repeat(x, 5, 0))
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(v1, v2)
    # streaming: two halves with the membrane passed along equal one run
    xs = rng.standard_normal((6, 40)) + 0.7
    sa, _, va = F.lif_forward(xs[:2])
    sb, _, vb = F.lif_forward(xs[2:], v0=va)
    s, _, v = F.lif_forward(xs)
    np.testing.assert_array_equal(np.concatenate([sa, sb]), s)
    np.testing.assert_array_equal(vb, v)


def test_lif_all_spiking_and_silent():
    s, _, _ = F.lif_forward(np.full((4, 10), 5.0))
    assert s.all()
    s, _, _ = F.lif_forward(np.zeros((4, 10)))
    assert not s.any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tau", [2.0, 3.0])
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard", "soft"])
@pytest.mark.parametrize("decay_input", [True, False])
def test_lif_three_paths_are_bit_identical(rng, dtype, tau, v_reset, decay_input):
    """The LIF kernel, the fused BN -> LIF kernel with an identity BN, and the event
    engine's lif_fire share one inlined step: equal spikes and membranes, bit for bit,
    ties h == v_th included."""
    from snnlite.kernels import event as kev
    T, B, C, H, W = 6, 2, 3, 4, 8
    M = B * C * H * W
    # quarters are exact, so the charge hits v_th exactly now and then; the rest is random
    x = np.where(rng.random((T, M)) < 0.5, rng.integers(-4, 17, (T, M)) / 4,
                 rng.standard_normal((T, M)) * 1.5 + 0.8).astype(dtype)
    x[0, :4] = tau if decay_input else 1.0  # from rest: h = x / tau or x, exactly v_th
    dt = np.dtype(dtype).type
    vr = dt(0.0 if v_reset is None else v_reset)
    s, h, v = F.lif_forward(x, tau, 1.0, v_reset, decay_input)
    assert (h == 1).sum() >= 4 and s[0, :4].all()  # ties, and they fire
    one = np.ones(C)
    out, h_f, n = F.bn_lif_forward(x.reshape(T, B, C, H, W), 0 * one, one, one.astype(dtype),
                                   0 * one.astype(dtype), T, tau, 1.0, v_reset, decay_input,
                                   1, True)
    np.testing.assert_array_equal(out.reshape(T, M), s)
    np.testing.assert_array_equal(h_f.reshape(T, M), h)
    assert n == s.sum()
    ve = np.full(M, vr)
    idx, flags = np.zeros(M, np.int32), np.zeros(M + 8, np.uint8)
    for t in range(T):
        k = kev.lif_fire(idx, flags, ve, x[t], dt(tau), dt(1.0), vr, decay_input,
                         v_reset is not None)
        np.testing.assert_array_equal(idx[:k], np.flatnonzero(s[t]))
        v_t = np.where(s[t] == 1, vr if v_reset is not None else h[t] - dt(1.0), h[t])
        np.testing.assert_array_equal(ve, v_t)
    np.testing.assert_array_equal(ve, v)


@pytest.mark.parametrize("k", [2, 3])
def test_pooling_matches_reference_and_gradcheck(rng, k):
    x = rng.standard_normal((2, 3, 2 * k, 3 * k))
    np.testing.assert_allclose(F.avg_pool_forward(x, k), naive.avg_pool(x, k), rtol=1e-13)
    y, idx = F.max_pool_forward(x, k)
    ry, ridx = naive.max_pool(x, k)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    g = rng.standard_normal(y.shape)
    directional_check(lambda x: float((F.avg_pool_forward(x, k) * g).sum()), [x],
                      [F.avg_pool_backward(g, k)], rng)
    directional_check(lambda x: float((F.max_pool_forward(x, k)[0] * g).sum()), [x],
                      [F.max_pool_backward(g, idx, k)], rng)


def test_max_pool_ties_go_to_first_maximum():
    x = np.zeros((1, 1, 2, 2))  # all-zero window (silent spikes): PyTorch picks index 0
    y, idx = F.max_pool_forward(x, 2)
    assert idx[0, 0, 0, 0] == 0
    x = np.array([[[[0.0, 1.0], [1.0, 0.0]]]])
    y, idx = F.max_pool_forward(x, 2)
    assert idx[0, 0, 0, 0] == 1
    dx = F.max_pool_backward(np.ones((1, 1, 1, 1)), idx, 2)
    np.testing.assert_array_equal(dx[0, 0], [[0, 1], [0, 0]])


def test_pool_bad_size():
    with pytest.raises(ValueError, match="divisible"):
        F.avg_pool_forward(np.zeros((1, 1, 5, 4)), 2)


def test_linear_matches_reference_and_gradcheck(rng):
    x, w, b = rng.standard_normal((70, 6)), rng.standard_normal((4, 6)), rng.standard_normal(4)
    y = F.linear_forward(x, w, b)
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-13)
    g = rng.standard_normal(y.shape)
    dx, dw, db = F.linear_backward(g, x, w)

    def f(x, w, b):
        return float((F.linear_forward(x, w, b) * g).sum())

    directional_check(f, [x, w, b], [dx, dw, db], rng, names=["x", "weight", "bias"])


def test_kernel_cache_is_keyed_by_all_kernel_sources(tmp_path, monkeypatch):
    """A change to any kernel file (not just the caller's own) selects a fresh cache."""
    import shutil
    from pathlib import Path

    import snnlite
    from snnlite import _config
    src = Path(snnlite.__file__).parent
    root = tmp_path / "pkg"
    shutil.copytree(src / "kernels", root / "kernels",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(src / "_config.py", root / "_config.py")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    before = _config.kernel_cache_dir(root)
    assert before.startswith(str(tmp_path / "cache")) and before == _config.kernel_cache_dir(root)
    with open(root / "kernels" / "winograd.py", "a") as f:
        f.write("\n# edited\n")
    assert _config.kernel_cache_dir(root) != before
    from snnlite.kernels import conv
    path = getattr(getattr(conv.conv2d_backward, "_cache", None), "_cache_path", "")
    assert "kernels-" in path or not _config.CACHE  # the kernels do use that folder


_CACHE_PROBE = """
import json, sys
import numba
import numpy as np
from snnlite import _config
from snnlite.kernels import lif
from snnlite.nn import functional as F
F.lif_forward(np.ones((3, 10), np.float32))
st = lif.lif_forward.stats
print(json.dumps([numba.config.CACHE_DIR, _config.kernel_cache_dir(), st.cache_path,
                  len(st.cache_hits), len(st.cache_misses)]))
"""


def test_kernel_cache_lands_in_its_folder_and_a_second_process_loads_it(tmp_path):
    """A first LIF call compiles into kernel_cache_dir(), a second process loads it from
    there, SNNLITE_NO_CACHE=1 caches nothing; numba's own settings stay as they were."""
    import json
    import os
    import subprocess
    import sys

    def probe(**env):
        env = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
        out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, text=True,
                             capture_output=True, check=True).stdout
        return json.loads(out.splitlines()[-1])

    cache_dir, folder, path, hits, misses = probe(NUMBA_CACHE_DIR=str(tmp_path),
                                                  SNNLITE_NO_CACHE=None)
    assert cache_dir == str(tmp_path)  # numba's setting is the environment's, untouched
    assert path == folder and folder.startswith(str(tmp_path / "kernels-"))
    assert (hits, misses) == (0, 1)
    assert any(f.startswith("lif.lif_forward-") and f.endswith(".nbc")
               for f in os.listdir(folder))
    assert probe(NUMBA_CACHE_DIR=str(tmp_path), SNNLITE_NO_CACHE=None)[3:] == [1, 0]  # warm
    none = tmp_path / "none"
    assert probe(NUMBA_CACHE_DIR=str(none), SNNLITE_NO_CACHE="1")[2] is None
    assert not none.exists()


def test_kernel_cache_locator_claims_only_kernel_files():
    """Functions decorated outside snnlite/kernels keep numba's own cache locators, and
    numba's locator list is not modified."""
    from numba.core import caching

    from snnlite import _config
    from snnlite.kernels import lif

    if not _config.CACHE:
        pytest.skip("SNNLITE_NO_CACHE is set")
    assert type(lif.lif_forward._cache._impl.locator) is _config._KernelCacheLocator

    @_config.njit_exact
    def here(x):
        return x

    assert type(here._cache._impl.locator) is not _config._KernelCacheLocator
    assert _config._KernelCacheLocator not in caching.CompileResultCacheImpl._locator_classes
