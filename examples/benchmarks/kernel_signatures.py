"""Record which kernels each built-in model calls, with what argument types and how long each
takes to compile, into ``snnlite/signatures.json`` (read by :mod:`snnlite._precompile`).

    python examples/benchmarks/kernel_signatures.py            # every built-in model
    python examples/benchmarks/kernel_signatures.py wrn20_1    # some

For each model, in a fresh process with an empty kernel cache (so that the seconds are
compile times, on this machine): a training step and an evaluation, each with direct and
TTFS input, on two random images. Kernels the evaluation calls besides the training
kernels form its "eval" phase, which precompile does not wait for. Rerun it after changing
a kernel's arguments or the kernels a layer calls; ``tests/test_precompile.py`` fails
until then.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def workload(model):
    """[(phase, kernel, argument types as JSON, seconds)] of one model, in this process."""
    import numpy as np

    from snnlite import encoding, losses, models, optim
    from snnlite._precompile import recording
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 32, 32), dtype=np.float32)
    y = np.array([0, 1])
    net = models.build(model)
    opt = optim.SGD(net.parameters(), lr=0.01)
    with recording() as train:
        for code in (encoding.direct(x, 2), encoding.ttfs(x, 2)):
            z = net.forward(code)
            _, g = losses.cross_entropy(z, y)
            net.backward(g)
            opt.step()
    net.eval()
    with recording() as evaluate:
        for code in (encoding.direct(x, 2), encoding.ttfs(x, 2)):
            net.forward(code)
    return [(phase, name, sig, s) for phase, seen in (("train", train), ("eval", evaluate))
            for (name, sig), s in seen.items() if None not in sig]


def record(model_names, path):
    """Rewrite ``path`` with ``model_names`` recorded afresh (the others kept as they are)."""
    import numba

    from snnlite._precompile import load
    per = {m: {ph: [list(j) for j in jobs] for ph, jobs in phases.items()}
           for m, phases in (load(path).items() if Path(path).exists() else ())}
    for m in model_names:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            out = subprocess.run([sys.executable, __file__, "--workload", m], env=env,
                                 check=True, capture_output=True, text=True).stdout
        per[m] = {}
        for phase, name, sig, seconds in json.loads(out.splitlines()[-1]):
            per[m].setdefault(phase, []).append([name, sig, round(seconds, 2)])
        print(f"{m}: " + ", ".join(f"{ph} {len(jobs)} kernels, {sum(j[2] for j in jobs):.1f} s"
                                   for ph, jobs in per[m].items()))
    kernels, index, table = [], {}, {}
    for m in sorted(per):
        table[m] = {}
        for phase, jobs in per[m].items():
            for name, sig, seconds in jobs:
                key = json.dumps([name, sig])
                if key not in index:
                    index[key] = len(kernels)
                    kernels.append([name, sig, seconds])
                table[m].setdefault(phase, []).append(index[key])
    text = (f'{{"numba": {json.dumps(numba.__version__)},\n"kernels": [\n'
            + ",\n".join(json.dumps(k) for k in kernels) + '\n],\n"models": {\n'
            + ",\n".join(f"{json.dumps(m)}: {json.dumps(ph)}" for m, ph in table.items())
            + "\n}}\n")  # one kernel per line
    json.loads(text)
    Path(path).write_text(text)


def main(argv=None):
    from snnlite.models import MODELS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", help="default: every built-in model")
    p.add_argument("--out", default=str(REPO / "snnlite" / "signatures.json"))
    p.add_argument("--workload", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.workload:
        print(json.dumps(workload(args.workload)))
        return 0
    record(args.models or sorted(MODELS), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
