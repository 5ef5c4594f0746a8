"""Losses on logits ``[B, K]``. Each returns ``(loss, grad_wrt_logits)``, batch-mean, float64
maths, the gradient in the logits' dtype.

Distillation follows D2E: ``skd_loss = alpha * CE(student, y) + (1 - alpha) * K^2 *
KL(softmax(teacher / K) || softmax(student / K))``; the teacher is a constant (no gradient).
The divergence terms are exchangeable for the ablations (reverse KL, MSE on softmax).

Non-finite logits raise :class:`DivergenceError`, which training loops catch by type.
"""
import numpy as np


class DivergenceError(FloatingPointError, ValueError):
    """Logits (or a loss) that are NaN or infinite: in training, the model has diverged.

    A :class:`FloatingPointError` by kind, and still a :class:`ValueError` (what a loss
    raised for such input before this class existed), so that either ``except`` catches it.
    """


def _check_logits(name, z, B=None):
    if not isinstance(z, np.ndarray) or z.dtype.type not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected a float32/float64 array, got "
                        f"{getattr(z, 'dtype', type(z).__name__)}")
    if z.ndim != 2 or (B is not None and z.shape[0] != B):
        raise ValueError(f"{name}: expected shape [{B if B is not None else 'B'}, K], "
                         f"got {z.shape}")
    if not np.isfinite(z).all():
        raise DivergenceError(f"{name}: contains NaN or infinity")


def _check_labels(labels, logits):
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected integer shape ({logits.shape[0]},), got "
                         f"{labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels: expected values in [0, {logits.shape[1]}), got "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def log_softmax(z):
    z = z.astype(np.float64)
    z = z - z.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def softmax(z):
    return np.exp(log_softmax(z))


def cross_entropy(logits, labels):
    """Mean cross-entropy of integer ``labels`` [B] under ``logits`` [B, K]."""
    _check_logits("logits", logits)
    labels = _check_labels(labels, logits)
    B = logits.shape[0]
    lp = log_softmax(logits)
    loss = -lp[np.arange(B), labels].mean()
    grad = np.exp(lp)
    grad[np.arange(B), labels] -= 1
    return float(loss), (grad / B).astype(logits.dtype)


def kl_forward(student, teacher, temperature=1.0):
    """K^2 * mean_b KL(p_t || p_s), p = softmax(z / K): the D2E distillation term."""
    K = float(temperature)
    ls, lt = log_softmax(student / K), log_softmax(teacher / K)
    pt, ps = np.exp(lt), np.exp(ls)
    B = student.shape[0]
    loss = (pt * (lt - ls)).sum(1).mean() * K * K
    grad = (ps - pt) * K / B
    return float(loss), grad


def kl_reverse(student, teacher, temperature=1.0):
    """K^2 * mean_b KL(p_s || p_t) (ablation)."""
    K = float(temperature)
    ls, lt = log_softmax(student / K), log_softmax(teacher / K)
    ps = np.exp(ls)
    B = student.shape[0]
    d = ls - lt
    kl = (ps * d).sum(1, keepdims=True)
    loss = kl.mean() * K * K
    grad = ps * (d - kl) * K / B
    return float(loss), grad


def mse_softmax(student, teacher, temperature=1.0):
    """K^2 * mean_b sum_k (p_s - p_t)^2 (ablation)."""
    K = float(temperature)
    ps, pt = softmax(student / K), softmax(teacher / K)
    B = student.shape[0]
    diff = ps - pt
    loss = (diff * diff).sum(1).mean() * K * K
    g = 2 * diff  # d loss / d p_s per sample, then through the softmax Jacobian
    grad = ps * (g - (g * ps).sum(1, keepdims=True)) * K / B
    return float(loss), grad


DIVERGENCES = {"kl": kl_forward, "reverse_kl": kl_reverse, "mse": mse_softmax}


def distillation_loss(student_logits, teacher_logits, labels, alpha=0.4, temperature=4.0,
                      divergence="kl"):
    """``alpha * CE(student, labels) + (1 - alpha) * divergence(student, teacher)``."""
    _check_logits("student_logits", student_logits)
    _check_logits("teacher_logits", teacher_logits, student_logits.shape[0])
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher_logits: expected shape {student_logits.shape}, "
                         f"got {teacher_logits.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected > 0, got {temperature}")
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence: expected one of {sorted(DIVERGENCES)}, got {divergence!r}")
    ce, gce = cross_entropy(student_logits, labels)
    div, gdiv = DIVERGENCES[divergence](student_logits, teacher_logits, temperature)
    loss = alpha * ce + (1 - alpha) * div
    grad = alpha * gce.astype(np.float64) + (1 - alpha) * gdiv
    return float(loss), grad.astype(student_logits.dtype)


def skd_loss(student_logits, teacher_logits, labels, alpha=0.4, temperature=4.0):
    """D2E self-knowledge distillation: forward KL with temperature (see module doc)."""
    return distillation_loss(student_logits, teacher_logits, labels, alpha, temperature, "kl")
