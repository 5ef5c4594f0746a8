"""SGD and the learning-rate schedule."""
import math

import numpy as np
import pytest

from snnlite import optim
from snnlite.nn import Parameter


def test_sgd_nesterov_matches_pytorch_recurrence(rng):
    w0 = rng.standard_normal(5)
    p, q = Parameter(w0.copy()), Parameter(np.ones(3), decay=False)
    opt = optim.SGD([p, q], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    w, buf = w0.copy(), None
    for step in range(3):
        g = rng.standard_normal(5)
        p.grad[:] = g
        q.grad[:] = 1.0
        opt.step()
        d = g + 0.01 * w
        buf = d.copy() if buf is None else 0.9 * buf + d
        w = w - 0.1 * (d + 0.9 * buf)
        np.testing.assert_allclose(p.data, w, rtol=1e-14)
    # no decay on q: plain Nesterov on a constant gradient of 1
    assert q.data[0] == pytest.approx(1 - 0.1 * (1.9 + 2.71 + 3.439))


def test_sgd_state_round_trip(rng):
    p = Parameter(rng.standard_normal(4))
    opt = optim.SGD([p], lr=0.1)
    p.grad[:] = 1
    opt.step()
    state = opt.state_dict()
    other = optim.SGD([Parameter(p.data.copy())], lr=0.5)
    other.load_state_dict(state)
    assert other.lr == 0.1 and np.array_equal(other.momenta[0], opt.momenta[0])
    with pytest.raises(ValueError, match="momenta"):
        other.load_state_dict({"lr": 0.1, "momenta": []})


def test_cosine_warmup_shape():
    lr = 0.1
    f = [optim.cosine_warmup(s, 100, lr, warmup_steps=10) for s in range(101)]
    assert f[0] == pytest.approx(lr / 10)
    assert f[5] == pytest.approx(lr / 10 + (lr - lr / 10) * 0.5)
    assert f[10] == pytest.approx(lr)
    assert f[55] == pytest.approx(lr * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert f[100] == pytest.approx(0.0, abs=1e-15)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert optim.cosine_warmup(100, 100, lr, floor=0.01) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        optim.cosine_warmup(0, 10, lr, warmup_steps=11)


def test_sgd_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        optim.SGD([Parameter(np.ones(1))], lr=-1)
