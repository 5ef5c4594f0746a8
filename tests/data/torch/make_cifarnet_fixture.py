"""Write the SpikingJelly checkpoints that tests/test_import_torch.py loads without torch.

Run with the PyTorch environment (the files here were made with torch 2.13.0 and
spikingjelly 2.0.0)::

    ~/venv-torch/bin/python tests/data/torch/make_cifarnet_fixture.py

Two models, each trained for one SGD step, then run in eval mode. Batch norms use
``momentum=None`` (a cumulative average) for that step, so their running statistics are
exactly the first batch's and activity reaches every layer in eval mode (with the default
momentum, 90% of the initial statistics would remain and deep layers would stay silent);
``num_batches_tracked`` is 1.

``cifarnet/cifarnet_small.pth``
    ``state_dict()`` of SpikingJelly's cifarnet_small, built exactly as in
    examples/benchmarks/make_sj_golden.py: an ``nn.Sequential`` of ``layer.Conv2d``,
    ``layer.BatchNorm2d``, ``neuron.LIFNode``, ``layer.AvgPool2d``, ``layer.Flatten``,
    ``layer.Linear`` in multi-step mode.
``cifarnet/sj_wrapped.pth``
    a small network written the other common SpikingJelly way,
    ``nn.Sequential(layer.SeqToANNContainer(Conv2d, BatchNorm2d), LIFNode, ...)``, whose
    keys gain a container level (``0.0.weight``, ``0.1.running_mean``, ...).

``NAME.npz`` next to each holds ``x`` [B, 3, H, W] (float32, repeated over T steps:
direct coding), ``T``, ``logits`` [B, K] = mean over time of the eval-mode output, and
``spikes`` (total spike count of each LIF layer, in order). Everything runs in float32.
"""

import inspect
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

OUT = Path(__file__).resolve().parent / "cifarnet"
T, B = 4, 2


def lif():
    kw = {"backend": "torch"} if "backend" in inspect.signature(
        neuron.LIFNode.__init__).parameters else {}
    return neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True,
                          detach_reset=False, surrogate_function=surrogate.ATan(alpha=2.0),
                          step_mode="m", **kw)


def cifarnet_small():
    m = "m"
    return nn.Sequential(
        layer.Conv2d(3, 32, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(32, step_mode=m), lif(),
        layer.Conv2d(32, 64, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(64, step_mode=m), lif(),
        layer.AvgPool2d(2, step_mode=m),
        layer.Conv2d(64, 128, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(128, step_mode=m), lif(),
        layer.AvgPool2d(2, step_mode=m),
        layer.Conv2d(128, 128, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(128, step_mode=m), lif(),
        layer.AvgPool2d(2, step_mode=m),
        layer.Flatten(step_mode=m),
        layer.Linear(2048, 10, step_mode=m),
    )


def sj_wrapped():
    """snnlite equivalent: Sequential(Conv2d(3,8,3,p=1,bias), BN(8), LIF, Conv2d(8,8,3,p=1),
    BN(8), LIF, AvgPool2d(4), Flatten, Linear(128, 5))."""
    S = layer.SeqToANNContainer
    return nn.Sequential(
        S(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)), lif(),
        S(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)), lif(),
        S(nn.AvgPool2d(4)),
        S(nn.Flatten(), nn.Linear(128, 5)),
    )


def run(model, x):
    """Eval-mode logits and per-LIF spike counts on x [T, B, ...]."""
    functional.reset_net(model)
    counts, h = [], x
    for mod in model:
        h = mod(h)
        if isinstance(mod, neuron.LIFNode):
            counts.append(int(h.sum()))
    return h.mean(0), counts


def make(name, model, hw, classes, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xs = torch.randn(B * 4, 3, hw, hw, generator=gen)
    ys = torch.randint(0, classes, (B * 4,), generator=gen)
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.momentum = None
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    functional.reset_net(model)
    logits = model(xs.unsqueeze(0).repeat(T, 1, 1, 1, 1)).mean(0)
    F.cross_entropy(logits, ys).backward()
    opt.step()

    model.eval()
    x = torch.rand(B, 3, hw, hw, generator=gen) * 4 - 2
    with torch.no_grad():
        logits, counts = run(model, x.unsqueeze(0).repeat(T, 1, 1, 1, 1))
    torch.save(model.state_dict(), OUT / f"{name}.pth")
    np.savez(OUT / f"{name}.npz", x=x.numpy(), T=np.int64(T), logits=logits.numpy(),
             spikes=np.array(counts, np.int64))
    size = (OUT / f"{name}.pth").stat().st_size
    print(f"{name}: {size} bytes, spikes per LIF layer {counts}")


def main():
    OUT.mkdir(exist_ok=True)
    torch.manual_seed(0)
    make("cifarnet_small", cifarnet_small(), 32, 10, seed=0)
    torch.manual_seed(1)
    make("sj_wrapped", sj_wrapped(), 16, 5, seed=1)


if __name__ == "__main__":
    main()
