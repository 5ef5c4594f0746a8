"""Post-training quantization of trained checkpoints on CIFAR-10: accuracy of the integer
event engine beside the float model, per format, on the test split.

    python examples/ptq_cifar10.py --data ../shared/data \\
        --checkpoint examples/runs/teacher-cifarnet_small-T4/last.h5 \\
        --checkpoint examples/runs/d2e/skd/last.h5 --out examples/runs/quant/ptq.json

Each checkpoint is quantized as ``snnlite quantize`` does (calibration: the first 256
training images, in order; the checkpoint's own encoding and T) in every format of
``FORMATS`` and evaluated on the first ``--limit`` test images (default: all 10,000) with
the integer engine; the float model is evaluated on the same images. Writes one JSON
object: {"rows": [{"checkpoint", "encoding", "T", "format", "describe", "float_acc",
"int_acc", "delta_pp", "agreement", "saturated", "images", "wall_s"}], "command"}.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from snnlite import data
from snnlite.io.checkpoint import atomic_write, load_model
from snnlite.quant import CALIBRATION_IMAGES, QFormat, quantize
from snnlite.quant.evaluate import evaluate_quantized
from snnlite.train import evaluate, subset

FORMATS = {
    "w8s16": QFormat(weight_bits=8, state_bits=16),
    "w8s16-pc": QFormat(weight_bits=8, state_bits=16, per_channel=True),
    "w8s16-int": QFormat(weight_bits=8, state_bits=16, scale="int"),
    "w4s16": QFormat(weight_bits=4, state_bits=16),
    "w4s16-pc": QFormat(weight_bits=4, state_bits=16, per_channel=True),
    "w4s16-pc-max": QFormat(weight_bits=4, state_bits=16, per_channel=True, clip="max"),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True)
    p.add_argument("--data", default=None)
    p.add_argument("--limit", type=int, default=None, help="first N test images (all)")
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    rows = []
    for ck in args.checkpoint:
        model, cfg = load_model(ck)
        train, test = data.load_dataset(cfg.dataset, args.data)
        test = subset(test, args.limit)
        calib = train.images[:CALIBRATION_IMAGES].astype(np.float32) / np.float32(255)
        t0 = time.time()
        ref = evaluate(model, test, cfg.T, cfg.encoding)
        print(f"{ck}: float {ref['acc']:.4f} on {len(test)} images ({cfg.encoding}, "
              f"T={cfg.T}, {time.time() - t0:.0f} s)", flush=True)
        for name in args.formats:
            t0 = time.time()
            qnet, report = quantize(model, FORMATS[name], calib, train.mean, train.std,
                                    cfg.encoding, cfg.T)
            ev = evaluate_quantized(qnet, test, cfg.T, cfg.encoding)
            agree = float((ev["logits"].argmax(1) == ref["logits"].argmax(1)).mean())
            rows.append({"checkpoint": str(ck), "encoding": cfg.encoding, "T": cfg.T,
                         "format": name, "describe": FORMATS[name].describe(),
                         "float_acc": ref["acc"], "int_acc": ev["acc"],
                         "delta_pp": round(100 * (ev["acc"] - ref["acc"]), 2),
                         "agreement": agree, "saturated": ev["saturated"],
                         "images": len(test), "wall_s": round(time.time() - t0, 1)})
            print(f"  {name:<13} integer {ev['acc']:.4f} ({rows[-1]['delta_pp']:+.2f} pp), "
                  f"same prediction as float on {agree:.1%}, {rows[-1]['wall_s']} s",
                  flush=True)
            doc = {"rows": rows, "command": "python examples/ptq_cifar10.py " +
                   " ".join(sys.argv[1:] if argv is None else argv)}
            text = json.dumps(doc, indent=2) + "\n"
            atomic_write(args.out, lambda path: Path(path).write_text(text))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
