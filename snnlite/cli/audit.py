"""``snnlite audit CKPT``: exact spike / synop / MAC counts and energy estimates of a trained
checkpoint on the first ``--samples`` test images, per encoding, side by side.

    snnlite audit runs/x/best.h5 --encoding direct ttfs --samples 64 --target cmos45_fp32
    snnlite audit runs/x/best.h5 --format json > audit.json      # for programs
    snnlite audit runs/x/best.h5 --target my_asic.json --check   # custom table; verify counts

``--format json`` prints one object::

    {"format": "snnlite-audit", "version": 1, "checkpoint": str, "model": str,
     "dataset": str, "T": int, "samples": int, "checked": bool,
     "target": {"name", "mac_pj", "ac_pj", "bias_add_pj", "neuron_update_pj", "source"},
     "note": str, "results": {encoding: RESULT}}

with RESULT as documented in :mod:`snnlite.event.report` (per-sample means, per layer and
total). ``--format csv`` prints ``report.CSV_COLUMNS``, one row per (encoding, layer) and a
``total`` row per encoding. ``--check`` also runs the dense forward (float64) and exits
with status 3 unless every count agrees exactly. The counting itself is
:func:`snnlite.event.audit.audit`.
"""
import json
import sys

import numpy as np

from ..event.audit import ENCODINGS, audit
from ..event.energy import get_table
from ..event.report import ESTIMATE_NOTE, format_table, to_csv
from ..io.checkpoint import load_model
from .common import load_data


def add_parser(subparsers):
    a = subparsers.add_parser(
        "audit", help="exact spike/synop/MAC counts and energy estimates of a checkpoint",
        description="Exact spike, synop and MAC counts of a checkpoint on the first N test "
                    "images, per encoding side by side, with energy ESTIMATES from a per-op "
                    "table. Conventions: the snnlite.event module docstring.")
    a.add_argument("checkpoint")
    a.add_argument("--encoding", nargs="+", default=["direct", "ttfs"], choices=ENCODINGS,
                   help="input encodings to audit, side by side (default: direct ttfs)")
    a.add_argument("--samples", type=int, default=16, help="first N test images (default 16)")
    a.add_argument("--T", type=int, default=None, help="time steps (default: the checkpoint's)")
    a.add_argument("--target", default="cmos45_fp32",
                   help="energy table: cmos45_fp32 (default), cmos45_fp16, cmos45_int8, or a "
                        "JSON file (see snnlite.event.energy)")
    a.add_argument("--data", default=None,
                   help="dataset file or folder (default: $SNNLITE_DATA, then the cache)")
    a.add_argument("--batch-size", type=int, default=16)
    a.add_argument("--format", default="table", choices=["table", "json", "csv"])
    a.add_argument("--check", action="store_true",
                   help="verify every count against the dense path (slower)")
    a.set_defaults(func=run)
    return a


def run(args):
    if args.samples < 1 or args.batch_size < 1:
        raise ValueError("--samples and --batch-size must be positive")
    table = get_table(args.target)
    model, cfg = load_model(args.checkpoint)
    T = args.T or cfg.T
    if T < 1:
        raise ValueError(f"--T: expected a positive integer, got {T}")
    _, test = load_data(cfg.dataset, args.data)
    n = min(args.samples, len(test))
    images = test.images[:n].astype(np.float32) / np.float32(255)
    results, problems = audit(model, images, test.labels[:n], test.mean, test.std,
                              args.encoding, T, table, args.batch_size, args.check)
    if args.format == "json":
        print(json.dumps({"format": "snnlite-audit", "version": 1,
                          "checkpoint": str(args.checkpoint), "model": cfg.model,
                          "dataset": cfg.dataset, "T": T, "samples": n,
                          "checked": bool(args.check), "target": table.as_dict(),
                          "note": ESTIMATE_NOTE, "results": results}, indent=2))
    elif args.format == "csv":
        sys.stdout.write(to_csv(results))
    else:
        print(format_table(results, table, f"snnlite audit: {args.checkpoint} ({cfg.model}, "
                                           f"{cfg.dataset} test[:{n}], T={T})"))
        if args.check:
            print("check: " + ("every count matches the dense path" if not any(
                problems.values()) else "MISMATCHES (see stderr)"))
    failed = {k: v for k, v in problems.items() if v}
    if failed:
        for enc, msgs in failed.items():
            for m in msgs:
                print(f"snnlite audit: {enc}: event and dense counts differ: {m}",
                      file=sys.stderr)
        return 3
    return 0
