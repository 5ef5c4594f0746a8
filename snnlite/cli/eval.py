"""``snnlite eval``: a checkpoint's test accuracy and loss, per encoding. A quantized
checkpoint (``snnlite quantize``) runs through the integer event engine."""
import json

from ..io.checkpoint import load_model
from ..quant.checkpoint import is_quantized, load_quantized
from ..quant.evaluate import evaluate_quantized
from ..train import evaluate, subset
from .common import ENCODINGS, add_data_args, load_data, print_table


def add_parser(subparsers):
    e = subparsers.add_parser("eval", help="evaluate a checkpoint on the test split")
    e.add_argument("checkpoint", help="checkpoint file (.h5), e.g. runs/x/best.h5")
    add_data_args(e)
    e.add_argument("--encoding", nargs="+", default=None, choices=list(ENCODINGS),
                   help="input encodings to evaluate, one row each (default: direct; a "
                        "quantized checkpoint: the encoding it was quantized for)")
    e.add_argument("--T", type=int, default=None, help="time steps (default: the checkpoint's)")
    e.add_argument("--limit", type=int, default=None, help="first N test images (default: all)")
    e.add_argument("--format", default="table", choices=["table", "json"],
                   help="output format")
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=run)
    return e


def run(args):
    quantized = is_quantized(args.checkpoint)
    if quantized:  # the integer model, through the integer engine
        qnet, cfg, qcfg = load_quantized(args.checkpoint)
        encodings = args.encoding or [qcfg.get("calibration", {}).get("encoding", "direct")]
    else:
        model, cfg = load_model(args.checkpoint)
        encodings = args.encoding or ["direct"]
    _, test = load_data(cfg.dataset, args.data)  # the checkpoint's dataset
    if args.limit:
        test = subset(test, args.limit)
    T = args.T or cfg.T
    res = {}
    for enc in encodings:
        if quantized:
            ev = evaluate_quantized(qnet, test, T, enc, progress=not args.no_progress)
        else:
            ev = evaluate(model, test, T, enc, progress=not args.no_progress)
        res[enc] = {"accuracy": ev["acc"], "loss": ev["loss"], "T": T, "images": len(test),
                    "integer": quantized}
    if args.format == "json":
        print(json.dumps({"checkpoint": str(args.checkpoint), "model": cfg.model,
                          "results": res}, indent=2))
    else:
        print_table(["encoding", "T", "images", "accuracy", "loss", "integer"],
                    [dict(encoding=k, **v) for k, v in res.items()])
    return 0
