"""Generate ``tests/data/sj_golden.npz``: reference numbers from SpikingJelly.

snnlite's tests compare against these numbers without importing torch. The
file is produced by this script, run with the separate PyTorch environment::

    ~/venv-torch/bin/python examples/benchmarks/make_sj_golden.py

Produced with torch 2.13.0+cpu and spikingjelly 2.0.0 (the versions actually
used are also stored in the file under ``meta/torch`` and ``meta/spikingjelly``).
Everything is computed in float64 (``torch.set_default_dtype(torch.float64)``).

Contents (all keys are plain arrays; ``np.load(path)`` works without pickle)
--------------------------------------------------------------------------
``lif/<case>/{x,s,v,g,dx}``
    ``neuron.LIFNode(tau=2.0, v_threshold=1.0, surrogate_function=ATan(alpha=2.0),
    step_mode='m', store_v_seq=True)`` on ``x`` of shape [T=6, N=7, 5] with the
    membrane starting at its reset value (0).  ``case`` is
    ``decay{0,1}_detach{0,1}_{hard,soft}``: ``decay_input``, ``detach_reset`` and
    ``v_reset=0.0`` (hard) or ``v_reset=None`` (soft).  ``s`` is the spike train,
    ``v`` the membrane *after* reset at every step (SpikingJelly's ``v_seq``),
    ``g`` a random weight and ``dx`` the gradient of ``(s * g).sum()`` w.r.t. ``x``.
    Rows ``x[:, 0, :3]`` hit ``h == v_threshold`` exactly at t=0 and t=1 (with
    the membrane at 0 each time), row ``x[:, 1, :2]`` hits it at t=1 from a
    nonzero membrane (v=0.5).  SpikingJelly fires on ties (``h - v_th >= 0``).

``model/...``  "cifarnet_small" in multi-step mode, T=4, B=3, float64:
    0 Conv2d(3,32,3,p=1,no bias) 1 BN(32) 2 LIF 3 Conv2d(32,64) 4 BN(64) 5 LIF
    6 AvgPool2d(2) 7 Conv2d(64,128) 8 BN(128) 9 LIF 10 AvgPool2d(2)
    11 Conv2d(128,128) 12 BN(128) 13 LIF 14 AvgPool2d(2) 15 Flatten 16 Linear(2048,10)
    LIF: tau=2, v_th=1, v_reset=0, decay_input=True, detach_reset=False, ATan(2).
    Stateless layers run on the [T*B, ...] flattened batch, so BatchNorm statistics
    are taken over T, B, H and W together; Flatten gives [T, B, 2048];
    logits = output.mean(0).

    - ``model/state/<name>``: every state_dict entry before the forward (torch's
      default init under ``torch.manual_seed(0)``, drawn in float32 and cast to
      float64, so the float32 arrays stored here are exact).
    - ``model/x`` [T,B,3,32,32]: a uniform [0,1) float32 image repeated over T
      (direct coding; exact in float32).  ``model/y``: int64 labels.
    - ``model/logits``, ``model/loss`` (``F.cross_entropy``, mean), train mode.
    - ``model/grad/<name>``: gradient of the loss w.r.t. every parameter.
    - ``model/state_after/<name>``: BatchNorm buffers (running_mean,
      running_var (unbiased), num_batches_tracked) after that forward.
    - ``model/spikes/<idx>``: total spike count of LIF layer ``idx`` (2, 5, 9, 13).
    - ``model/eval_logits``: a second forward in eval mode on the same input,
      using the running statistics updated by the train forward.
    - ``model/sgd2/<name>``: every state_dict entry after two training steps
      from ``model/state`` on the same batch with ``torch.optim.SGD(lr=0.1,
      momentum=0.9, nesterov=True, weight_decay=5e-4)``.  Plain torch SGD applies
      weight decay to *every* parameter (conv and linear weights, linear bias and
      the BatchNorm weights and biases).  ``model/sgd2_loss`` holds both losses.
    Size: the three full parameter sets (``state``, ``grad``, ``sgd2``) and ``x``
    are stored as float32; ``grad`` and ``sgd2`` are float64 results rounded to
    float32 (compare with rtol ~1e-5).  All other model arrays are float64.

``bn/...``  ``nn.BatchNorm2d(3)`` in train mode on x [4,3,5,5] with random affine
    parameters: ``x, weight, bias, y, g, dx, dweight, dbias`` (``g`` is the
    upstream gradient of ``(y * g).sum()``), ``running_mean``, ``running_var``
    after the forward (momentum 0.1, from 0 / 1), ``y_eval`` (eval mode with those
    running stats), ``eps``, ``momentum``.

``conv/...``  ``F.conv2d`` stride 2, padding 1 on x [2,3,9,9], w [4,3,3,3], b [4]:
    ``x, w, b, y, g, dx, dw, db, stride, padding``.
"""

from __future__ import annotations

import inspect
import os
import sys

import numpy as np
import spikingjelly
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from torch import nn

T_LIF, N_LIF, F_LIF = 6, 7, 5
T_MODEL, B_MODEL = 4, 3
LIF_LAYERS = (2, 5, 9, 13)
OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data",
                        "sj_golden.npz")


def _sj_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spikingjelly")
    except PackageNotFoundError:  # pragma: no cover - metadata missing
        return getattr(spikingjelly, "__version__", "unknown")


def make_lif(**kwargs) -> neuron.LIFNode:
    """A LIFNode with the torch backend where the installed version has backends."""
    if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters:
        kwargs.setdefault("backend", "torch")
    kwargs.setdefault("surrogate_function", surrogate.ATan(alpha=2.0))
    kwargs.setdefault("step_mode", "m")
    return neuron.LIFNode(**kwargs)


def np64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)  # astype copies


def np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def npint(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.int64)  # a copy, not a view of the buffer


# --------------------------------------------------------------------------- LIF
def lif_input(decay_input: bool, rng: np.random.Generator) -> np.ndarray:
    """Random drive with a good share of spikes plus exact threshold ties."""
    scale = 2.0 if decay_input else 1.0  # steady state v = x (decay) or 2x (no decay)
    x = rng.uniform(-0.5, 1.6, size=(T_LIF, N_LIF, F_LIF)) * scale
    # tie from rest: h = x/2 (decay) or x (no decay) with v = 0 -> h == 1 exactly;
    # after the tie spike the membrane is 0 again (hard and soft), so t=1 ties too.
    x[0:2, 0, 0:3] = 2.0 if decay_input else 1.0
    # tie from v = 0.5: t0 gives h = 0.5 (no spike), t1 gives h = 1.0 exactly
    if decay_input:
        x[0, 1, 0:2], x[1, 1, 0:2] = 1.0, 1.5  # 0.5 + (1.5 - 0.5) / 2
    else:
        x[0, 1, 0:2], x[1, 1, 0:2] = 0.5, 0.75  # 0.5 - 0.25 + 0.75
    return x


def lif_cases(out: dict) -> None:
    rng = np.random.default_rng(1234)
    xs = {d: lif_input(d, rng) for d in (True, False)}
    g = rng.normal(size=(T_LIF, N_LIF, F_LIF))
    for decay in (True, False):
        for detach in (False, True):
            for reset_name, v_reset in (("hard", 0.0), ("soft", None)):
                case = f"decay{int(decay)}_detach{int(detach)}_{reset_name}"
                node = make_lif(tau=2.0, v_threshold=1.0, v_reset=v_reset,
                                decay_input=decay, detach_reset=detach, store_v_seq=True)
                functional.reset_net(node)
                x = torch.tensor(xs[decay], dtype=torch.float64, requires_grad=True)
                s = node(x)
                (s * torch.tensor(g)).sum().backward()
                key = f"lif/{case}"
                out[f"{key}/x"] = xs[decay].copy()
                out[f"{key}/s"] = np64(s)
                out[f"{key}/v"] = np64(node.v_seq)
                out[f"{key}/g"] = g.copy()
                out[f"{key}/dx"] = np64(x.grad)


# ------------------------------------------------------------------------- model
def cifarnet_small() -> nn.Sequential:
    """The reference network, multi-step, with SpikingJelly layer wrappers."""

    def lif():
        return make_lif(tau=2.0, v_threshold=1.0, v_reset=0.0, decay_input=True,
                        detach_reset=False)

    m = "m"
    return nn.Sequential(
        layer.Conv2d(3, 32, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(32, step_mode=m),
        lif(),
        layer.Conv2d(32, 64, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(64, step_mode=m),
        lif(),
        layer.AvgPool2d(2, step_mode=m),
        layer.Conv2d(64, 128, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(128, step_mode=m),
        lif(),
        layer.AvgPool2d(2, step_mode=m),
        layer.Conv2d(128, 128, 3, padding=1, bias=False, step_mode=m),
        layer.BatchNorm2d(128, step_mode=m),
        lif(),
        layer.AvgPool2d(2, step_mode=m),
        layer.Flatten(step_mode=m),
        layer.Linear(2048, 10, step_mode=m),
    )


def _forward_loss(model, x, y, spike_counts=None):
    functional.reset_net(model)
    h = x
    for idx, mod in enumerate(model):
        h = mod(h)
        if spike_counts is not None and idx in LIF_LAYERS:
            spike_counts[idx] = float(h.detach().sum())
    logits = h.mean(0)
    return logits, F.cross_entropy(logits, y)


def model_case(out: dict) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        torch.set_default_dtype(torch.float32)
        model = cifarnet_small()  # torch default init, drawn in float32
        torch.set_default_dtype(torch.float64)
        model = model.double()
    gen = np.random.default_rng(2024)
    img = gen.random((B_MODEL, 3, 32, 32), dtype=np.float32)
    x_np = np.repeat(img[None], T_MODEL, axis=0)
    y_np = gen.integers(0, 10, size=B_MODEL).astype(np.int64)
    x = torch.tensor(x_np, dtype=torch.float64)
    y = torch.tensor(y_np)

    init_state = {k: v.clone() for k, v in model.state_dict().items()}
    for k, v in init_state.items():
        out[f"model/state/{k}"] = npint(v) if not v.is_floating_point() else np32(v)
    out["model/x"] = x_np
    out["model/y"] = y_np

    model.train()
    counts: dict[int, float] = {}
    logits, loss = _forward_loss(model, x, y, counts)
    loss.backward()
    out["model/logits"] = np64(logits)
    out["model/loss"] = np.float64(loss.item())
    for name, p in model.named_parameters():
        out[f"model/grad/{name}"] = np32(p.grad)
    for k, v in model.state_dict().items():
        if "running" in k or "num_batches" in k:
            out[f"model/state_after/{k}"] = npint(v) if not v.is_floating_point() else np64(v)
    for idx in LIF_LAYERS:
        out[f"model/spikes/{idx}"] = np.float64(counts[idx])

    model.eval()
    with torch.no_grad():
        eval_logits, _ = _forward_loss(model, x, y)
    out["model/eval_logits"] = np64(eval_logits)

    # two SGD steps from the initial state on the same batch
    model.load_state_dict(init_state)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    losses = []
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        _, loss = _forward_loss(model, x, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert abs(losses[0] - out["model/loss"]) < 1e-12, "SGD run does not reproduce the forward"
    out["model/sgd2_loss"] = np.array(losses, dtype=np.float64)
    for k, v in model.state_dict().items():
        if not v.is_floating_point():
            out[f"model/sgd2/{k}"] = npint(v)
        elif "running" in k:
            out[f"model/sgd2/{k}"] = np64(v)
        else:
            out[f"model/sgd2/{k}"] = np32(v)


# ---------------------------------------------------------------------- bn, conv
def bn_case(out: dict) -> None:
    rng = np.random.default_rng(77)
    x = torch.tensor(rng.normal(0.3, 1.5, size=(4, 3, 5, 5)), requires_grad=True)
    bn = nn.BatchNorm2d(3, eps=1e-5, momentum=0.1).double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(rng.uniform(0.5, 1.5, size=3)))
        bn.bias.copy_(torch.tensor(rng.normal(0.0, 0.5, size=3)))
    w0, b0 = bn.weight.detach().clone(), bn.bias.detach().clone()
    g = rng.normal(size=(4, 3, 5, 5))
    bn.train()
    y = bn(x)
    (y * torch.tensor(g)).sum().backward()
    bn.eval()
    with torch.no_grad():
        y_eval = bn(x)
    out.update({
        "bn/x": np64(x), "bn/weight": np64(w0), "bn/bias": np64(b0), "bn/y": np64(y),
        "bn/g": g, "bn/dx": np64(x.grad), "bn/dweight": np64(bn.weight.grad),
        "bn/dbias": np64(bn.bias.grad), "bn/running_mean": np64(bn.running_mean),
        "bn/running_var": np64(bn.running_var), "bn/y_eval": np64(y_eval),
        "bn/eps": np.float64(bn.eps), "bn/momentum": np.float64(bn.momentum),
    })


def conv_case(out: dict) -> None:
    rng = np.random.default_rng(99)
    x = torch.tensor(rng.normal(size=(2, 3, 9, 9)), requires_grad=True)
    w = torch.tensor(rng.normal(scale=0.3, size=(4, 3, 3, 3)), requires_grad=True)
    b = torch.tensor(rng.normal(size=4), requires_grad=True)
    y = F.conv2d(x, w, b, stride=2, padding=1)
    g = rng.normal(size=tuple(y.shape))
    (y * torch.tensor(g)).sum().backward()
    out.update({
        "conv/x": np64(x), "conv/w": np64(w), "conv/b": np64(b), "conv/y": np64(y),
        "conv/g": g, "conv/dx": np64(x.grad), "conv/dw": np64(w.grad), "conv/db": np64(b.grad),
        "conv/stride": np.int64(2), "conv/padding": np.int64(1),
    })


def main() -> int:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    out: dict[str, np.ndarray] = {
        "meta/torch": np.array(torch.__version__),
        "meta/spikingjelly": np.array(_sj_version()),
    }
    lif_cases(out)
    torch.set_default_dtype(torch.float64)
    bn_case(out)
    conv_case(out)
    model_case(out)
    path = os.path.normpath(sys.argv[1] if len(sys.argv) > 1 else OUT_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez_compressed(path, **out)
    print(f"wrote {path}: {len(out)} arrays, {os.path.getsize(path) / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
