"""SGD with Nesterov momentum and weight decay; learning-rate schedules as pure functions."""
import math

import numpy as np

from .losses import DivergenceError


class SGD:
    """PyTorch's SGD: ``g = grad + wd * p``; ``buf = momentum * buf + g`` (``buf = g`` on
    the first step); Nesterov: ``step = g + momentum * buf``; ``p -= lr * step``.

    Weight decay applies only to parameters with ``p.decay`` (by default not to biases or
    batch-norm parameters); ``decay_all=True`` applies it to every parameter, as plain
    PyTorch does.

    A gradient holding NaN or infinity stops :meth:`step` before any parameter changes,
    with a :class:`~snnlite.losses.DivergenceError` naming the parameters (``names``, in
    parameter order; default their positions). ``check_finite=False`` skips that check.
    """

    def __init__(self, params, lr, momentum=0.9, nesterov=True, weight_decay=5e-4,
                 decay_all=False, names=None, check_finite=True):
        self.params = list(params)
        if not self.params:
            raise ValueError("SGD: got an empty parameter list")
        if not all(math.isfinite(v) and v >= 0 for v in (lr, momentum, weight_decay)):
            raise ValueError(f"SGD: lr, momentum and weight_decay must be finite and >= 0, "
                             f"got {lr}, {momentum}, {weight_decay}")
        self.names = list(names) if names is not None else \
            [f"parameter {i}" for i in range(len(self.params))]
        if len(self.names) != len(self.params):
            raise ValueError(f"SGD: {len(self.names)} names for {len(self.params)} parameters")
        self.check_finite = check_finite
        if nesterov and momentum <= 0:
            raise ValueError("SGD: Nesterov momentum requires momentum > 0")
        self.lr, self.momentum, self.nesterov = lr, momentum, nesterov
        self.weight_decay, self.decay_all = weight_decay, decay_all
        self.momenta = [None] * len(self.params)

    def zero_grad(self):
        for p in self.params:
            p.grad[...] = 0

    def step(self):
        if self.check_finite:
            bad = [n for n, p in zip(self.names, self.params) if not _finite(p.grad)]
            if bad:
                shown = ", ".join(bad[:8]) + (f", ... ({len(bad)} in all)" if len(bad) > 8
                                              else "")
                raise DivergenceError(f"gradient holds NaN or infinity in {shown}; no "
                                      "parameter was updated")
        m = self.momentum
        for i, p in enumerate(self.params):
            g = p.grad
            if self.weight_decay and (p.decay or self.decay_all):
                g = g + self.weight_decay * p.data
            if m:
                buf = self.momenta[i]
                if buf is None:
                    buf = self.momenta[i] = g.copy()
                else:
                    buf *= m
                    buf += g
                g = g + m * buf if self.nesterov else buf
            p.data -= (self.lr * g).astype(p.data.dtype, copy=False)

    def state_dict(self):
        """{'lr': ..., 'momenta': [array or None, ...]} in parameter order."""
        return {"lr": self.lr, "momenta": [None if b is None else b.copy()
                                           for b in self.momenta]}

    def load_state_dict(self, state):
        momenta = state["momenta"]
        if len(momenta) != len(self.params):
            raise ValueError(f"SGD.load_state_dict: expected {len(self.params)} momenta, "
                             f"got {len(momenta)}")
        for p, b in zip(self.params, momenta):
            if b is not None and b.shape != p.data.shape:
                raise ValueError(f"SGD.load_state_dict: momentum shape {b.shape} does not "
                                 f"match parameter {p.data.shape}")
        self.lr = state["lr"]
        self.momenta = [None if b is None else np.array(b, p.data.dtype)
                        for p, b in zip(self.params, momenta)]


def _finite(a):
    # a float64 sum is finite iff every element is, unless it overflows: then look closer
    with np.errstate(over="ignore", invalid="ignore"):
        total = a.sum(dtype=np.float64)
    return math.isfinite(total) or bool(np.isfinite(a).all())


def cosine_warmup(step, total_steps, lr, warmup_steps=0, warmup_start=None, floor=0.0):
    """Learning rate at ``step`` (0-based): linear from ``warmup_start`` (default lr/10) to
    ``lr`` over ``warmup_steps``, then cosine from ``lr`` to ``floor`` at ``total_steps``."""
    if total_steps <= 0 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"cosine_warmup: need 0 <= warmup_steps ({warmup_steps}) <= "
                         f"total_steps ({total_steps}) and total_steps > 0")
    start = lr / 10 if warmup_start is None else warmup_start
    if step < warmup_steps:
        return start + (lr - start) * step / warmup_steps
    span = total_steps - warmup_steps
    progress = min(1.0, (step - warmup_steps) / span) if span else 1.0
    return floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
