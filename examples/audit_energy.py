"""Direct vs TTFS input on one trained SNN: exact spikes, synops, MACs and energy estimates.

    python examples/audit_energy.py runs/x/best.h5 [--samples 64] [--target cmos45_int8]
    python examples/audit_energy.py --quick      # first trains cifarnet_small for 1 epoch

The data default to ``$SNNLITE_DATA/cifar10-mini.npz`` (``--data`` to change). Each step of
the audit is written out: compile the model for events, encode, run, check against the dense
path, summarise. ``snnlite audit CKPT`` does the same from the command line.
"""
import argparse
import os
import tempfile

import numpy as np

from snnlite import data
from snnlite.encoding import model_input
from snnlite.event import compile_model, dense_counts
from snnlite.event.counts import Counts
from snnlite.event.report import format_table, summarize
from snnlite.io.checkpoint import load_model
from snnlite.io.config import TrainConfig
from snnlite.train import Trainer


def quick_checkpoint(data_path, out_dir):
    """Train cifarnet_small (T=4) for one epoch on the mini subset; returns best.h5."""
    train, test = data.load_mini(data_path)
    cfg = TrainConfig(model="cifarnet_small", T=4, epochs=1, batch_size=32)
    Trainer(cfg, out_dir, train, test).fit()
    return os.path.join(out_dir, "best.h5")


def audit(ckpt, data_path, samples=64, target="cmos45_fp32", batch_size=16, check=True):
    model, cfg = load_model(ckpt)
    model.astype(np.float64).eval()                    # exact float64 copies of the weights
    net = compile_model(model, dtype=np.float64)       # BN and pooling folded; exact maths
    print(net)
    _, test = data.load_mini(data_path)
    x = test.images[:samples].astype(np.float32) / np.float32(255)   # [N, 3, 32, 32] in [0, 1]
    y = test.labels[:samples]
    results = {}
    for enc in ("direct", "ttfs"):
        parts, logits = [], []
        for i in range(0, len(x), batch_size):
            inp = model_input(x[i:i + batch_size], enc, cfg.T, test.mean, test.std)  # [T,B,..]
            res = net.run(inp)                          # step by step, events only
            if check:                                   # the dense forward counts the same
                ref, _, _ = dense_counts(net, model, inp)
                assert res.counts.mismatches(ref) == [], res.counts.mismatches(ref)
            parts.append(res.counts)
            logits.append(res.logits)
        results[enc] = summarize(Counts.concat(parts), target, enc, np.concatenate(logits), y,
                                 net=net)          # compute and memory energy
    print(format_table(results, target, f"{ckpt}: direct vs TTFS, T={cfg.T}"))
    d, t = results["direct"]["total"], results["ttfs"]["total"]
    print(f"TTFS / direct: synops {t['synops'] / d['synops']:.3f}, "
          f"energy estimate {t['energy_pj'] / d['energy_pj']:.3f}"
          + (" (counts checked against the dense path)" if check else ""))
    return results


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", default=None)
    p.add_argument("--quick", action="store_true",
                   help="no checkpoint: train cifarnet_small for 1 epoch on the mini subset")
    p.add_argument("--data", default=os.path.join(os.environ.get("SNNLITE_DATA", "../shared/data"),
                                                   "cifar10-mini.npz"))
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--target", default="cmos45_fp32")
    p.add_argument("--no-check", action="store_true", help="skip the dense-path check")
    args = p.parse_args()
    if args.checkpoint is None and not args.quick:
        p.error("give a checkpoint, or --quick to train one first")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or quick_checkpoint(args.data, tmp)
        audit(ckpt, args.data, args.samples, args.target, check=not args.no_check)
