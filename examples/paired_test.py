"""Are two models' test accuracies really different? An exact paired (McNemar) test.

Both checkpoints classify the same test images, each on its own input (its checkpoint's
encoding and T unless given); the images only one of them gets right decide. Prints a
table and, with ``--json``, writes the figures. For example, SKD against TSF from a D2E
study:

    python examples/paired_test.py examples/runs/d2e/skd/last.h5 examples/runs/d2e/tsf/last.h5 \
        --data ../shared/data
"""
import argparse
import json
from pathlib import Path

from snnlite import data
from snnlite.io.checkpoint import atomic_write, load_model
from snnlite.train import evaluate, subset
from snnlite.transfer import mcnemar


def compare(ckpts, test, encodings=(None, None), Ts=(None, None), progress=True):
    """Accuracy of each checkpoint on ``test`` and the exact McNemar test between them."""
    rows, correct = [], []
    for ckpt, enc, T in zip(ckpts, encodings, Ts):
        model, cfg = load_model(ckpt)
        enc, T = enc or cfg.encoding, T or cfg.T
        ev = evaluate(model, test, T, enc, progress=progress)
        correct.append(ev["logits"].argmax(1) == test.labels)
        rows.append({"checkpoint": str(ckpt), "input": enc, "T": T, "acc": ev["acc"]})
    b, c, p = mcnemar(*correct)
    return {"rows": rows, "test_images": len(test), "only_a": b, "only_b": c,
            "diff_pp": round(100 * (rows[0]["acc"] - rows[1]["acc"]), 6), "p_value": p}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="checkpoint A")
    p.add_argument("b", help="checkpoint B")
    p.add_argument("--data", default=None, help="dataset folder or cifar10-mini.npz "
                   "(default: $SNNLITE_DATA, then the user cache)")
    p.add_argument("--encoding", nargs=2, default=[None, None], metavar=("A", "B"),
                   help="input coding of A and B (default: each checkpoint's)")
    p.add_argument("--T", nargs=2, type=int, default=[None, None], metavar=("A", "B"))
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    test = data.load_dataset(load_model(a.a)[1].dataset, a.data)[1]
    res = compare([a.a, a.b], subset(test, a.test_limit), a.encoding, a.T,
                  progress=not a.no_progress)
    print("| | checkpoint | input | T | top-1 % |\n|---|---|---|---|---|")
    for name, r in zip("AB", res["rows"]):
        print(f"| {name} | {r['checkpoint']} | {r['input']} | {r['T']} | {100 * r['acc']:.2f} |")
    print(f"\nA - B = {res['diff_pp']:+.2f} pp on {res['test_images']} test images; only A "
          f"right on {res['only_a']}, only B on {res['only_b']}; exact McNemar p = "
          f"{res['p_value']:.3g}")
    if a.json:
        text = json.dumps(res, indent=2) + "\n"
        atomic_write(Path(a.json), lambda path: Path(path).write_text(text))
    return res


if __name__ == "__main__":
    main()
