"""Encoders: exact firing times, ties, shapes and errors."""
import numpy as np
import pytest

from snnlite import encoding


def test_direct_is_a_broadcast_view(rng):
    x = rng.random((2, 3, 4, 4)).astype(np.float32)
    d = encoding.direct(x, 5)
    assert d.shape == (5, 2, 3, 4, 4) and d.strides[0] == 0
    np.testing.assert_array_equal(d[3], x)


def test_ttfs_formula_and_ties():
    T = 4  # thresholds 1, 0.75, 0.5, 0.25; x fires at the first t with x > thr[t]
    x = np.array([0.0, 0.25, 0.2500001, 0.5, 0.74, 0.75, 0.76, 1.0]).reshape(1, 1, 1, 8)
    t = encoding.ttfs_times(x, T).ravel()
    np.testing.assert_array_equal(t, [-1, -1, 3, 3, 2, 2, 1, 1])
    ref = [int(np.floor(T * (1 - v))) + 1 if v > 1 / T else -1 for v in x.ravel()]
    np.testing.assert_array_equal(t, ref)
    s = encoding.ttfs(x.astype(np.float32), T)
    assert s.dtype == np.float32 and s.shape == (T, 1, 1, 1, 8)
    assert not s[0].any()  # step 0 stays empty
    assert s.sum(0).max() == 1  # at most one spike per element


def test_ttfs_random_against_formula(rng):
    x = rng.random((3, 3, 5, 5))
    for T in (1, 3, 8):
        t = encoding.ttfs_times(x, T)
        ref = np.where(x > 1 / T, np.floor(T * (1 - x)) + 1, -1)
        np.testing.assert_array_equal(t, ref)


def test_latency_formula(rng):
    x = rng.random((2, 3, 4, 4))
    T = 8
    s = encoding.latency(x, T)
    np.testing.assert_array_equal(s.sum(0), 1)  # every element fires exactly once
    np.testing.assert_array_equal(s.argmax(0), np.round((T - 1) * (1 - x)))
    edge = encoding.latency(np.array([0.0, 1.0]).reshape(1, 1, 1, 2), T)
    assert edge[T - 1, 0, 0, 0, 0] == 1 and edge[0, 0, 0, 0, 1] == 1


def test_encode_by_name_and_errors():
    x = np.full((1, 1, 2, 2), 0.5)
    assert encoding.encode("ttfs", x, 2).shape == (2, 1, 1, 2, 2)
    with pytest.raises(ValueError, match="one of"):
        encoding.encode("rate", x, 2)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encoding.ttfs(x * 3, 4)
    with pytest.raises(ValueError, match="B, C, H, W"):
        encoding.ttfs(np.zeros((2, 2)), 4)
    with pytest.raises(ValueError, match="positive integer"):
        encoding.direct(x, 0)
    with pytest.raises(ValueError, match="NaN"):
        encoding.direct(np.full((1, 1, 1, 1), np.nan), 2)
    with pytest.raises(TypeError, match="float32"):
        encoding.ttfs(np.zeros((1, 1, 1, 1), np.uint8), 2)
