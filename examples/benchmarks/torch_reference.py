"""PyTorch + SpikingJelly reference throughput for cifarnet_small or wrn20_1 (CPU, float32).

Builds the same network as snnlite's cifarnet_small (or wrn20_1) with SpikingJelly layers in
multi-step mode (LIF tau=2, v_th=1, hard reset to 0, ATan surrogate, torch
backend), feeds a direct-coded random image batch (the same image at every time
step) and measures

* training throughput: reset state, forward, cross-entropy on the time-averaged
  logits, backward and an SGD step (lr 0.1, momentum 0.9, Nesterov, weight decay
  5e-4), in images per second;
* inference throughput: eval mode under ``torch.no_grad()``, in images per second;
* peak resident memory of the process (``resource.getrusage`` maxrss).

With ``--compile`` the model runs under ``torch.compile`` (inductor, the default mode);
compilation happens during the untimed warm-up steps (the first time tens of seconds,
then from inductor's on-disk cache).

It prints exactly one JSON line on stdout, so that other benchmark scripts can
run it as a subprocess with the interpreter of the environment that has torch,
for example ``SNNLITE_TORCH_PYTHON=~/venv-torch/bin/python``::

    ~/venv-torch/bin/python examples/benchmarks/torch_reference.py --T 8 --batch-size 32

Exits with code 3 and a message on stderr when torch or spikingjelly cannot be
imported.  torch and spikingjelly are not dependencies of snnlite.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import sys
import time

EXIT_MISSING = 3


def _import_backend():
    try:
        import spikingjelly  # noqa: F401
        import torch
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
    except (ImportError, OSError) as exc:  # missing, or a broken install (shared libs)
        print(f"torch_reference: torch and spikingjelly are required ({exc!r}); "
              "run with an interpreter that has them, e.g. "
              "SNNLITE_TORCH_PYTHON=/path/to/venv/bin/python", file=sys.stderr)
        sys.exit(EXIT_MISSING)
    return torch, functional, layer, neuron, surrogate


def _sj_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("spikingjelly")
    except PackageNotFoundError:
        import spikingjelly

        return getattr(spikingjelly, "__version__", "unknown")


def _lif_kwargs(neuron, surrogate):
    """LIF tau=2, v_th=1, hard reset to 0, ATan surrogate, multi-step, torch backend."""
    kw = {"tau": 2.0, "v_threshold": 1.0, "v_reset": 0.0, "decay_input": True,
          "detach_reset": False, "surrogate_function": surrogate.ATan(alpha=2.0),
          "step_mode": "m"}
    if "backend" in inspect.signature(neuron.LIFNode.__init__).parameters:
        kw["backend"] = "torch"
    return kw


def build_cifarnet_small(layer, neuron, surrogate):
    """cifarnet_small: 4 x (conv3x3-BN-LIF) with 3 average pools, then Linear(2048, 10)."""
    from torch import nn

    lif_kwargs = _lif_kwargs(neuron, surrogate)

    def block(cin, cout):
        return [layer.Conv2d(cin, cout, 3, padding=1, bias=False, step_mode="m"),
                layer.BatchNorm2d(cout, step_mode="m"),
                neuron.LIFNode(**lif_kwargs)]

    def pool():
        return layer.AvgPool2d(2, step_mode="m")

    return nn.Sequential(
        *block(3, 32), *block(32, 64), pool(), *block(64, 128), pool(),
        *block(128, 128), pool(), layer.Flatten(step_mode="m"),
        layer.Linear(2048, 10, step_mode="m"),
    )


def build_spiking_resnet(layer, neuron, surrogate, depth=20, width=1):
    """snnlite's ``spiking_resnet(depth, width)`` (``wrn20_1`` by default): a stem
    conv3x3-BN-LIF, three stages of SpikingJelly-style basic blocks (LIF after the residual
    add; 1x1 conv + BN shortcut where the shape changes) with 16k, 32k, 64k channels, an
    8x8 average pool and Linear(64k, 10)."""
    from torch import nn

    n = (depth - 2) // 6
    lif_kwargs = _lif_kwargs(neuron, surrogate)

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = layer.Conv2d(cin, cout, 3, stride, 1, bias=False, step_mode="m")
            self.bn1 = layer.BatchNorm2d(cout, step_mode="m")
            self.sn1 = neuron.LIFNode(**lif_kwargs)
            self.conv2 = layer.Conv2d(cout, cout, 3, 1, 1, bias=False, step_mode="m")
            self.bn2 = layer.BatchNorm2d(cout, step_mode="m")
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(
                    layer.Conv2d(cin, cout, 1, stride, 0, bias=False, step_mode="m"),
                    layer.BatchNorm2d(cout, step_mode="m"))
            self.sn2 = neuron.LIFNode(**lif_kwargs)

        def forward(self, x):
            out = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x)))))
            return self.sn2(out + (x if self.downsample is None else self.downsample(x)))

    widths = [16 * width, 32 * width, 64 * width]
    mods = [layer.Conv2d(3, widths[0], 3, 1, 1, bias=False, step_mode="m"),
            layer.BatchNorm2d(widths[0], step_mode="m"), neuron.LIFNode(**lif_kwargs)]
    cin = widths[0]
    for i, w in enumerate(widths):
        for j in range(n):
            mods.append(Block(cin, w, 2 if i > 0 and j == 0 else 1))
            cin = w
    mods += [layer.AvgPool2d(8, step_mode="m"), layer.Flatten(step_mode="m"),
             layer.Linear(widths[2], 10, step_mode="m")]
    return nn.Sequential(*mods)


MODELS = {"cifarnet_small": build_cifarnet_small,
          "wrn20_1": lambda layer, neuron, surrogate:
          build_spiking_resnet(layer, neuron, surrogate, 20, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cifarnet_small", choices=sorted(MODELS))
    ap.add_argument("--T", type=int, default=8, help="time steps")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="timed iterations per phase")
    ap.add_argument("--warmup", type=int, default=3, help="untimed iterations per phase")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compile", action="store_true",
                    help="run the model under torch.compile (inductor; compilation happens in "
                         "the untimed warm-up steps)")
    args = ap.parse_args(argv)

    torch, functional, layer, neuron, surrogate = _import_backend()
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    T, B = args.T, args.batch_size

    net = MODELS[args.model](layer, neuron, surrogate)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    model = torch.compile(net) if args.compile else net
    img = torch.rand(B, 3, 32, 32)
    x_seq = img.unsqueeze(0).repeat(T, 1, 1, 1, 1)  # direct coding
    y = torch.randint(0, 10, (B,))

    def train_step():
        functional.reset_net(net)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x_seq).mean(0), y)
        loss.backward()
        opt.step()
        return loss

    def infer_step():
        functional.reset_net(net)
        return model(x_seq).mean(0)

    def timed(fn, n_warm, n_steps):
        for _ in range(n_warm):
            fn()
        t0 = time.perf_counter()
        for _ in range(n_steps):
            fn()
        return time.perf_counter() - t0

    net.train()
    t_train = timed(train_step, args.warmup, args.steps)
    net.eval()
    with torch.no_grad():
        t_infer = timed(infer_step, args.warmup, args.steps)

    n_img = B * args.steps
    result = {
        "framework": "pytorch+spikingjelly" + (" (torch.compile)" if args.compile else ""),
        "model": args.model,
        "compiled": bool(args.compile),
        "torch": torch.__version__,
        "spikingjelly": _sj_version(),
        "T": T,
        "batch": B,
        "steps": args.steps,
        "warmup": args.warmup,
        "threads": args.threads,
        "dtype": "float32",
        "train_img_s": round(n_img / t_train, 3),
        "infer_img_s": round(n_img / t_infer, 3),
        "train_step_s": round(t_train / args.steps, 4),
        "infer_step_s": round(t_infer / args.steps, 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
