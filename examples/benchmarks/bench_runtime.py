"""Throughput of an integer model: the integer event engine (numba) against the numpy-only
runtime that runs its exported bundle, on the same test images, with a check that both
give the same spikes and logits.

    python examples/benchmarks/bench_runtime.py --data ../shared/data/cifar10-mini.npz \\
        --json examples/benchmarks/results/bench_runtime.json

The model: ``--ckpt`` (a float checkpoint, default the committed teacher
``examples/runs/teacher-cifarnet_small-T4/last.h5``), quantized to 8-bit weights and 16-bit
states on the first 256 training images (``snnlite quantize`` with its defaults), for its
own encoding and T. Each figure is the median over ``--repeats`` rounds of ``--batches``
batches of ``--batch`` test images, both paths run in turn after a warm-up (JIT compilation
excluded). The runtime is timed in this process with numba loaded, but imports none of it.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from snnlite import data, runtime
from snnlite.encoding import model_input
from snnlite.event import qengine
from snnlite.io.checkpoint import load_model
from snnlite.quant import CALIBRATION_IMAGES, QFormat, quantize

ROOT = Path(__file__).resolve().parents[2]
TEACHER = ROOT / "examples" / "runs" / "teacher-cifarnet_small-T4" / "last.h5"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", default=str(TEACHER))
    p.add_argument("--data", default=None)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    model, cfg = load_model(args.ckpt)
    train, test = data.load_dataset(cfg.dataset, args.data)
    calib = train.images[:CALIBRATION_IMAGES].astype(np.float32) / np.float32(255)
    qnet, _ = quantize(model, QFormat(), calib, train.mean, train.std, cfg.encoding, cfg.T)
    meta, arrays = qnet.to_record()
    bundle = runtime.from_record(meta, arrays)
    n = args.batch * args.batches
    xs = [model_input(test.images[i:i + args.batch].astype(np.float32) / np.float32(255),
                      cfg.encoding, cfg.T, train.mean, train.std) for i in range(0, n, args.batch)]
    a, b = qengine.run(qnet, xs[0], record=True), runtime.run(bundle, xs[0], record=True)
    same = bool(np.array_equal(a.logits, b.logits) and all(
        np.array_equal(a.spikes[k], b.spikes[k]) for k in b.spikes))
    times = {"engine": [], "runtime": []}
    for _ in range(args.repeats):
        for name, fn in (("engine", lambda x: qengine.run(qnet, x)),
                         ("runtime", lambda x: runtime.run(bundle, x))):
            t0 = time.perf_counter()
            for x in xs:
                fn(x)
            times[name].append(time.perf_counter() - t0)
    ips = {k: n / statistics.median(v) for k, v in times.items()}
    ck = Path(args.ckpt).resolve()
    res = {"checkpoint": str(ck.relative_to(ROOT) if ck.is_relative_to(ROOT) else ck),
           "encoding": cfg.encoding, "T": cfg.T,
           "format": QFormat().describe(), "images": n, "batch": args.batch,
           "repeats": args.repeats, "img_per_s": {k: round(v, 2) for k, v in ips.items()},
           "runtime_slowdown": round(ips["engine"] / ips["runtime"], 1),
           "same_spikes_and_logits": same,
           "command": "python examples/benchmarks/bench_runtime.py " + " ".join(
               argv if argv is not None else __import__("sys").argv[1:])}
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
