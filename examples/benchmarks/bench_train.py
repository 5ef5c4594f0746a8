"""Training and inference throughput of snnlite against PyTorch + SpikingJelly, eager and under
torch.compile, with a per-kernel breakdown of a step, thread scaling and JIT start-up.

    python examples/benchmarks/bench_train.py                  # the default comparison
    SNNLITE_TORCH_PYTHON=/path/to/venv/bin/python python examples/benchmarks/bench_train.py \\
        --json examples/benchmarks/results/bench_train.json

``cifarnet_small`` at T=8 B=32 and T=4 B=64 by default, each with the committed teacher's
weights (``examples/runs/teacher-cifarnet_small-T4/last.h5``: the firing rates a real
training run spends its time at, the headline) and freshly initialised (which fires far
less, so that snnlite's event paths have less to do); PyTorch's speed does not depend on
firing. In one run it prints:

* per (weights, T, batch): the spike rate, training img/s (forward + cross-entropy +
  backward + SGD step) and inference img/s (eval forward) of snnlite, of PyTorch +
  SpikingJelly eager and of the same model under ``torch.compile``, the speed-ups against
  both and the peak RSS ratio. The torch reference runs with ``--torch-python`` (or
  ``$SNNLITE_TORCH_PYTHON``), an interpreter with torch and spikingjelly; without one it is
  skipped with a note.
* a per-kernel breakdown of one training step (and one inference step) with each set of
  weights: ms per kernel class and the GFLOP/s it achieved (FLOPs the path really executes:
  the event paths count nonzero inputs only) against the sgemm peak, or the GB/s of the
  arrays it read and wrote against the copy bandwidth, both measured in the same process.
* thread scaling: training and inference img/s at 1 .. N workers (``SNNLITE_NUM_THREADS``)
  and the scaling efficiency.
* the JIT start, from process start to the end of the first training step: cold (an empty
  kernel cache) with the kernels compiled on first call one after another (a script calling
  the model directly), and as ``snnlite train`` / :class:`snnlite.train.Trainer` do it,
  compiled first on every core (:func:`snnlite._precompile.precompile`); warm (cached
  kernels); and numba's own floor on the same machine: a one-kernel program's start with
  that kernel cached.

Each measurement runs in a fresh process; snnlite and the references alternate and medians
over ``--repeats`` are quoted. If ``OPENBLAS_CORETYPE`` or ``OPENBLAS_L2_SIZE`` is set they
force an older OpenBLAS kernel: unset them for the benchmark command alone (``env -u
OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...``); the output notes them when set.
Inputs are real CIFAR-10 images from ``$SNNLITE_DATA/cifar10-mini.npz`` when present.
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
REPO = HERE.parents[1]
TEACHER = REPO / "examples" / "runs" / "teacher-cifarnet_small-T4" / "last.h5"


def _images(batch_size):
    from snnlite import bench
    path = Path(os.environ.get("SNNLITE_DATA", REPO.parent / "shared" / "data"))
    return bench.bench_images(batch_size, path / "cifar10-mini.npz")


def numba_floor():
    """A one-kernel numba program's start: process start to the end of the kernel's first
    call (cached after the first run); the least any numba program waits."""
    t_start = float(os.environ.get("SNNLITE_BENCH_T0", time.time()))
    import numba
    import numpy as np

    @numba.njit(cache=True)
    def axpy(a, x, y):
        for i in range(x.size):
            y[i] += a * x[i]

    axpy(np.float32(2), np.ones(8, np.float32), np.zeros(8, np.float32))
    print(json.dumps({"first_step_s": time.time() - t_start}))
    return 0


def worker(args):
    """One measurement in this process; prints one JSON line."""
    t_start = float(os.environ.get("SNNLITE_BENCH_T0", time.time()))
    from snnlite import bench, data, encoding, losses, models, optim

    weights = None if args.weights in (None, "fresh") else args.weights
    images = _images(args.batch_size)
    if args.first_step_only:
        if args.precompile:
            from snnlite._precompile import precompile
            precompile(args.model, progress=False)
        x, y, _ = images
        model = models.build(args.model)
        opt = optim.SGD(model.parameters(), lr=0.01)
        z = model.forward(encoding.direct(data.normalize(x, data.CIFAR10_MEAN,
                                                         data.CIFAR10_STD), args.T))
        _, g = losses.cross_entropy(z, y)
        model.backward(g)
        opt.step()
        print(json.dumps({"first_step_s": time.time() - t_start}), flush=True)
        if args.precompile:  # the evaluation's kernels: done before the next measurement
            from snnlite._precompile import wait
            wait()
        return 0
    if args.profile:
        out = bench.profile(args.model, args.T, args.batch_size, args.steps, images, weights)
        out.update(sgemm_gflops=bench.sgemm_gflops(), memory_gbs=bench.memory_gbs())
        print(json.dumps(out))
        return 0
    print(json.dumps(bench.measure(args.model, args.T, args.batch_size, args.steps,
                                   args.warmup, images, weights)))
    return 0


def _run(cmd, env=None):
    env = dict(os.environ, **(env or {}), SNNLITE_BENCH_T0=repr(time.time()))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    return json.loads(p.stdout.strip().splitlines()[-1]), None


def _med(rs, k):
    import numpy as np
    vals = [r[k] for r in rs if r and r.get(k) is not None]
    return float(np.median(vals)) if vals else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cifarnet_small")
    p.add_argument("--configs", default="8x32,4x64", help="TxB,TxB,... (default: %(default)s)")
    p.add_argument("--weights", nargs="+", default=None,
                   help="checkpoints to measure snnlite at, or 'fresh' for a fresh "
                        "initialisation (default: the committed teacher and fresh)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds (medians)")
    p.add_argument("--torch-python", default=os.environ.get("SNNLITE_TORCH_PYTHON"),
                   help="interpreter with torch + spikingjelly for the reference "
                        "(default: $SNNLITE_TORCH_PYTHON)")
    p.add_argument("--no-compile", action="store_true",
                   help="skip the torch.compile reference (eager only)")
    p.add_argument("--threads", default=None,
                   help="worker counts for the scaling table, e.g. 1,2 (default: 1 and every "
                        "power of two up to the CPU count, and the CPU count; 'none' skips)")
    p.add_argument("--no-profile", action="store_true", help="skip the per-kernel breakdown")
    p.add_argument("--no-jit", action="store_true", help="skip the cold/warm start figures")
    p.add_argument("--json", default=None, help="also write the results here")
    # worker mode
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--first-step-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--precompile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--numba-floor", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--profile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--T", type=int, default=8, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.numba_floor:
        return numba_floor()
    if args.worker:
        args.weights = args.weights[0] if args.weights else None
        return worker(args)

    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",")]
    if args.weights is None:
        args.weights = ([str(TEACHER)] if args.model == "cifarnet_small" and TEACHER.exists()
                        else []) + ["fresh"]
    weights = [w if w == "fresh" else str(Path(w).resolve()) for w in args.weights]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = _thread_counts(args.threads, cpus)
    env_note = [k for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ]
    notes = []
    me = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model", args.model,
          "--steps", str(args.steps), "--warmup", str(args.warmup)]
    refs = {}
    if not args.torch_python:
        notes.append("PyTorch reference skipped: no --torch-python or $SNNLITE_TORCH_PYTHON "
                     "(an interpreter with torch and spikingjelly)")
    elif args.model not in ("cifarnet_small", "wrn20_1"):
        notes.append(f"PyTorch reference skipped: it builds cifarnet_small and wrn20_1, not "
                     f"{args.model}")
    else:
        ref = [args.torch_python, str(HERE / "torch_reference.py"), "--model", args.model,
               "--steps", str(args.steps), "--warmup", str(args.warmup + 1)]
        refs["eager"] = ref
        if not args.no_compile:
            refs["compiled"] = ref + ["--compile"]

    runs = {}  # (framework, weights or None, T, B) -> [results]
    errors = []

    def record(key, cmd, env=None):
        res, err = _run(cmd, env)
        runs.setdefault(key, []).append(res)
        if err:
            errors.append((key, err))

    for r in range(args.repeats):
        for T, B in configs:
            size = ["--T", str(T), "--batch-size", str(B)]
            for w in weights:
                record(("snnlite", w, T, B), me + size + ["--weights", w])
            for name, cmd in refs.items():
                record((name, None, T, B), cmd + size)
        print(f"repeat {r + 1}/{args.repeats} done", file=sys.stderr, flush=True)

    rows = []
    for T, B in configs:
        ref = {name: [x for x in runs.get((name, None, T, B), []) if x] for name in refs}
        for w in weights:
            s = [x for x in runs.get(("snnlite", w, T, B), []) if x]
            if not s:
                continue
            row = dict(weights=w, T=T, batch=B, spike_rate=s[0]["spike_rate"],
                       train_img_s=_med(s, "train_img_s"), infer_img_s=_med(s, "infer_img_s"),
                       peak_rss_mb=_med(s, "peak_rss_mb"),
                       train_img_s_runs=[round(x["train_img_s"], 1) for x in s],
                       train_flops_per_img=s[0]["train_flops_per_img"])
            for name, rs in ref.items():
                if rs:
                    row[f"{name}_train_img_s"] = _med(rs, "train_img_s")
                    row[f"{name}_infer_img_s"] = _med(rs, "infer_img_s")
                    row[f"{name}_peak_rss_mb"] = _med(rs, "peak_rss_mb")
                    row[f"{name}_train_img_s_runs"] = [round(x["train_img_s"], 1) for x in rs]
                    row[f"train_speedup_vs_{name}"] = _ratio(row["train_img_s"],
                                                             row[f"{name}_train_img_s"])
                    row[f"infer_speedup_vs_{name}"] = _ratio(row["infer_img_s"],
                                                             row[f"{name}_infer_img_s"])
                    row["torch_versions"] = (f"torch {rs[0]['torch']}, spikingjelly "
                                             f"{rs[0]['spikingjelly']}")
            row["rss_ratio_vs_eager"] = _ratio(row["peak_rss_mb"], row.get("eager_peak_rss_mb"))
            rows.append(row)

    profiles = []
    if not args.no_profile:
        T, B = configs[0]
        for w in weights:
            res, err = _run(me + ["--profile", "--T", str(T), "--batch-size", str(B),
                                  "--weights", w])
            if res:
                profiles.append(dict(weights=w, T=T, batch=B, **res))
            else:
                errors.append((("profile", w, T, B), err))

    scaling = []
    if threads:
        T, B = configs[0]
        w = weights[0]
        per = {k: [] for k in threads}
        for r in range(args.repeats):
            for k in threads:
                res, err = _run(me + ["--T", str(T), "--batch-size", str(B), "--weights", w],
                                {"SNNLITE_NUM_THREADS": str(k)})
                per[k].append(res)
                if err:
                    errors.append((("threads", k), err))
        base = None
        for k in threads:
            rs = [x for x in per[k] if x]
            if not rs:
                continue
            tr, inf = _med(rs, "train_img_s"), _med(rs, "infer_img_s")
            if base is None:
                base = (k, tr, inf)
            scaling.append(dict(workers=k, weights=w, T=T, batch=B, train_img_s=tr,
                                infer_img_s=inf,
                                train_efficiency=tr / base[1] * base[0] / k,
                                infer_efficiency=inf / base[2] * base[0] / k))

    jit = {}
    if not args.no_jit:
        small = ["--T", "2", "--batch-size", "4", "--first-step-only"]
        runs = {}
        for key, extra in (("cold_start_s", []), ("cold_start_precompiled_s", ["--precompile"])):
            with tempfile.TemporaryDirectory() as cache:
                env = {"NUMBA_CACHE_DIR": cache}
                runs[key] = _run(me + small + extra, env)
                if key == "cold_start_s":
                    runs["warm_start_s"] = _run(me + small, env)
        with tempfile.TemporaryDirectory() as cache:  # the first run fills the cache
            _run([sys.executable, __file__, "--numba-floor"], {"NUMBA_CACHE_DIR": cache})
            runs["numba_floor_s"] = _run([sys.executable, __file__, "--numba-floor"],
                                         {"NUMBA_CACHE_DIR": cache})
        for key, (r, err) in runs.items():
            if r:
                jit[key] = r["first_step_s"]
            else:
                errors.append(("jit", key, err))

    for d in rows + profiles + scaling:  # checkpoints in the repository by relative path
        if d["weights"] != "fresh" and Path(d["weights"]).is_relative_to(REPO):
            d["weights"] = os.path.relpath(d["weights"], REPO)
    from snnlite import _blas
    from snnlite.bench import memory_gbs, sgemm_gflops
    result = dict(model=args.model,
                  machine=dict(cpus=cpus, machine=platform.machine(), cpu=_cpu_name(),
                               python=platform.python_version(), blas_cores=_blas.blas_cores()),
                  sgemm_gflops=sgemm_gflops(), memory_gbs=memory_gbs(),
                  input=_images(1)[2], configs=rows, profiles=profiles, scaling=scaling,
                  jit=jit, env_note=env_note, notes=notes, errors=errors,
                  command=("python examples/benchmarks/bench_train.py "
                           + " ".join(argv if argv is not None else sys.argv[1:])))
    _print(result)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(path)
    return 0


def _thread_counts(spec, cpus):
    if spec == "none":
        return []
    if spec:
        return [int(v) for v in spec.split(",")]
    ks, k = [], 1
    while k < cpus:
        ks.append(k)
        k *= 2
    return ks + [cpus]


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _label(w):
    if w == "fresh":
        return "fresh initialisation"
    return os.path.relpath(w, REPO) if os.path.isabs(w) else w


def _cells(vals, width=9):
    out = []
    for v in vals:
        if v is None:
            out.append(f"{'-':>{width}}")
        elif isinstance(v, float):
            out.append(f"{v:>{width}.{1 if abs(v) >= 10 else 2}f}")
        else:
            out.append(f"{v!s:>{width}}")
    return "  ".join(out)


def _print(r):
    m = r["machine"]
    print(f"model {r['model']} | {m['cpus']} CPUs ({m['cpu']}) | numpy sgemm "
          f"{r['sgemm_gflops']:.0f} GFLOP/s | copy {r['memory_gbs']:.0f} GB/s | OpenBLAS "
          f"{'/'.join(sorted(set(m['blas_cores'])))} | input: {r['input']}")
    if r["env_note"]:
        print(f"note: {', '.join(r['env_note'])} set in the environment (older OpenBLAS "
              "kernels); unset them for the benchmark")
    for n in r["notes"]:
        print("note:", n)
    if r["configs"]:
        versions = next((c["torch_versions"] for c in r["configs"] if "torch_versions" in c),
                        None)
        print("\nthroughput, img/s (medians)" + (f"; reference: {versions}" if versions else ""))
        print(_cells(["T", "B", "firing", "train", "eager", "compiled", "x eager",
                      "x compil", "infer", "eager", "compiled", "x compil", "RSS MB",
                      "RSS x"]) + "  weights")
        for c in r["configs"]:
            rate = None if c["spike_rate"] is None else f"{c['spike_rate']:.3f}"
            print(_cells([c["T"], c["batch"], rate, c["train_img_s"],
                          c.get("eager_train_img_s"), c.get("compiled_train_img_s"),
                          c.get("train_speedup_vs_eager"), c.get("train_speedup_vs_compiled"),
                          c["infer_img_s"], c.get("eager_infer_img_s"),
                          c.get("compiled_infer_img_s"), c.get("infer_speedup_vs_compiled"),
                          c["peak_rss_mb"], c.get("rss_ratio_vs_eager")])
                  + "  " + _label(c["weights"]))
    for pr in r["profiles"]:
        peak, bw = pr["sgemm_gflops"], pr["memory_gbs"]
        print(f"\nper-kernel breakdown, T={pr['T']} B={pr['batch']}, {_label(pr['weights'])} "
              f"(firing {pr['spike_rate']:.3f}); sgemm {peak:.0f} GFLOP/s, copy {bw:.0f} GB/s "
              "in the same process")
        for phase in ("train", "infer"):
            print(f"  {phase} step" + " " * 20 + _cells(["ms", "GFLOP/s", "of peak", "GB/s",
                                                         "of copy"]))
            for k, v in pr[phase].items():
                ms = v["ms"]
                gf = v["gflop"] / ms * 1e3 if v["gflop"] and ms > 0 else None
                gb = v["gb"] / ms * 1e3 if v["gb"] and ms > 0 else None
                print(f"    {k:<28}" + _cells([ms, gf, gf / peak if gf else None, gb,
                                                gb / bw if gb else None]))
    if r["scaling"]:
        s0 = r["scaling"][0]
        print(f"\nthread scaling, T={s0['T']} B={s0['batch']}, {_label(s0['weights'])}")
        print("  " + _cells(["workers", "train", "effic.", "infer", "effic."]))
        for s in r["scaling"]:
            print("  " + _cells([s["workers"], s["train_img_s"], s["train_efficiency"],
                                 s["infer_img_s"], s["infer_efficiency"]]))
    if r["jit"]:
        j = {k: f"{v:.1f} s" for k, v in r["jit"].items()}
        print(f"\nJIT, process start to the end of the first training step: cold "
              f"{j.get('cold_start_s', '-')} (kernels compiled on first call), "
              f"{j.get('cold_start_precompiled_s', '-')} compiled first on every core (as "
              f"snnlite train does); warm {j.get('warm_start_s', '-')} (numba's own floor "
              f"here: {j.get('numba_floor_s', '-')})")
    for e in r["errors"]:
        print("error:", e, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
