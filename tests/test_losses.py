"""Losses against plain formulas and float64 finite differences."""
import naive
import numpy as np
import pytest
from gradcheck import directional_check

from snnlite import losses


def test_cross_entropy_matches_formula_and_gradcheck(rng):
    z, y = rng.standard_normal((5, 4)) * 3, np.array([0, 3, 1, 1, 2])
    loss, g = losses.cross_entropy(z, y)
    assert loss == pytest.approx(naive.cross_entropy(z, y), rel=1e-13)
    directional_check(lambda z: losses.cross_entropy(z, y)[0], [z], [g], rng)
    assert losses.cross_entropy(z.astype(np.float32), y)[1].dtype == np.float32


def test_cross_entropy_is_stable_for_large_logits():
    loss, g = losses.cross_entropy(np.array([[1000.0, 0.0]]), np.array([1]))
    assert loss == pytest.approx(1000.0) and np.isfinite(g).all()


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("divergence", ["kl", "reverse_kl", "mse"])
def test_divergences_match_formulas_and_gradcheck(rng, temperature, divergence):
    s, t = rng.standard_normal((4, 6)) * 2, rng.standard_normal((4, 6)) * 2
    loss, g = losses.DIVERGENCES[divergence](s, t, temperature)
    ps, pt = naive.softmax(s / temperature), naive.softmax(t / temperature)
    ref = {"kl": naive.kl(pt, ps), "reverse_kl": naive.kl(ps, pt),
           "mse": ((ps - pt) ** 2).sum(1).mean()}[divergence] * temperature ** 2
    assert loss == pytest.approx(ref, rel=1e-12)
    directional_check(lambda s: losses.DIVERGENCES[divergence](s, t, temperature)[0], [s], [g],
                      rng)


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_skd_loss_mixes_and_reduces_to_pure_terms(rng, temperature):
    s, t = rng.standard_normal((4, 6)), rng.standard_normal((4, 6))
    y = np.array([1, 0, 5, 2])
    ce, gce = losses.cross_entropy(s, y)
    kl, gkl = losses.kl_forward(s, t, temperature)
    l1, g1 = losses.skd_loss(s, t, y, alpha=1.0, temperature=temperature)
    l0, g0 = losses.skd_loss(s, t, y, alpha=0.0, temperature=temperature)
    assert l1 == pytest.approx(ce) and np.allclose(g1, gce)
    assert l0 == pytest.approx(kl) and np.allclose(g0, gkl)
    l, g = losses.skd_loss(s, t, y, temperature=temperature)
    assert l == pytest.approx(0.4 * ce + 0.6 * kl, rel=1e-13)
    directional_check(lambda s: losses.skd_loss(s, t, y, 0.4, temperature)[0], [s], [g], rng)


def test_kl_is_zero_for_identical_logits(rng):
    z = rng.standard_normal((3, 5))
    loss, g = losses.kl_forward(z, z.copy(), 4.0)
    assert abs(loss) < 1e-14 and np.abs(g).max() < 1e-14


def test_bad_input():
    z = np.zeros((2, 3))
    with pytest.raises(ValueError, match="labels"):
        losses.cross_entropy(z, np.array([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        losses.cross_entropy(z, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        losses.cross_entropy(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match="teacher_logits"):
        losses.skd_loss(z, np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="alpha"):
        losses.skd_loss(z, z, np.array([0, 1]), alpha=1.5)
    with pytest.raises(ValueError, match="divergence"):
        losses.distillation_loss(z, z, np.array([0, 1]), divergence="js")
