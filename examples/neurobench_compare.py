"""snnlite's NeuroBench metrics against NeuroBench's own implementation, on the same model
and the same encoded images.

    SNNLITE_NEUROBENCH_PYTHON=~/venv-nb/bin/python \\
        python examples/neurobench_compare.py runs/x/best.h5 --samples 16 --encoding ttfs
    SNNLITE_NEUROBENCH_PYTHON=~/venv-nb/bin/python python examples/neurobench_compare.py --tiny

snnlite computes the metrics without torch (:mod:`snnlite.event.neurobench`); the same
weights and inputs go to ``examples/neurobench_twin.py``, which rebuilds the model in
PyTorch and runs NeuroBench's ``Benchmark`` under the Python of a virtual environment with
torch, snntorch and neurobench. Both sides compute in float64. ``--tiny`` uses a small
hand-sized network whose weights and inputs are dyadic fractions, so that every sum is
exact in both and the two must agree to the last digit. Prints both and the differences.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from snnlite import encoding, nn
from snnlite.encoding import model_input
from snnlite.event.neurobench import neurobench_metrics, static_metrics
from snnlite.nn.graph import trace

TWIN = Path(__file__).with_name("neurobench_twin.py")


def spec_from_graph(model, input_shape):
    """The layer list the twin rebuilds, from the traced graph (a chain of layers)."""
    g = trace(model, tuple(input_shape))
    spec, prev = [], g.input.name
    for n in g.nodes[1:]:
        if n.inputs != (prev,):
            raise TypeError(f"neurobench twin: {n.name!r} does not follow {prev!r}: only "
                            "chains of layers are rebuilt (no residual joins)")
        m, L = n.module, {"name": n.name, "kind": n.kind}
        if n.kind == "conv":
            L.update({"in": m.weight.data.shape[1], "out": m.weight.data.shape[0],
                      "k": m.weight.data.shape[2], "stride": m.stride, "padding": m.padding,
                      "bias": m.bias is not None})
        elif n.kind == "linear":
            L.update({"in": m.weight.data.shape[1], "out": m.weight.data.shape[0],
                      "bias": m.bias is not None})
        elif n.kind == "bn":
            L.update({"features": m.num_features, "eps": m.eps,
                      "dims": 2 if isinstance(m, nn.BatchNorm2d) else 1})
        elif n.kind == "lif":
            L.update({"tau": m.tau, "v_threshold": m.v_threshold, "v_reset": m.v_reset,
                      "decay_input": m.decay_input})
        elif n.kind in ("avgpool", "maxpool"):
            L["k"] = m.kernel_size
        elif n.kind not in ("flatten", "mean"):
            raise TypeError(f"neurobench twin: layer {n.name!r} of kind {n.kind!r} is not "
                            "supported")
        spec.append(L)
        prev = n.name
    return spec


def export_job(model, batches, labels, path):
    """Write the twin's job file (see neurobench_twin.py) for ``batches`` [T, B, C, H, W]."""
    x = np.concatenate([np.asarray(b, np.float64).transpose(1, 0, 2, 3, 4) for b in batches])
    arrays = {f"param/{k}": np.asarray(v) for k, v in model.state_dict().items()}
    np.savez(path, spec=json.dumps(spec_from_graph(model, batches[0].shape[2:])), x=x,
             y=np.concatenate(labels), batch_size=batches[0].shape[1], **arrays)


def run_twin(job, python=None):
    """NeuroBench's results from the twin; None (and why) when no such Python is set."""
    python = python or os.environ.get("SNNLITE_NEUROBENCH_PYTHON")
    if not python:
        return None, "SNNLITE_NEUROBENCH_PYTHON not set"
    r = subprocess.run([python, str(TWIN), str(job)], capture_output=True, text=True)
    if r.returncode:
        return None, f"{python} {TWIN.name} failed: {r.stderr.strip().splitlines()[-1:]}"
    return json.loads(r.stdout.strip().splitlines()[-1]), None


def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def compare(ours, theirs):
    """{metric: (snnlite, neurobench, relative difference)} over NeuroBench's metrics.
    (NeuroBench averages activation sparsity and accuracy over batches, weighted by batch
    size, so those two can differ in the last bits.)"""
    a, b = flat(ours), flat(theirs)
    rows = {}
    for k in sorted(set(a) & set(b)):
        x, y = float(a[k]), float(b[k])
        rows[k] = (x, y, 0.0 if x == y else abs(x - y) / max(abs(x), abs(y)))
    return rows


def tiny_model(rng):
    """conv3x3(2->4, pad 1)+BN+LIF, avgpool2, conv3x3(4->4)+BN+LIF, maxpool2, flatten,
    linear(4->3, bias), mean; parameters multiples of 1/4 (some zero), BN exact
    (var + eps = 1)."""
    m = nn.Sequential(nn.Conv2d(2, 4, 3, 1, 1, bias=False, dtype=np.float64),
                      nn.BatchNorm2d(4, dtype=np.float64), nn.LIF(),
                      nn.AvgPool2d(2),
                      nn.Conv2d(4, 4, 3, 1, 1, bias=False, dtype=np.float64),
                      nn.BatchNorm2d(4, dtype=np.float64), nn.LIF(), nn.MaxPool2d(2),
                      nn.Flatten(), nn.Linear(4 * 2 * 2, 3, dtype=np.float64), nn.TimeMean())
    for p in m.parameters():
        p.data[...] = rng.integers(-8, 9, p.data.shape) / 4.0
    for name, mod in m.named_modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean[...] = rng.integers(-2, 3, mod.num_features) / 4.0
            mod.eps = 2.0 ** -10                    # var + eps == 1 exactly, in float32 too
            mod.running_var[...] = 1.0 - mod.eps
    return m.eval()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", help="a chain model checkpoint (cifarnet_small)")
    p.add_argument("--tiny", action="store_true", help="a small exact network instead")
    p.add_argument("--data", default=os.path.join(os.environ.get("SNNLITE_DATA", "../shared/data"),
                                                   "cifar10-mini.npz"))
    p.add_argument("--encoding", default="ttfs", choices=["direct", "ttfs", "latency"])
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--python", default=None, help="the NeuroBench venv's Python "
                   "(default $SNNLITE_NEUROBENCH_PYTHON)")
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    tiny = a.tiny or a.checkpoint is None
    if tiny:
        model, T = tiny_model(rng), a.T
        x = (rng.integers(0, 17, (a.samples, 2, 8, 8)) / 16.0)
        y = rng.integers(0, 3, a.samples)
        mean = std = None  # raw dyadic values, no mean/std
    else:
        from snnlite import data
        from snnlite.io.checkpoint import load_model
        model, cfg = load_model(a.checkpoint)
        T = a.T or cfg.T
        _, test = data.load_mini(a.data)
        x = test.images[:a.samples].astype(np.float32) / np.float32(255)
        y = test.labels[:a.samples]
        mean, std = test.mean, test.std

    def enc(im):
        if tiny and a.encoding == "direct":
            return encoding.direct(im, T)
        return model_input(im, a.encoding, T, mean, std)

    batches, labels = [], []
    for i in range(0, len(x), a.batch_size):
        batches.append(np.ascontiguousarray(np.asarray(enc(x[i:i + a.batch_size]), np.float64)))
        labels.append(y[i:i + a.batch_size])
    with tempfile.TemporaryDirectory() as tmp:
        job = Path(tmp) / "job.npz"
        export_job(model, batches, labels, job)       # the weights as stored
        theirs, why = run_twin(job, a.python)
    static = static_metrics(model)                    # footprint of the model as stored
    model.astype(np.float64).eval()                   # then both sides compute in float64
    ours = neurobench_metrics(model, batches, labels)
    ours.update({k: static[k] for k in ("footprint", "parameter_count", "connection_sparsity")})
    print("snnlite:   ", json.dumps(ours))
    if theirs is None:
        print(f"NeuroBench: skipped ({why})")
        return ours, None
    print("NeuroBench:", json.dumps(theirs))
    rows = compare(ours, theirs)
    for k, (u, v, d) in rows.items():
        print(f"  {k:40s} {u:>16.6g} {v:>16.6g}  rel. diff {d:.2e}")
    return ours, theirs


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
