"""Event engine vs dense inference throughput on TTFS input, and the crossover activity below
which events win.

    python examples/benchmarks/bench_event.py --train /tmp/ttfs-ckpt --json event.json  # see below
    python examples/benchmarks/bench_event.py --ckpt runs/x/best.h5              # a checkpoint
    python examples/benchmarks/bench_event.py --quick                            # seconds
    SNNLITE_TORCH_PYTHON=~/venv-torch/bin/python python examples/benchmarks/bench_event.py ...

Paths, all eval mode, float32, the same weights, one batch ``[T, B, 3, 32, 32]`` at a time:

* ``event``: :func:`snnlite.event.compile_model` (float32) and ``EventNet.run``, which
  also counts every spike and synop exactly;
* ``default``: snnlite's ``model.forward`` (sparse inputs take its event-scatter convolution,
  BN + LIF + pooling run fused);
* ``gemm``: the same with ``sparse_below = 0`` on every Conv2d (im2col + GEMM everywhere);
* ``torch``: PyTorch + SpikingJelly (``examples/benchmarks/torch_reference.py``, run with
  ``$SNNLITE_TORCH_PYTHON`` when set). Its input is a direct-coded random batch; for dense
  inference the input's values do not change the work. It runs as a separate process, not
  alternated with the others, with 1 and with snnlite's thread count; the faster counts.

1. TTFS: the first ``--batch`` test images of ``$SNNLITE_DATA/cifar10-mini.npz`` (uniform
   noise if absent), TTFS-encoded with T steps.
2. Sweep: binary inputs where each input element fires with probability p at each step.
   ``activity`` = (input events + spikes) / ((inputs + LIF neurons) * T), the fraction of
   neurons (input included) firing per step; ``firing_rate`` the same over LIF neurons only.
   The crossover against a dense path is where the event img/s equals its img/s,
   interpolated log-linearly between the two sweep points around it (``null`` when the
   sweep does not cross).

The model: ``--ckpt``; or ``--train DIR``, which first trains cifarnet_small (T=4, 2 epochs,
batch 32, TTFS) on the mini subset into DIR (kept: later runs reuse DIR/best.h5) so that
firing is that of a trained net; otherwise cifarnet_small (seed 0) with its BN statistics
calibrated on the TTFS batch. Each figure is the median of ``--repeats`` rounds in which
every path runs once, in turn, after a warm-up (JIT compilation excluded): on a busy machine
the ratios are steadier than the absolute numbers.
"""
import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numba
import numpy as np

import snnlite
from snnlite import encoding
from snnlite.event import compile_model

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SNNLITE_DATA", HERE.parents[2] / "shared" / "data"))
PATHS = ("event", "default", "gemm")


def _images(B):
    path = DATA / "cifar10-mini.npz"
    if path.exists():
        from snnlite.data import load_mini
        test = load_mini(path)[1]
        return test.images[:B].astype(np.float32) / np.float32(255), f"{path.name} test[:{B}]"
    return np.random.default_rng(0).random((B, 3, 32, 32), np.float32), "uniform noise"


def _train(out):
    from snnlite.data import load_mini
    from snnlite.io.config import TrainConfig
    from snnlite.train import Trainer
    ckpt = Path(out) / "best.h5"
    if not ckpt.exists():
        train, test = load_mini(DATA / "cifar10-mini.npz")
        cfg = TrainConfig(model="cifarnet_small", T=4, epochs=2, batch_size=32, encoding="ttfs")
        Trainer(cfg, out, train, test, progress=False).fit()
    return str(ckpt)


def _model(ckpt, calib):
    if ckpt:
        from snnlite.io.checkpoint import load_model
        return load_model(ckpt)[0].eval(), f"cifarnet_small from {ckpt}"
    model = snnlite.models.cifarnet_small(seed=0)
    bns = [m for m in model.modules() if isinstance(m, snnlite.nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0  # the running statistics become this batch's
    model.train().forward(calib)
    for m in bns:
        m.momentum = 0.1
    return model.eval(), "cifarnet_small seed 0, BN calibrated on the TTFS batch"


@contextlib.contextmanager
def _gemm_convs(model):
    """Every Conv2d of ``model`` runs im2col + GEMM inside the block."""
    convs = [m for m in model.modules() if isinstance(m, snnlite.nn.Conv2d)]
    old = [m.sparse_below for m in convs]
    for m in convs:
        m.sparse_below = 0.0
    try:
        yield
    finally:
        for m, v in zip(convs, old):
            m.sparse_below = v


def _paths(model, net):
    def gemm(x):
        with _gemm_convs(model):
            return model.forward(x)

    return {"event": lambda x: net.run(x, mode="events").logits,
            "default": model.forward, "gemm": gemm}


def timed_rounds(fns, x, repeats):
    """{name: median seconds} of fns[name](x), the names taking turns in each round."""
    for fn in fns.values():
        fn(x)  # warm-up
    times = {k: [] for k in fns}
    for r in range(repeats):
        names = list(fns)
        for k in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
            t0 = time.perf_counter()
            fns[k](x)
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def measure(fns, net, x, repeats):
    """img/s of every path on x [T, B, ...], speedups of events, activity and counts."""
    B = x.shape[1]
    t = timed_rounds(fns, x, repeats)
    c = net.run(x, mode="events").counts
    n_in = int(np.prod(net.input_shape))
    n_lif = sum(p.size for p in net.populations if p.kind == "lif")
    T = x.shape[0]
    spikes = c.total("out_spikes").sum()
    row = {"img_s": {k: B / v for k, v in t.items()},
           "input_density": float(c.input_events.sum() / (n_in * T * B)),
           "activity": float((c.input_events.sum() + spikes) / ((n_in + n_lif) * T * B)),
           "firing_rate": float(c.firing_rate().mean()),
           "synops_per_img": float(c.per_sample("synops").mean())}
    row["speedup"] = {k: t[k] / t["event"] for k in t if k != "event"}
    return row


def crossover(rows, other):
    """(input density, activity, firing rate) where events are as fast as ``other``,
    log-linear between the bracketing sweep points; None if the sweep does not cross."""
    pts = sorted((r["activity"], r["speedup"][other], r["input_density"], r["firing_rate"])
                 for r in rows if r["activity"] > 0)
    for (a0, s0, d0, f0), (a1, s1, d1, f1) in itertools.pairwise(pts):
        if (s0 - 1) * (s1 - 1) <= 0 and s0 != s1:
            f = math.log(s0) / (math.log(s0) - math.log(s1))
            return {"input_density": _between(d0, d1, f), "activity": _between(a0, a1, f),
                    "firing_rate": _between(f0, f1, f)}
    return None


def _between(u, v, f):
    """The point a fraction f of the way from u to v, on a log scale when both are > 0."""
    if u > 0 and v > 0:
        return math.exp(math.log(u) + f * (math.log(v) - math.log(u)))
    return u + f * (v - u)


def torch_reference(T, B, threads):
    """PyTorch + SpikingJelly inference via torch_reference.py with 1 and ``threads``
    threads: (the faster run's JSON with every run's img/s added, None) or (None, reason).
    Torch's thread pool can be many times slower with as many threads as busy cores."""
    py = os.environ.get("SNNLITE_TORCH_PYTHON")
    if not py:
        return None, "SNNLITE_TORCH_PYTHON not set"
    runs = []
    for n in sorted({1, threads}):
        cmd = [py, str(HERE / "torch_reference.py"), "--T", str(T), "--batch-size", str(B),
               "--threads", str(n)]
        r = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"torch_reference.py failed ({r.returncode}): {r.stderr.strip()[-300:]}"
        runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
    best = max(runs, key=lambda r: r["infer_img_s"])
    return dict(best, infer_img_s_by_threads={r["threads"]: r["infer_img_s"] for r in runs}), None


def machine():
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "cpus": os.cpu_count(), "threads": snnlite.get_num_threads(),
            "load_avg": [round(v, 2) for v in os.getloadavg()],
            "python": platform.python_version(), "numpy": np.__version__,
            "numba": numba.__version__, "snnlite": snnlite.__version__}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ckpt", default=None, help="trained checkpoint")
    g.add_argument("--train", default=None, metavar="DIR",
                   help="train cifarnet_small briefly on TTFS input into DIR first (reused)")
    p.add_argument("--T", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7, help="alternating rounds (TTFS)")
    p.add_argument("--sweep-repeats", type=int, default=3, help="alternating rounds (sweep)")
    p.add_argument("--densities", type=float, nargs="+",
                   default=[0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.7])
    p.add_argument("--quick", action="store_true", help="T=4, batch 8, 3 densities, 1 round")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.T, args.batch, args.repeats, args.sweep_repeats = 4, 8, 1, 1
        args.densities = [0.01, 0.1, 0.4]
    images, source = _images(args.batch)
    ttfs = encoding.ttfs(images, args.T)
    ckpt = _train(args.train) if args.train else args.ckpt
    model, desc = _model(ckpt, ttfs)
    net = compile_model(model, images.shape[1:], dtype=np.float32)
    fns = _paths(model, net)
    out = {"machine": machine(), "model": desc, "T": args.T, "batch": args.batch,
           "input": f"TTFS, {source}", "repeats": args.repeats,
           "sweep_repeats": args.sweep_repeats, "dtype": "float32"}
    agree = np.mean(fns["event"](ttfs).argmax(1) == fns["default"](ttfs).argmax(1))
    out["ttfs"] = dict(measure(fns, net, ttfs, args.repeats), same_prediction=float(agree))
    torch, why = torch_reference(args.T, args.batch, snnlite.get_num_threads())
    out["torch"] = torch if torch else {"skipped": why}
    if torch:
        out["ttfs"]["img_s"]["torch"] = torch["infer_img_s"]
        out["ttfs"]["speedup"]["torch"] = out["ttfs"]["img_s"]["event"] / torch["infer_img_s"]
    rng = np.random.default_rng(0)
    out["sweep"] = []
    for d in args.densities:
        x = (rng.random(ttfs.shape) < d).astype(np.float32)
        out["sweep"].append(dict(p=d, **measure(fns, net, x, args.sweep_repeats)))
    out["crossover"] = {k: crossover(out["sweep"], k) for k in ("default", "gemm")}
    report(out)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


def report(out):
    m = out["machine"]
    print(f"{out['model']}; T={out['T']}, batch {out['batch']}, {out['input']}; float32")
    print(f"machine: {m['cpu']}, {m['cpus']} CPUs, {m['threads']} snnlite threads, load "
          f"average {m['load_avg']}; medians of {out['repeats']} alternating rounds "
          f"({out['sweep_repeats']} in the sweep)")
    names = [k for k in ("event", "default", "gemm", "torch") if k in out["ttfs"]["img_s"]]
    cols = ["input", "activity", "firing_rate", "synops/img"] + [f"{k} img/s" for k in names] \
        + [f"x {k}" for k in names[1:]]
    rows = [dict(out["ttfs"], input="ttfs")] + [dict(r, input=f"p={r['p']:g}")
                                                for r in out["sweep"]]
    print("  ".join(f"{c:>12}" for c in cols))
    for r in rows:
        vals = [r["input"], r["activity"], r["firing_rate"], r["synops_per_img"]]
        vals += [r["img_s"].get(k, float("nan")) for k in names]
        vals += [r["speedup"].get(k, float("nan")) for k in names[1:]]
        print("  ".join(f"{v:>12}" if isinstance(v, str) else f"{v:>12.4g}" for v in vals))
    t = out["ttfs"]
    print(f"TTFS: events {t['speedup']['default']:.2f}x the default path, "
          f"{t['speedup']['gemm']:.2f}x the GEMM path"
          + (f", {t['speedup']['torch']:.2f}x PyTorch+SpikingJelly ({out['torch']['threads']} "
             "threads)" if "torch" in t["speedup"]
             else f" (PyTorch+SpikingJelly: {out['torch']['skipped']})")
          + f"; same top-1 prediction as the default path on {t['same_prediction']:.0%}")
    for k, cx in out["crossover"].items():
        print(f"crossover vs {k}: " + (
            f"events are faster below an activity of about {cx['activity']:.3g} (input "
            f"density {cx['input_density']:.3g}, LIF firing rate {cx['firing_rate']:.3g})"
            if cx else "not within the sweep"))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
