"""``snnlite audit CKPT``: exact spike / synop / MAC counts, energy estimates (compute and
memory) on a target, NeuroBench's metrics and the target fit check of a trained checkpoint
on the first ``--samples`` test images, per encoding, side by side.

    snnlite audit runs/x/best.h5 --encoding direct ttfs --samples 64 --target cmos45_fp32
    snnlite audit runs/x/best.h5 --format json > audit.json      # for programs
    snnlite audit runs/x/best.h5 --target loihi --require-fit    # exit 4 unless it fits
    snnlite audit runs/x/best.h5 --format neurobench             # NeuroBench's metrics
    snnlite audit runs/x/best.h5 --target my_chip.json --check   # own profile; verify counts

``--format json`` prints one object (``SCHEMA`` below; README "Auditing")::

    {"format": "snnlite-audit", "version": 2, "checkpoint": str, "model": str,
     "dataset": str, "T": int, "samples": int, "checked": bool, "note": str,
     "target": the profile (snnlite.event.targets, with every figure's source),
     "fit": the fit report (snnlite.event.targets_fit.fit),
     "results": {encoding: RESULT + {"neurobench": NEUROBENCH}}}

RESULT is documented in :mod:`snnlite.event.report`, NEUROBENCH in
:mod:`snnlite.event.neurobench`. ``--format csv`` prints ``report.CSV_COLUMNS``, one row per
(encoding, layer) and a ``total`` row per encoding; ``--format neurobench`` prints
{encoding: NEUROBENCH}. ``--check`` also runs the dense forward (float64) and exits with
status 3 unless every count agrees exactly; ``--require-fit`` exits with status 4 when the
model breaks a constraint of the target. Integer formats (weight and state bits) are read
from the checkpoint's config ``quant`` entry when it records one. A quantized checkpoint
(``snnlite quantize``) is audited through the integer engine (its own spikes and counts;
RESULT gains ``saturated``, clipped membranes per sample; no NeuroBench metrics), on the
encoding it was quantized for unless ``--encoding`` names others; ``--check`` then compares
every spike and the readout with the numpy runtime (:mod:`snnlite.runtime`).
"""
import json
import sys

import numpy as np

from ..event.audit import ENCODINGS, audit_model
from ..event.report import ESTIMATE_NOTE, SCHEMA_VERSION, format_table, to_csv
from ..event.targets import get_target, names
from ..event.targets_fit import format_fit, formats_from_config
from ..io.checkpoint import load_model, read_config
from ..quant.checkpoint import is_quantized, load_quantized
from ..quant.evaluate import audit_quantized
from .common import load_data

DEFAULT_ENCODINGS = ["direct", "ttfs"]
SCHEMA = __doc__[__doc__.index("    {\"format\""):__doc__.index("RESULT is documented")]


def add_parser(subparsers):
    a = subparsers.add_parser(
        "audit", help="exact spike/synop/MAC counts, energy estimates, target fit",
        description="Exact spike, synop and MAC counts of a checkpoint on the first N test "
                    "images, per encoding side by side, with energy ESTIMATES (compute and "
                    "memory) on a target profile, NeuroBench's metrics and a check of the "
                    "target's constraints. Conventions: the snnlite.event module docstring.")
    a.add_argument("checkpoint", help="checkpoint file (.h5)")
    a.add_argument("--encoding", nargs="+", default=DEFAULT_ENCODINGS, choices=ENCODINGS,
                   help="input encodings to audit, side by side (a quantized checkpoint: the "
                        "encoding it was quantized for, unless given)")
    a.add_argument("--samples", type=int, default=16, help="first N test images")
    a.add_argument("--T", type=int, default=None, help="time steps (default: the checkpoint's)")
    a.add_argument("--target", default="cmos45_fp32",
                   help=f"target profile: one of {', '.join(names())} (default cmos45_fp32; "
                        "`snnlite targets` lists them with sources), or a JSON file")
    a.add_argument("--data", default=None,
                   help="dataset file or folder (default: $SNNLITE_DATA, then the cache)")
    a.add_argument("--batch-size", type=int, default=16, help="images per engine call")
    a.add_argument("--format", default="table", choices=["table", "json", "csv", "neurobench"],
                   help="output format (neurobench: NeuroBench's metrics per encoding)")
    a.add_argument("--require-fit", action="store_true",
                   help="exit with status 4 if the model breaks a constraint of the target")
    a.add_argument("--check", action="store_true",
                   help="verify every count against the dense path (slower)")
    a.set_defaults(func=run)
    return a


def run(args):
    if args.samples < 1 or args.batch_size < 1:
        raise ValueError("--samples and --batch-size must be positive")
    target = get_target(args.target)
    quantized = is_quantized(args.checkpoint)
    if quantized:  # the integer model, through the integer engine
        qnet, cfg, rec = load_quantized(args.checkpoint)
        if args.format == "neurobench":
            raise ValueError("--format neurobench: NeuroBench's metrics are computed for float "
                             "models; audit the float source checkpoint for them")
        if args.encoding == DEFAULT_ENCODINGS:
            args.encoding = [rec.get("calibration", {}).get("encoding", "direct")]
    else:
        model, cfg = load_model(args.checkpoint)
    formats = formats_from_config(read_config(args.checkpoint))
    T = args.T or cfg.T
    if T < 1:
        raise ValueError(f"--T: expected a positive integer, got {T}")
    _, test = load_data(cfg.dataset, args.data)
    n = min(args.samples, len(test))
    images = test.images[:n].astype(np.float32) / np.float32(255)
    if quantized:
        out = audit_quantized(qnet, images, test.labels[:n], test.mean, test.std, args.encoding,
                              T, target, args.batch_size, formats, args.check)
    else:
        out = audit_model(model, images, test.labels[:n], test.mean, test.std, args.encoding,
                          T, target, args.batch_size, args.check, formats)
    results, problems, report = out["results"], out["problems"], out["fit"]
    if args.format == "json":
        print(json.dumps({"format": "snnlite-audit", "version": SCHEMA_VERSION,
                          "checkpoint": str(args.checkpoint), "model": cfg.model,
                          "dataset": cfg.dataset, "T": T, "samples": n,
                          "checked": bool(args.check), "note": ESTIMATE_NOTE,
                          "target": target.as_dict(), "fit": report, "results": results},
                         indent=2))
    elif args.format == "csv":
        sys.stdout.write(to_csv(results))
    elif args.format == "neurobench":
        print(json.dumps({enc: r["neurobench"] for enc, r in results.items()}, indent=2))
    else:
        print(format_table(results, target, f"snnlite audit: {args.checkpoint} ({cfg.model}, "
                                            f"{cfg.dataset} test[:{n}], T={T})"))
        print(format_fit(report))
        if args.check:
            ok = "every spike and the readout match the numpy runtime" if quantized else \
                "every count matches the dense path"
            print("check: " + (ok if not any(problems.values()) else "MISMATCHES (see stderr)"))
    failed = {k: v for k, v in problems.items() if v}
    if failed:
        for enc, msgs in failed.items():
            for m in msgs:
                what = "integer engine and runtime" if quantized else "event and dense counts"
                print(f"snnlite audit: {enc}: {what} differ: {m}", file=sys.stderr)
        return 3
    if args.require_fit and not report["fits"]:
        print(f"snnlite audit: the model does not fit {target.name}: "
              f"{len(report['violations'])} violations", file=sys.stderr)
        return 4
    return 0
