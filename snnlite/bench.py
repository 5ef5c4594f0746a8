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


def measure(model_name="cifarnet_small", T=8, batch_size=32, steps=5, warmup=2,
            images=None, weights=None):
    """Median training and inference img/s of ``model_name`` on one repeated batch.

    Speed depends on how often neurons fire (spike inputs take the event path), so
    ``weights``, a checkpoint of a trained model, measures at its firing rates instead of
    those of a fresh initialisation; ``spike_rate`` reports the mean over spiking layers.
    """
    tune_malloc()  # what the CLI and the Trainer do: measure what a user gets
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
    model.eval()
    infer_img_s = timed(lambda: model.forward(inp))
    rate = spike_rate(model, inp)
    model.train()
    return dict(framework="snnlite", model=model_name, T=T, batch=batch_size, input=source,
                weights=None if weights is None else str(weights), spike_rate=rate,
                train_img_s=train_img_s, infer_img_s=infer_img_s,
                train_flops_per_img=dense_flops(model, T, True),
                infer_flops_per_img=dense_flops(model, T, False),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
