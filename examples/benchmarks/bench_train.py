"""Training and inference throughput, memory and JIT start-up of snnlite, with PyTorch +
SpikingJelly side by side when available.

    python examples/benchmarks/bench_train.py              # cifarnet_small, T=8/4, B=32/128
    python examples/benchmarks/bench_train.py --json examples/benchmarks/results/train.json
    SNNLITE_TORCH_PYTHON=/path/to/venv/bin/python python examples/benchmarks/bench_train.py

In one run it prints: the machine's sgemm GFLOP/s (numpy, 2048^3, default threads);
for each (T, batch): training img/s (forward + cross-entropy + backward + SGD step) and
inference img/s (eval forward), the nominal GFLOP/s (dense-equivalent convolution and
linear FLOPs, as a dense framework would execute them: spikes' sparsity lets snnlite
exceed what the GEMM peak allows densely) and its fraction of the sgemm peak, and peak
RSS; the JIT cold start (empty kernel cache) and warm start (cached kernels) as seconds
from process start to the end of the first training step. Each measurement runs in a fresh
process; snnlite and the reference alternate, and medians over ``--repeats`` are quoted.

Inputs are direct-coded real CIFAR-10 images from ``$SNNLITE_DATA/cifar10-mini.npz`` when
present (spike sparsity then matches real data at initialisation), else uniform noise.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(args):
    """One measurement in this process; prints one JSON line."""
    t_start = float(os.environ.get("SNNLITE_BENCH_T0", time.time()))
    from snnlite import bench, data, encoding, losses, models, optim

    path = Path(os.environ.get("SNNLITE_DATA", HERE.parents[2] / "shared" / "data"))
    images = bench.bench_images(args.batch_size, path / "cifar10-mini.npz")
    if args.first_step_only:
        x, y, _ = images
        model = models.build(args.model)
        opt = optim.SGD(model.parameters(), lr=0.01)
        z = model.forward(encoding.direct(data.normalize(x, data.CIFAR10_MEAN,
                                                         data.CIFAR10_STD), args.T))
        _, g = losses.cross_entropy(z, y)
        model.backward(g)
        opt.step()
        print(json.dumps({"first_step_s": time.time() - t_start}))
        return
    out = bench.measure(args.model, args.T, args.batch_size, args.steps, args.warmup, images,
                        args.weights)
    print(json.dumps(out))


def _run(cmd, env=None):
    env = dict(os.environ, **(env or {}), SNNLITE_BENCH_T0=repr(time.time()))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return None, p.stderr.strip().splitlines()[-1:] or [f"exit {p.returncode}"]
    return json.loads(p.stdout.strip().splitlines()[-1]), None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cifarnet_small")
    p.add_argument("--configs", default="8x32,4x32,8x128", help="TxB,TxB,...")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--torch-python", default=os.environ.get("SNNLITE_TORCH_PYTHON"),
                   help="interpreter with torch + spikingjelly for the reference")
    p.add_argument("--weights", default=None, help="checkpoint of a trained model: measure "
                   "snnlite at its firing rates (default: a fresh initialisation)")
    p.add_argument("--no-jit", action="store_true", help="skip the cold/warm start figures")
    p.add_argument("--json", default=None, help="also write the results here")
    # worker mode
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first-step-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--T", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    import numpy as np
    env_note = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    from snnlite.bench import sgemm_gflops
    peak = sgemm_gflops()
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    me = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", args.model,
          "--steps", str(args.steps), "--warmup", str(args.warmup)]
    if args.weights:
        me += ["--weights", str(Path(args.weights).resolve())]
    ref = [args.torch_python, str(HERE / "torch_reference.py"), "--steps", str(args.steps),
           "--warmup", str(args.warmup + 1)] if args.torch_python else None
    runs = {c: {"snnlite": [], "torch": []} for c in configs}
    errors = []
    for r in range(args.repeats):
        for T, B in configs:
            res, err = _run(me + ["--T", str(T), "--batch-size", str(B)])
            runs[(T, B)]["snnlite"].append(res) if res else errors.append(("snnlite", T, B, err))
            if ref and args.model == "cifarnet_small":
                res, err = _run(ref + ["--T", str(T), "--batch-size", str(B)])
                runs[(T, B)]["torch"].append(res) if res else errors.append(("torch", T, B, err))
        print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    def med(rs, k):
        return float(np.median([x[k] for x in rs])) if rs else None

    rows = []
    for (T, B), d in runs.items():
        s, t = d["snnlite"], d["torch"]
        if not s:
            continue
        row = dict(T=T, batch=B, train_img_s=med(s, "train_img_s"),
                   infer_img_s=med(s, "infer_img_s"), peak_rss_mb=med(s, "peak_rss_mb"),
                   train_img_s_runs=[round(x["train_img_s"], 1) for x in s],
                   spike_rate=s[0].get("spike_rate"))
        row["train_gflops"] = row["train_img_s"] * s[0]["train_flops_per_img"] / 1e9
        row["train_peak_fraction"] = row["train_gflops"] / peak
        row["infer_gflops"] = row["infer_img_s"] * s[0]["infer_flops_per_img"] / 1e9
        row["infer_peak_fraction"] = row["infer_gflops"] / peak
        if t:
            row.update(torch_train_img_s=med(t, "train_img_s"),
                       torch_infer_img_s=med(t, "infer_img_s"),
                       torch_peak_rss_mb=med(t, "peak_rss_mb"),
                       torch_train_img_s_runs=[round(x["train_img_s"], 1) for x in t])
            row["train_speedup"] = row["train_img_s"] / row["torch_train_img_s"]
            row["infer_speedup"] = row["infer_img_s"] / row["torch_infer_img_s"]
            row["rss_ratio"] = row["peak_rss_mb"] / row["torch_peak_rss_mb"]
            row["torch_versions"] = f"torch {t[0]['torch']}, spikingjelly {t[0]['spikingjelly']}"
        rows.append(row)

    jit = {}
    if not args.no_jit:
        with tempfile.TemporaryDirectory() as cache:
            env = {"NUMBA_CACHE_DIR": cache}
            small = ["--T", "2", "--batch-size", "4", "--first-step-only"]
            cold, err = _run(me + small, env)
            warm, err2 = _run(me + small, env)
            if cold and warm:
                jit = dict(cold_start_s=cold["first_step_s"], warm_start_s=warm["first_step_s"])
            else:
                errors.append(("jit", err or err2))

    result = dict(model=args.model, machine=dict(cpus=os.cpu_count(), machine=platform.machine(),
                                                 python=platform.python_version()),
                  sgemm_gflops=peak, input=s[0]["input"] if rows else None,
                  weights=args.weights, configs=rows,
                  jit=jit, env_note=env_note, errors=errors,
                  command=("python examples/benchmarks/bench_train.py "
                           + " ".join(argv or sys.argv[1:])))
    _print(result)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _print(r):
    print(f"model {r['model']} | {r['machine']['cpus']} CPUs | numpy sgemm "
          f"{r['sgemm_gflops']:.0f} GFLOP/s | input: {r['input']} | weights: "
          f"{r.get('weights') or 'fresh initialisation'}")
    if r["env_note"]:
        print(f"note: {', '.join(r['env_note'])} set in the environment")
    head = ["T", "B", "spike rate", "train img/s", "GFLOP/s", "of peak", "infer img/s", "RSS MB",
            "torch train", "torch infer", "torch RSS", "speedup", "RSS ratio"]
    print("  ".join(f"{h:>11}" for h in head))
    for c in r["configs"]:
        vals = [c["T"], c["batch"], c.get("spike_rate"), c["train_img_s"], c["train_gflops"],
                c["train_peak_fraction"], c["infer_img_s"], c["peak_rss_mb"],
                c.get("torch_train_img_s"), c.get("torch_infer_img_s"),
                c.get("torch_peak_rss_mb"), c.get("train_speedup"), c.get("rss_ratio")]
        cells = [f"{'-':>11}" if v is None else f"{v:>11.2f}" if isinstance(v, float)
                 else f"{v:>11}" for v in vals]
        if c.get("spike_rate") is not None:
            cells[2] = f"{c['spike_rate']:>11.4f}"
        print("  ".join(cells))
    if r["jit"]:
        print(f"JIT: cold start {r['jit']['cold_start_s']:.1f} s, warm start "
              f"{r['jit']['warm_start_s']:.1f} s (process start to first training step)")
    for e in r["errors"]:
        print("error:", e, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
