"""Is one transfer method better than another across student seeds? Mean, spread and
paired tests over seeds.

Each seed's D2E study (``examples/d2e_cifar10.py --seed S --out DIR/sS``, the teacher
fixed) holds one student per method. For methods A and B this evaluates every seed's two
students on the same test images (TTFS input, each checkpoint's T) and reports each
method's accuracy per seed, their mean and standard deviation (ddof 1), the paired
t-test of the per-seed differences, and an exact sign test pooled over seeds: the images
only A got right and only B got right, summed over seeds (McNemar's test on the pooled
(seed, image) pairs, which treats the seeds' disagreements as independent). For example:

    python examples/seed_study.py examples/runs/d2e-seeds/s0 examples/runs/d2e-seeds/s1 \
        examples/runs/d2e-seeds/s2 --a skd --b tsf --data ../shared/data \
        --json examples/runs/d2e-seeds/paired.json
"""
import argparse
import json
import math
import statistics
from pathlib import Path

from scipy import stats

from snnlite import data
from snnlite.io.checkpoint import atomic_write, load_model
from snnlite.train import evaluate, subset
from snnlite.transfer import mcnemar


def seed_study(folders, a, b, test, progress=True):
    """Per-seed accuracies of methods ``a`` and ``b`` (students ``<folder>/<m>/last.h5``)
    and the tests described in the module docstring."""
    rows, only_a, only_b = [], 0, 0
    for folder in folders:
        correct = {}
        for m in (a, b):
            model, cfg = load_model(Path(folder) / m / "last.h5")
            ev = evaluate(model, test, cfg.T, cfg.encoding, progress=progress)
            correct[m] = ev["logits"].argmax(1) == test.labels
        ba, bb, p = mcnemar(correct[a], correct[b])
        only_a, only_b = only_a + ba, only_b + bb
        rows.append({"folder": str(folder), a: float(correct[a].mean()),
                     b: float(correct[b].mean()), "only_" + a: ba, "only_" + b: bb, "p": p})
    diffs = [r[a] - r[b] for r in rows]
    res = {"methods": [a, b], "test_images": len(test), "seeds": rows}
    for m in (a, b):
        acc = [r[m] for r in rows]
        res[m] = {"mean": statistics.fmean(acc),
                  "std": statistics.stdev(acc) if len(acc) > 1 else None}
    res["diff_pp_mean"] = 100 * statistics.fmean(diffs)
    res["paired_t_p"] = None
    if len(diffs) > 1 and len(set(diffs)) > 1:
        res["paired_t_p"] = float(stats.ttest_1samp(diffs, 0.0).pvalue)
    n = only_a + only_b
    res["pooled"] = {"only_" + a: only_a, "only_" + b: only_b,
                     "p": 1.0 if n == 0 else float(min(1.0, 2 * stats.binom.cdf(
                         min(only_a, only_b), n, 0.5)))}
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="one D2E study folder per student seed")
    p.add_argument("--a", default="skd", help="method A (a subfolder of each study)")
    p.add_argument("--b", default="tsf", help="method B")
    p.add_argument("--data", default=None, help="dataset folder or cifar10-mini.npz "
                   "(default: $SNNLITE_DATA, then the user cache)")
    p.add_argument("--test-limit", type=int, default=None, help="test images (default all)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    cfg = load_model(Path(a.folders[0]) / a.a / "last.h5")[1]
    test = subset(data.load_dataset(cfg.dataset, a.data)[1], a.test_limit)
    res = seed_study(a.folders, a.a, a.b, test, progress=not a.no_progress)
    print(f"| seed folder | {a.a} top-1 % | {a.b} top-1 % | only {a.a} | only {a.b} | p |\n"
          "|---|---|---|---|---|---|")
    for r in res["seeds"]:
        print(f"| {r['folder']} | {100 * r[a.a]:.2f} | {100 * r[a.b]:.2f} | {r['only_' + a.a]} "
              f"| {r['only_' + a.b]} | {r['p']:.3g} |")
    for m in (a.a, a.b):
        sd = res[m]["std"]
        print(f"{m}: {100 * res[m]['mean']:.2f} % mean"
              + ("" if sd is None or math.isnan(sd) else f" +- {100 * sd:.2f} (sd)"))
    t = res["paired_t_p"]
    print(f"{a.a} - {a.b} = {res['diff_pp_mean']:+.2f} pp on average; paired t-test p = "
          + ("n/a" if t is None else f"{t:.3g}")
          + f"; pooled sign test {res['pooled']['only_' + a.a]} vs "
          f"{res['pooled']['only_' + a.b]}, p = {res['pooled']['p']:.3g}")
    if a.json:
        text = json.dumps(res, indent=2) + "\n"
        atomic_write(Path(a.json), lambda path: Path(path).write_text(text))
    return res


if __name__ == "__main__":
    main()
