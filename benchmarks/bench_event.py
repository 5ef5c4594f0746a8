"""Event-driven engine vs snnlite's dense eval forward: throughput on TTFS input, and the
crossover activity below which events win.

    python benchmarks/bench_event.py                      # cifarnet_small, T=8, batch 32
    python benchmarks/bench_event.py --quick              # a few seconds: T=4, batch 8
    python benchmarks/bench_event.py --ckpt runs/x/best.h5 --json benchmarks/results/event.json

1. TTFS: one batch of TTFS-encoded images (real CIFAR-10 from
   ``$SNNLITE_DATA/cifar10-mini.npz``, else uniform noise) through ``model.forward`` (dense,
   the model's dtype, eval mode) and ``EventNet.run`` (events, float64): img/s of each.
2. Sweep: binary inputs where each input element fires with probability d at each step,
   for a range of d. ``activity`` = (input events + spikes) / ((inputs + LIF neurons) * T),
   the fraction of neurons (input included) that fire per step; the crossover is the
   activity at which event img/s equals dense img/s, interpolated log-linearly between the
   two sweep points around it (``null`` when the sweep does not cross).

Without ``--ckpt`` the model is cifarnet_small (seed 0) with its BN statistics calibrated
on one batch of the TTFS input (so that layers fire as in a trained net, not silently).
Times are medians of ``--repeats`` runs after a warm-up (JIT compilation excluded).
"""
import argparse
import itertools
import json
import math
import os
import time
from pathlib import Path

import numpy as np

import snnlite
from snnlite import encoding
from snnlite.event import compile_model

HERE = Path(__file__).resolve().parent


def _images(B, H=32):
    path = Path(os.environ.get("SNNLITE_DATA", HERE.parent.parent / "shared" / "data"))
    path = path / "cifar10-mini.npz"
    if path.exists():
        with np.load(path) as z:
            return z["x_test"][:B].transpose(0, 3, 1, 2).astype(np.float32) / 255, "cifar10-mini"
    return np.random.default_rng(0).random((B, 3, H, H), np.float32), "uniform noise"


def _model(ckpt, calib):
    if ckpt:
        from snnlite.train import load_model
        return load_model(ckpt)[0].eval(), ckpt
    model = snnlite.models.cifarnet_small(seed=0)
    bns = [m for m in model.modules() if isinstance(m, snnlite.nn.BatchNorm2d)]
    for m in bns:
        m.momentum = 1.0  # the running statistics become this batch's
    model.train().forward(calib)
    for m in bns:
        m.momentum = 0.1
    return model.eval(), "cifarnet_small seed 0, BN calibrated on the TTFS batch"


def _median_time(fn, repeats):
    fn()  # warm-up: JIT compilation, caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _activity(counts, n_in, n_lif):
    T = counts.shape[1]
    fired = counts.input_events.sum() + counts.total("out_spikes").sum()
    return float(fired / ((n_in + n_lif) * T * counts.shape[0]))


def measure(model, net, x, repeats):
    """img/s of the dense and the event path on x [T, B, ...], activity, synops/img."""
    B = x.shape[1]
    td = _median_time(lambda: model.forward(x), repeats)
    te = _median_time(lambda: net.run(x, mode="events"), repeats)
    c = net.run(x, mode="events").counts
    n_lif = sum(p.size for p in net.populations if p.kind == "lif")
    return {"dense_img_s": B / td, "event_img_s": B / te, "speedup": td / te,
            "activity": _activity(c, int(np.prod(net.input_shape)), n_lif),
            "firing_rate": float(c.firing_rate().mean()),
            "synops_per_img": float(c.per_sample("synops").mean())}


def crossover(rows):
    """Activity where speedup = 1, log-linear between the bracketing sweep points."""
    pts = sorted((r["activity"], r["speedup"]) for r in rows if r["activity"] > 0)
    for (a0, s0), (a1, s1) in itertools.pairwise(pts):
        if (s0 - 1) * (s1 - 1) <= 0 and s0 != s1:
            f = math.log(s0) / (math.log(s0) - math.log(s1))
            return math.exp(math.log(a0) + f * (math.log(a1) - math.log(a0)))
    return None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", default=None, help="trained checkpoint (default: see above)")
    p.add_argument("--T", type=int, default=8)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--densities", type=float, nargs="+",
                   default=[0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    p.add_argument("--quick", action="store_true", help="T=4, batch 8, 3 densities, 1 repeat")
    p.add_argument("--json", default=None, help="also write the results to this file")
    args = p.parse_args(argv)
    if args.quick:
        args.T, args.batch, args.repeats, args.densities = 4, 8, 1, [0.01, 0.1, 0.4]
    images, source = _images(args.batch)
    ttfs = encoding.ttfs(images, args.T)
    model, desc = _model(args.ckpt, ttfs)
    net = compile_model(model, images.shape[1:])
    rng = np.random.default_rng(0)
    out = {"model": desc, "T": args.T, "batch": args.batch, "repeats": args.repeats,
           "images": source, "numba_threads": snnlite._config.num_threads(),
           "dense_dtype": str(model.dtype), "event_dtype": "float64"}
    out["ttfs"] = measure(model, net, ttfs, args.repeats)
    out["sweep"] = []
    for d in args.densities:
        x = (rng.random(ttfs.shape) < d).astype(np.float32)
        out["sweep"].append(dict(input_density=d, **measure(model, net, x, args.repeats)))
    out["crossover_activity"] = crossover(out["sweep"])
    cols = ["input", "activity", "firing_rate", "synops_per_img", "dense_img_s",
            "event_img_s", "speedup"]
    rows = [dict(out["ttfs"], input="ttfs")] + [dict(r, input=f"p={r['input_density']}")
                                                for r in out["sweep"]]
    print(f"{desc}; T={args.T}, batch {args.batch}, {source}, "
          f"{out['numba_threads']} numba threads; dense in {out['dense_dtype']}, events in "
          "float64; medians of " f"{args.repeats}")
    print("  ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print("  ".join(f"{r[c]:>14}" if isinstance(r[c], str) else f"{r[c]:>14.4g}"
                        for c in cols))
    cx = out["crossover_activity"]
    print("crossover: events are faster below an activity of about "
          f"{cx:.4g}" if cx is not None else "crossover: not within the sweep")
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
