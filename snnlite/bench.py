"""Throughput of snnlite on this machine: ``snnlite bench`` (and the engine behind
``examples/benchmarks/bench_train.py``, which adds PyTorch side by side, memory and JIT figures).

Training img/s is forward + cross-entropy + backward + SGD step on a direct-coded batch;
inference img/s an eval-mode forward. ``dense_flops`` counts the convolution and linear
FLOPs a dense framework executes (forward, and input and weight gradients in training),
the basis of the nominal GFLOP/s and of its fraction of the machine's sgemm peak.
"""
import resource
import time

import numpy as np

from . import data, encoding, losses, models, optim
from ._memory import tune_malloc
from .io.checkpoint import load_model
from .nn import functional as F
from .nn.graph import INPUT, trace


def sgemm_gflops(n=2048, reps=3):
    """numpy float32 matrix product of two n x n matrices, best of ``reps``, in GFLOP/s."""
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def memory_gbs(mb=256, reps=3):
    """Copy bandwidth of this process (numpy, one thread), best of ``reps``, in GB/s of bytes
    read plus written."""
    a = np.ones(mb * 2 ** 20 // 4, np.float32)
    b = np.empty_like(a)
    np.copyto(b, a)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.nbytes / best / 1e9


# functional-layer entry points timed by kernel_profile, and the class each counts under
_PROFILED = {
    "conv2d_forward": "conv", "conv2d_backward": "conv",
    "batch_norm_stats": "bn+lif forward", "bn_lif_forward": "bn+lif forward",
    "lif_bn_backward": "lif+bn backward",
    "conv_bn_lif_forward": "conv+bn+lif forward (inference, event)",
    "batch_norm_train": "bn (unfused)", "batch_norm_eval": "bn (unfused)",
    "batch_norm_train_backward": "bn (unfused)",
    "lif_forward": "lif (unfused)", "lif_backward": "lif (unfused)",
    "avg_pool_forward": "pool", "avg_pool_backward": "pool", "max_pool_forward": "pool",
    "max_pool_backward": "pool", "linear_forward": "linear", "linear_backward": "linear",
}


def _nbytes(v):
    if isinstance(v, np.ndarray):
        return v.nbytes
    if isinstance(v, (tuple, list)):
        return sum(_nbytes(u) for u in v)
    return 0


def kernel_profile(step, steps=3):
    """Where one call of ``step()`` (a training or inference step) spends its time, per
    kernel class, averaged over ``steps`` calls after one untimed call.

    Returns {class: {"ms": milliseconds per step, "gflop": GFLOP per step or None,
    "gb": GB per step or None}}. The convolutions report their own classes (event forward,
    Winograd forward, input gradient, weight gradient, with the FLOPs each path executes;
    "conv other" is what the convolution functions spend outside their kernels); the other
    functional-layer calls count the bytes of the arrays they take and return (each read
    or written once: a lower bound on their memory traffic); "rest" is the step's time
    outside all of them (Python, the loss, the optimizer, allocation)."""
    step()
    rec, totals = {}, {}
    saved = {name: getattr(F, name) for name in _PROFILED if hasattr(F, name)}

    def timed(name, fn):
        def call(*args, **kw):
            t = time.perf_counter()
            out = fn(*args, **kw)
            cls = _PROFILED[name]
            d = totals.setdefault(cls, [0.0, 0.0])
            d[0] += time.perf_counter() - t
            d[1] += _nbytes(args) + _nbytes(tuple(kw.values())) + _nbytes(out)
            return out
        return call

    for name, fn in saved.items():
        setattr(F, name, timed(name, fn))
    F.PROFILE = rec
    try:
        t = time.perf_counter()
        for _ in range(steps):
            step()
        wall = time.perf_counter() - t
    finally:
        F.PROFILE = None
        for name, fn in saved.items():
            setattr(F, name, fn)
    out = {}
    conv_kernels = 0.0
    for k, v in rec.items():
        if not k.endswith(" flop"):
            conv_kernels += v
            out[k] = dict(ms=v / steps * 1e3, gflop=rec.get(k + " flop", 0.0) / steps / 1e9 or None,
                          gb=None)
    accounted = 0.0
    for cls, (sec, nbytes) in totals.items():
        accounted += sec
        if cls == "conv":
            out["conv other"] = dict(ms=(sec - conv_kernels) / steps * 1e3, gflop=None, gb=None)
        else:
            out[cls] = dict(ms=sec / steps * 1e3, gflop=None, gb=nbytes / steps / 1e9)
    out["rest"] = dict(ms=(wall - accounted) / steps * 1e3, gflop=None, gb=None)
    out["total"] = dict(ms=wall / steps * 1e3, gflop=None, gb=None)
    return out


def dense_flops(model, T, train, image_shape=(3, 32, 32)):
    """Dense-equivalent FLOPs of one image over T steps, from the traced graph's conv and
    linear nodes (in training, the input gradient of a layer that reads the images is not
    computed, as snnlite does not)."""
    total = 0
    for n in trace(model, image_shape).of_kind("conv", "linear"):
        m = n.module
        if n.kind == "conv":
            macs = m.in_channels * m.kernel_size ** 2 * n.size
        else:
            macs = m.in_features * m.out_features
        total += macs * ((2 if INPUT in n.inputs else 3) if train else 1)
    return 2 * total * T


def spike_rate(model, inp):
    """Spikes per neuron per step over all spiking layers for input ``inp`` [T, B, ...]."""
    lifs = trace(model, inp.shape[2:]).of_kind("lif")
    if not lifs:
        return None
    model.forward(inp)
    spikes = sum(n.module.spike_count for n in lifs)
    neurons = sum(n.size for n in lifs)
    return spikes / (neurons * inp.shape[0] * inp.shape[1])


def bench_images(B, path=None):
    """(x [B, 3, 32, 32] in [0, 1], y [B], source): real images from the CIFAR-10 subset at
    ``path`` if given and present, else uniform noise."""
    if path is not None:
        try:
            train, _ = data.load_mini(path)
        except (OSError, ValueError):
            train = None
        if train is not None:
            idx = np.arange(B) % len(train)
            return (train.images[idx].astype(np.float32) / np.float32(255),
                    train.labels[idx], "cifar10-mini")
    rng = np.random.default_rng(0)
    return rng.random((B, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, B), "uniform noise"


def setup(model_name="cifarnet_small", T=8, batch_size=32, images=None, weights=None):
    """(model, train_step, infer_step, input) for ``model_name`` on one repeated batch of
    direct-coded images: a training step is forward + cross-entropy + backward + SGD
    step, an inference step an eval-mode forward (the model is left in training mode).
    ``weights`` is a checkpoint whose firing rates to measure at instead of a fresh
    initialisation's."""
    x, y, source = images if images is not None else bench_images(batch_size)
    if weights is None:
        model = models.build(model_name)
    else:
        model, cfg = load_model(weights)
        if cfg.model != model_name:
            raise ValueError(f"weights: {weights} holds a {cfg.model}, not a {model_name}")
    opt = optim.SGD(model.parameters(), lr=0.01)
    inp = encoding.direct(data.normalize(x, data.CIFAR10_MEAN, data.CIFAR10_STD), T)

    def train_step():
        _, g = losses.cross_entropy(model.forward(inp), y)
        opt.zero_grad()
        model.backward(g)
        opt.step()

    def infer_step():
        model.eval()
        try:
            model.forward(inp)
        finally:
            model.train()

    return model, train_step, infer_step, inp


def measure(model_name="cifarnet_small", T=8, batch_size=32, steps=5, warmup=2,
            images=None, weights=None):
    """Median training and inference img/s of ``model_name`` on one repeated batch.

    Speed depends on how often neurons fire (spike inputs take the event path), so
    ``weights``, a checkpoint of a trained model, measures at its firing rates instead of
    those of a fresh initialisation; ``spike_rate`` reports the mean over spiking layers.
    """
    tune_malloc()  # what the CLI and the Trainer do: measure what a user gets
    images = images if images is not None else bench_images(batch_size)
    model, train_step, infer_step, inp = setup(model_name, T, batch_size, images, weights)

    def timed(f):
        for _ in range(warmup):
            f()
        ts = []
        for _ in range(steps):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return batch_size / float(np.median(ts))

    train_img_s = timed(train_step)
    infer_img_s = timed(infer_step)
    model.eval()
    rate = spike_rate(model, inp)
    model.train()
    return dict(framework="snnlite", model=model_name, T=T, batch=batch_size, input=images[2],
                weights=None if weights is None else str(weights), spike_rate=rate,
                train_img_s=train_img_s, infer_img_s=infer_img_s,
                train_flops_per_img=dense_flops(model, T, True),
                infer_flops_per_img=dense_flops(model, T, False),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def profile(model_name="cifarnet_small", T=8, batch_size=32, steps=3, images=None,
            weights=None):
    """:func:`kernel_profile` of a training step and of an inference step:
    {"train": {...}, "infer": {...}, "spike_rate": ...}."""
    tune_malloc()
    model, train_step, infer_step, inp = setup(model_name, T, batch_size, images, weights)
    out = dict(train=kernel_profile(train_step, steps), infer=kernel_profile(infer_step, steps))
    model.eval()
    out["spike_rate"] = spike_rate(model, inp)
    model.train()
    return out
