"""Finite-difference gradient check in float64, Chainer style: one central difference along
a random unit direction per input, compared with the analytic directional derivative."""
import numpy as np


def directional_check(f, inputs, grads, rng, eps=1e-6, rtol=1e-6, atol=1e-8, names=None):
    """Check that ``grads`` are the gradients of the scalar ``f(*inputs)``.

    ``inputs`` and ``grads`` are lists of float64 arrays of equal shapes; ``f`` must not
    modify its inputs. Fails with numeric vs analytic values side by side.
    """
    names = names or [f"input {i}" for i in range(len(inputs))]
    for k, (x, g) in enumerate(zip(inputs, grads)):
        assert x.dtype == np.float64, f"{names[k]}: gradient checks run in float64"
        d = rng.standard_normal(x.shape)
        d /= np.linalg.norm(d) or 1.0
        plus = [a.copy() for a in inputs]
        minus = [a.copy() for a in inputs]
        plus[k] += eps * d
        minus[k] -= eps * d
        numeric = (f(*plus) - f(*minus)) / (2 * eps)
        analytic = float((g * d).sum())
        assert abs(numeric - analytic) <= atol + rtol * max(abs(numeric), abs(analytic)), (
            f"{names[k]}: numeric {numeric!r} vs analytic {analytic!r} "
            f"(difference {numeric - analytic:.3e})")
