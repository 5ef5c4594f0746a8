"""Direct-to-event transfer on CIFAR-10: the whole study, end to end.

Rows: the teacher on direct input (at its own T and, if different, at the student's), the
same model on TTFS input (the baseline), then TSF, SKD and the divergence ablations
(reverse KL, MSE) with the same epochs, seed and schedule.
Writes ``<out>/results.json`` and ``<out>/results.md`` (accuracy, KL(teacher || row) at
temperature 1, gap to the teacher, wall time, each transfer's Pearson r between KL and
gap over its epochs and r pooled over all of them; then, per row, the exact synops, MACs and
estimated energy per image from the event-driven engine on the first ``--energy-samples``
test images); each transfer keeps its own run folder ``<out>/<method>/``.

Full scale (train the teacher first, e.g. ``snnlite train --T 8 --epochs 60 --out
runs/teacher``; the transfers take hours each on a CPU):

    python examples/d2e_cifar10.py --teacher runs/teacher/best.h5 --epochs 10 --out runs/d2e

Quick check of the pipeline (a few minutes on 2 cores): trains a small teacher on the
1,000-image subset ``$SNNLITE_DATA/cifar10-mini.npz``, then transfers with T=4 on a few
hundred images. Numbers from so little data and so few epochs do not measure the method.

    python examples/d2e_cifar10.py --quick --out runs/d2e-quick

Re-running with the same ``--out`` continues unfinished runs and reuses finished ones.
"""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from snnlite import data, losses
from snnlite.io.checkpoint import atomic_write, load_model
from snnlite.io.config import TrainConfig
from snnlite.train import Interrupted, Trainer, evaluate, subset
from snnlite.transfer import Transfer, TransferConfig, pearson

METHODS = ["tsf", "skd", "reverse_kl", "mse"]


def quick_teacher(out, train, test, progress=True):
    """Train a small direct-coded teacher (T=4) on the mini subset; returns its best.h5."""
    cfg = TrainConfig(T=4, epochs=4, batch_size=32, lr=0.05)
    Trainer(cfg, out, train, test, resume=True, progress=progress).fit()
    return out / "best.h5"


def add_energy(rows, checkpoints, test, samples, target="cmos45_fp32"):
    """Audit each row's model on its input over the first ``samples`` test images with the
    event-driven engine (float64, exact counts): per-image synops, MACs and energy
    estimate (``target`` table) go into the row. Returns {"target", "samples"}."""
    import numpy as np

    from snnlite.event.audit import audit
    from snnlite.event.energy import get_table

    table = get_table(target)
    n = min(samples, len(test))
    x = test.images[:n].astype(np.float32) / np.float32(255)
    for row, ckpt in zip(rows, checkpoints):
        model, _ = load_model(ckpt)
        res, _ = audit(model, x, test.labels[:n], test.mean, test.std, [row["input"]],
                       row["T"], table)
        tot = res[row["input"]]["total"]
        row.update(synops=tot["synops"], macs=tot["macs"], acs=tot["acs"],
                   firing_rate=tot["firing_rate"], energy_uj=tot["energy_pj"] * 1e-6)
    return {"target": table.as_dict(), "samples": n}


def run(teacher, out, train, test, epochs=10, T=8, batch_size=64, lr=None, seed=0,
        methods=METHODS, train_limit=None, test_limit=None, progress=True, log_every=0,
        energy_samples=1000):
    """Evaluate the direct and TTFS-baseline rows, run every transfer method, audit each
    row's spikes, synops and energy on ``energy_samples`` test images (0: skip), write
    ``results.json`` and ``results.md`` to ``out``; returns the results dict."""
    out = Path(out)
    model, tcfg = load_model(teacher)
    ts = subset(test, test_limit)
    t0 = time.monotonic()
    direct = evaluate(model, ts, tcfg.T, "direct", progress=progress)
    rows = [{"row": "direct", "input": "direct", "T": tcfg.T, "acc": direct["acc"],
             "best_acc": None, "kl": 0.0, "gap": 0.0, "pearson_kl_gap": None,
             "wall_s": round(time.monotonic() - t0, 1)}]
    # the teacher at the student's T too (like for like in steps), then on events
    for name, enc, steps in ([("direct", "direct", T)] if T != tcfg.T else []) + [
            ("TTFS baseline", "ttfs", T)]:
        t0 = time.monotonic()
        ev = evaluate(model, ts, steps, enc, progress=progress)
        rows.append({"row": name, "input": enc, "T": steps, "acc": ev["acc"],
                     "best_acc": None, "kl": losses.kl_forward(ev["logits"],
                                                               direct["logits"])[0],
                     "gap": direct["acc"] - ev["acc"], "pearson_kl_gap": None,
                     "wall_s": round(time.monotonic() - t0, 1)})
    runs = {}
    for method in methods:
        cfg = TransferConfig(teacher=str(teacher), method=method, T=T, epochs=epochs,
                             batch_size=batch_size, lr=lr, seed=seed,
                             train_limit=train_limit, test_limit=test_limit)
        res = runs[method] = Transfer(cfg, out / method, train, test, resume=True,
                                      progress=progress, log_every=log_every).fit()
        rows.append({"row": method.upper() if method in ("tsf", "skd") else method,
                     "input": "ttfs", "T": T, "acc": res["final_acc"],
                     "best_acc": res["best_acc"], "kl": res["final_kl"],
                     "gap": res["final_gap"], "pearson_kl_gap": res["pearson_kl_gap"],
                     "wall_s": res["wall_s"]})
    energy = None
    if energy_samples:
        ckpts = [teacher] * (len(rows) - len(methods)) + [out / m / "last.h5" for m in methods]
        energy = add_energy(rows, ckpts, ts, energy_samples)
    # every (KL, gap) point of every transfer; epoch 0 (the shared baseline) counted once
    points = [(h["kl"], h["gap"]) for i, res in enumerate(runs.values())
              for h in res["curve"] if i == 0 or h["epoch"] > 0]
    results = {"teacher": str(teacher), "model": tcfg.model, "dataset": tcfg.dataset,
               "train_images": len(subset(train, train_limit)), "test_images": len(ts),
               "epochs": epochs, "T": T, "teacher_T": tcfg.T, "batch_size": batch_size,
               "seed": seed, "rows": rows, "energy": energy,
               "pearson_kl_gap_pooled": pearson(*zip(*points)) if points else None,
               "pooled_points": len(points), "runs": runs}
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("results.json", json.dumps(results, indent=2) + "\n"),
                       ("results.md", markdown(results))):
        atomic_write(out / name, lambda p, text=text: Path(p).write_text(text))
    return results


def markdown(results):
    """The results as a markdown table."""
    r = results

    def pct(v):
        return "" if v is None else f"{100 * v:.2f}"

    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    head = (f"D2E transfer, {r['model']} on {r['dataset']}: {r['epochs']} epochs on "
            f"{r['train_images']} training images, tested on {r['test_images']}; teacher "
            f"T={r['teacher_T']}, student T={r['T']}, seed {r['seed']}.")
    cols = ["row", "input", "T", "top-1 %", "best %", "KL(teacher ‖ row)", "gap (pp)",
            "r(KL, gap)", "wall (s)"]
    e = r.get("energy")
    if e:
        cols += ["synops / image", "MACs / image", f"energy µJ / image ({e['target']['name']})"]
    lines = [head, "", "| " + " | ".join(cols) + " |", "|---" * len(cols) + "|"]
    for row in r["rows"]:
        cells = [row["row"], row["input"], row["T"], pct(row["acc"]), pct(row["best_acc"]),
                 num(row["kl"], ".4f"), pct(row["gap"]), num(row["pearson_kl_gap"], ".3f"),
                 row["wall_s"]]
        if e:
            cells += [f"{row['synops']:,.0f}", f"{row['macs']:,.0f}", f"{row['energy_uj']:.2f}"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    lines += ["", ("KL at temperature 1 on the test split; gap = teacher (direct) accuracy "
                   "minus the row's; r over the epochs of each transfer, epoch 0 included. "
                   "Wall time: evaluation for the teacher's rows (direct, TTFS baseline), "
                   "training steps for the transfers.")]
    if e:
        lines += ["", (f"Synops, MACs and energy: per-image means over the first {e['samples']} "
                       f"test images, counted exactly by the event-driven engine (float64); "
                       f"energy is an estimate from {e['target']['name']} "
                       f"({e['target']['source']}).")]
    if r.get("pearson_kl_gap_pooled") is not None:
        lines += ["", (f"Pooled over every epoch of every transfer ({r['pooled_points']} "
                       f"points, the shared epoch 0 once): r(KL, gap) = "
                       f"{r['pearson_kl_gap_pooled']:.3f}.")]
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default=None, help="direct-coded checkpoint (best.h5)")
    p.add_argument("--quick", action="store_true",
                   help="train a small teacher on the mini subset and run a tiny study")
    p.add_argument("--data", default=None, help="dataset path (default: $SNNLITE_DATA, "
                   "then the user cache; with --quick the mini subset)")
    p.add_argument("--epochs", type=int, default=None, help="default 10 (--quick: 2)")
    p.add_argument("--T", type=int, default=None, help="student T (default 8, --quick: 4)")
    p.add_argument("--batch-size", type=int, default=None, help="default 64 (--quick: 32)")
    p.add_argument("--lr", type=float, default=None, help="default 0.1 * batch / 256")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="+", default=METHODS, choices=METHODS)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--energy-samples", type=int, default=None,
                   help="test images audited for synops and energy (default 1000, --quick: "
                        "64; 0: skip)")
    p.add_argument("--out", default="runs/d2e")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--log-every", type=int, default=0,
                   help="with --no-progress: a status line every N training steps")
    a = p.parse_args(argv)
    if not (a.quick or a.teacher):
        p.error("give --teacher CHECKPOINT, or --quick")
    progress = not a.no_progress
    out = Path(a.out)
    if a.quick:
        path = a.data or os.path.join(os.environ.get("SNNLITE_DATA", "../shared/data"),
                                      "cifar10-mini.npz")
        train, test = data.load_mini(path)
        teacher = a.teacher or quick_teacher(out / "teacher", train, test, progress)
        defaults = {"epochs": 2, "T": 4, "batch_size": 32, "train_limit": 256,
                    "test_limit": 200, "energy_samples": 64}
    else:
        dataset = load_model(a.teacher)[1].dataset
        train, test = data.load_dataset(dataset, a.data)
        teacher = a.teacher
        defaults = {"epochs": 10, "T": 8, "batch_size": 64, "energy_samples": 1000}
    kw = {k: getattr(a, k) if getattr(a, k) is not None else defaults.get(k)
          for k in ("epochs", "T", "batch_size", "train_limit", "test_limit",
                    "energy_samples")}
    res = run(teacher, out, train, test, lr=a.lr, seed=a.seed, methods=a.methods,
              progress=progress, log_every=a.log_every, **kw)
    print((out / "results.md").read_text())
    return res


if __name__ == "__main__":
    try:
        main()
    except Interrupted as e:  # its checkpoints are saved: one line, no traceback
        sys.exit(f"d2e_cifar10: stopped by {signal.Signals(e.signum).name}; its checkpoints "
                 "are saved, and the same command continues it")
