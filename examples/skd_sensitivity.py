"""How much SKD's result depends on its temperature and its mixing weight: a grid of
transfers with everything else fixed.

Each cell (temperature K, alpha) finetunes the teacher on TTFS input with SKD's loss,
``alpha x CE + (1 - alpha) x K^2 x KL(teacher || student)`` at temperature K; a TSF cell
(cross-entropy alone, the same schedule) is the reference. All cells share the epochs, T,
batch, seed and the training and test subsets. Each keeps a resumable run folder
``<out>/skd-K<K>-a<alpha>/`` (``<out>/tsf/``); rerunning with the same ``--out``
continues unfinished cells and reuses finished ones. Writes ``<out>/results.json``
(per cell: final and best accuracy, final KL to the teacher, wall time) and prints a
table, temperatures down and alphas across. ``--full-test`` then tests every cell's final
checkpoint on the whole test split, with an exact paired (McNemar) test of each SKD cell
against the TSF cell (``full_acc``, ``vs_tsf`` in results.json). The grid on a subset:

    python examples/skd_sensitivity.py \\
        --teacher examples/runs/teacher-cifarnet_small-T4/last.h5 --data ../shared/data \\
        --epochs 2 --train-limit 10000 --test-limit 2000 --out examples/runs/skd-sensitivity \\
        --full-test
"""
import argparse
import json
from pathlib import Path

from snnlite import data
from snnlite.io.checkpoint import atomic_write, load_model
from snnlite.train import evaluate, subset
from snnlite.transfer import Transfer, TransferConfig, mcnemar

TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
ALPHAS = (0.2, 0.4, 0.6)


def cell_name(method, temperature=None, alpha=None):
    return "tsf" if method == "tsf" else f"skd-K{temperature:g}-a{alpha:g}"


def sweep(teacher, out, train, test, temperatures=TEMPERATURES, alphas=ALPHAS, epochs=2, T=8,
          batch_size=64, seed=0, train_limit=None, test_limit=None, reference=True,
          progress=True):
    """Run (or continue) every cell; returns the results dict also written to
    ``<out>/results.json``."""
    out = Path(out)
    cells = [("skd", k, a) for k in temperatures for a in alphas]
    if reference:
        cells.append(("tsf", None, None))
    rows = []
    for method, k, a in cells:
        extra = {} if method == "tsf" else {"temperature": k, "alpha": a}
        cfg = TransferConfig(teacher=str(teacher), method=method, T=T, epochs=epochs,
                             batch_size=batch_size, seed=seed, train_limit=train_limit,
                             test_limit=test_limit, **extra)
        name = cell_name(method, k, a)
        res = Transfer(cfg, out / name, train, test, resume=True, progress=progress).fit()
        rows.append({"cell": name, "method": method, "temperature": k, "alpha": a,
                     "final_acc": res["final_acc"], "best_acc": res["best_acc"],
                     "final_kl": res["final_kl"], "wall_s": res["wall_s"]})
    tcfg = load_model(teacher)[1]
    results = {"teacher": str(teacher), "model": tcfg.model, "dataset": tcfg.dataset,
               "train_images": len(subset(train, train_limit)),
               "test_images": len(subset(test, test_limit)), "epochs": epochs, "T": T,
               "batch_size": batch_size, "seed": seed, "temperatures": list(temperatures),
               "alphas": list(alphas), "rows": rows}
    _write(out, results)
    return results


def full_test(results, out, test, progress=True):
    """Test every cell's final checkpoint on all of ``test`` (its own encoding and T): adds
    ``full_acc`` to each row and, to each SKD row, ``vs_tsf`` (images only this cell gets
    right, only TSF gets right, exact McNemar p) when the grid has a TSF cell; rewrites
    ``<out>/results.json``."""
    out = Path(out)
    correct = {}
    for r in results["rows"]:
        model, cfg = load_model(out / r["cell"] / "last.h5")
        ev = evaluate(model, test, cfg.T, cfg.encoding, progress=progress)
        correct[r["cell"]] = ev["logits"].argmax(1) == test.labels
        r["full_acc"] = ev["acc"]
    results["full_test_images"] = len(test)
    for r in results["rows"]:
        if r["method"] == "skd" and "tsf" in correct:
            b, c, p = mcnemar(correct[r["cell"]], correct["tsf"])
            r["vs_tsf"] = {"only_this": b, "only_tsf": c, "p": p}
    _write(out, results)
    return results


def _write(out, results):
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2) + "\n"
    atomic_write(out / "results.json", lambda p: Path(p).write_text(text))


def table(results):
    """The grid as text: final accuracy (%) per temperature (rows) and alpha (columns), on
    the training-time test subset and, after :func:`full_test`, on the whole test split."""
    rows = results["rows"]
    tsf = [r for r in rows if r["method"] == "tsf"]
    grids = [("final_acc", f"{results['test_images']:,} test images")]
    if all("full_acc" in r for r in rows):
        grids.append(("full_acc", f"all {results['full_test_images']:,} test images"))
    lines = []
    for key, what in grids:
        acc = {(r["temperature"], r["alpha"]): r[key] for r in rows if r["method"] == "skd"}
        lines += [f"SKD final test accuracy (%), {results['epochs']} epochs, "
                  f"{results['train_images']:,} training images, {what}",
                  "K \\ alpha " + "".join(f"{a:>9g}" for a in results["alphas"])]
        for k in results["temperatures"]:
            lines.append(f"{k:<10g}" + "".join(f"{100 * acc[k, a]:9.2f}"
                                               for a in results["alphas"]))
        if tsf:
            lines.append(f"TSF (reference): {100 * tsf[0][key]:.2f}")
        lines.append("")
    return "\n".join(lines).rstrip()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", required=True, help="direct-coded checkpoint")
    p.add_argument("--data", default=None, help="dataset path (default: $SNNLITE_DATA, "
                   "then the user cache)")
    p.add_argument("--temperatures", type=float, nargs="+", default=list(TEMPERATURES))
    p.add_argument("--alphas", type=float, nargs="+", default=list(ALPHAS))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--T", type=int, default=8, help="student time steps")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--no-reference", action="store_true", help="skip the TSF cell")
    p.add_argument("--out", default="runs/skd-sensitivity")
    p.add_argument("--full-test", action="store_true", help="then test every cell on the "
                   "whole test split, with a paired test against TSF")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    train, test = data.load_dataset(load_model(a.teacher)[1].dataset, a.data)
    res = sweep(a.teacher, a.out, train, test, a.temperatures, a.alphas, a.epochs, a.T,
                a.batch_size, a.seed, a.train_limit, a.test_limit, not a.no_reference,
                not a.no_progress)
    if a.full_test:
        res = full_test(res, a.out, test, not a.no_progress)
    print(table(res))
    return res


if __name__ == "__main__":
    main()
