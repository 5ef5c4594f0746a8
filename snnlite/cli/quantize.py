"""``snnlite quantize CKPT --bits 8 [--state-bits 16] [--per-channel] [--target NAME] --out
Q.h5``: post-training quantization of a float checkpoint into an integer one.

    snnlite quantize runs/x/last.h5 --bits 8 --state-bits 16 --out runs/x/q8.h5
    snnlite quantize runs/x/last.h5 --target loihi --out runs/x/loihi.h5   # its formats
    snnlite eval runs/x/q8.h5 --limit 1000          # accuracy of the integer engine
    snnlite export runs/x/q8.h5 q8.npz --format bundle   # for snnlite.runtime (numpy only)

Formats come, in increasing priority, from the defaults (:class:`snnlite.quant.QFormat`),
the checkpoint's quantization-aware training (``snnlite train --quantize``), the target's
constraints (``--target``: weight and state bits, leak form) and the flags given. A target
whose constraints the formats or the neurons break is refused; its other constraints
(cores, layer types) are reported. Calibration: the first ``--calibration`` training
images, in order. Also: :func:`add_qat_args` / :func:`qat_format`, the ``--quantize`` flags
of ``snnlite train`` and ``snnlite transfer``.
"""
import json
import math

import numpy as np

from ..event.targets import get_target
from ..event.targets_fit import fit
from ..io.checkpoint import read_config
from ..quant import CALIBRATION_IMAGES, QFormat, quantize
from ..quant.checkpoint import load_float_source, save_quantized
from ..quant.evaluate import event_net
from ..quant.formats import CLIPS, LEAKS, SCALES
from .common import DATA_HELP, load_data, print_table

FORMAT_CONSTRAINTS = ("weight_bits", "state_bits", "leak_forms", "neuron_dynamics",
                      "reset_modes")
"""Target constraints that the integer formats and the neurons must meet (else refused)."""


def add_format_args(p, bits_flag="--bits"):
    p.add_argument(bits_flag, dest="bits", type=int, default=None, metavar="BITS",
                   help="weight bits (default 8, or the target's)")
    p.add_argument("--state-bits", type=int, default=None,
                   help="membrane (state) bits, saturating (default 16, or the target's)")
    p.add_argument("--input-bits", type=int, default=None,
                   help="bits of the dense (direct-coded) input (default 8)")
    p.add_argument("--per-channel", action="store_const", const=True, default=None,
                   help="one step per output channel (default: one per layer)")
    p.add_argument("--scale", choices=SCALES, default=None,
                   help="steps: pow2 (powers of two, default) or int (threshold = N steps)")
    p.add_argument("--clip", choices=CLIPS, default=None,
                   help="weight clipping: mse (least squared error, default) or max")
    p.add_argument("--leak", choices=LEAKS, default=None,
                   help="leak: shift (tau = 2^k) or multiply (default: shift where tau "
                        "allows, or what the target offers)")


def add_parser(subparsers):
    p = subparsers.add_parser(
        "quantize", help="post-training quantization of a checkpoint into integers",
        description="Quantize a float checkpoint: BN folded, integer weights, thresholds and "
                    "membranes of the given widths (saturating), the leak as a shift or an "
                    "integer multiply; calibrated on the first training images. The result "
                    "is a checkpoint that snnlite eval and snnlite audit run through the "
                    "integer engine. Arithmetic: the snnlite.quant.formats docstring.")
    p.add_argument("checkpoint", help="float checkpoint (.h5)")
    p.add_argument("--out", required=True, help="quantized checkpoint to write (.h5)")
    add_format_args(p)
    p.add_argument("--target", default=None,
                   help="target profile (e.g. loihi, speck, xylo, or a JSON file) whose weight "
                        "and state bits and leak form set the formats (default: none)")
    p.add_argument("--calibration", type=int, default=CALIBRATION_IMAGES,
                   help="calibration images (the first of the training split)")
    p.add_argument("--encoding", default=None, choices=["direct", "ttfs", "latency"],
                   help="input encoding to quantize for (default: the checkpoint's)")
    p.add_argument("--T", type=int, default=None, help="time steps (default: the checkpoint's)")
    p.add_argument("--data", default=None, help=DATA_HELP + "; the dataset is the checkpoint's")
    p.add_argument("--format", default="table", choices=["table", "json"],
                   help="output format")
    p.set_defaults(func=run)
    return p


# ---------------------------------------------------------------------- formats
def _given(args):
    d = {"weight_bits": args.bits, "state_bits": args.state_bits,
         "input_bits": args.input_bits, "per_channel": args.per_channel, "scale": args.scale,
         "clip": args.clip, "leak": args.leak}
    return {k: v for k, v in d.items() if v is not None}


def _pow2_taus(model):
    from ..nn import LIF
    return all(math.log2(m.tau).is_integer() for m in model.modules()
               if isinstance(m, LIF) and m.tau != math.inf)  # IF (tau = inf) has no leak


def resolve_format(given, qat=None, target=None, pow2_taus=True):
    """The QFormat from ``given`` flags over the target's constraints over the QAT record
    (a dict) over the defaults; ValueError when the target cannot hold what is asked."""
    d = {k: v for k, v in (qat or {}).items() if k in QFormat.__dataclass_fields__}
    name = None
    if target is not None:
        name = target.name
        c = target.constraint
        for k in ("weight_bits", "state_bits"):
            limit = c(k)
            if limit is None:
                continue
            want = given.get(k)
            if want is not None and want > limit:
                raise ValueError(f"--{'bits' if k == 'weight_bits' else 'state-bits'} {want}: "
                                 f"target {name} holds at most {limit}-bit "
                                 f"{'weights' if k == 'weight_bits' else 'states'}")
            d[k] = min(limit, d.get(k, limit))
        forms = c("leak_forms")
        if forms is not None and "leak" not in given:
            if "shift" in forms and pow2_taus:
                d["leak"] = "shift"
            elif "multiply" in forms:
                d["leak"] = "multiply"
            else:
                raise ValueError(f"target {name} offers the leak forms {forms}; a LIF leak "
                                 f"1/tau needs {'shift or ' if pow2_taus else ''}multiply")
        elif forms is not None and given["leak"] not in forms:
            raise ValueError(f"--leak {given['leak']}: target {name} offers {forms}")
    d.update(given)
    if "leak" not in d and not pow2_taus:
        d["leak"] = "multiply"
    return QFormat.from_dict(d, "formats")


def check_target(qnet, target):
    """The target fit report of ``qnet``; ValueError listing the violations of
    :data:`FORMAT_CONSTRAINTS` (what the integer formats and neurons must meet)."""
    fmt = qnet.fmt
    report = fit(event_net(qnet), target, {"weight_bits": fmt.weight_bits,
                                           "state_bits": fmt.state_bits})
    hard = [v for v in report["violations"] if v["constraint"] in FORMAT_CONSTRAINTS]
    if hard:
        raise ValueError(f"target {target.name} cannot hold this model: " + "; ".join(
            f"{v['layer'] or 'model'}: {v['message']}" for v in hard))
    return report


# ---------------------------------------------------------------------- QAT flags
def add_qat_args(p):
    """``--quantize BITS`` and the format flags on ``snnlite train`` / ``transfer``."""
    g = p.add_argument_group("quantization-aware training (fake quantization, "
                             "straight-through gradients; see snnlite.quant.qat)")
    g.add_argument("--quantize", type=int, default=None, metavar="BITS",
                   help="finetune through fake quantization to BITS-bit weights "
                        "(default: none, float training)")
    for flag, kw in (("--state-bits", dict(type=int, help="membrane bits (default 16)")),
                     ("--input-bits", dict(type=int, help="dense input bits (default 8)")),
                     ("--per-channel", dict(action="store_const", const=True,
                                            help="one step per output channel")),
                     ("--scale", dict(choices=SCALES, help="steps: pow2 (default) or int")),
                     ("--clip", dict(choices=CLIPS, help="weight clipping: mse (default) or "
                                                         "max"))):
        g.add_argument(flag, default=None, **kw)


def qat_format(args):
    """The ``quantize`` config entry (a QFormat dict) of ``--quantize``, or None."""
    extra = [f for f in ("state_bits", "input_bits", "per_channel", "scale", "clip")
             if getattr(args, f, None) is not None]
    if args.quantize is None:
        if extra:
            raise ValueError(f"--{extra[0].replace('_', '-')} needs --quantize BITS")
        return None
    d = {"weight_bits": args.quantize, **{f: getattr(args, f) for f in extra}}
    return QFormat.from_dict(d, "--quantize").as_dict()


# ---------------------------------------------------------------------- run
def run(args):
    if args.calibration < 1:
        raise ValueError(f"--calibration: expected a positive integer, got {args.calibration}")
    model, cfg = load_float_source(args.checkpoint)
    raw = read_config(args.checkpoint)
    qat = raw.get("quantize") or None
    target = get_target(args.target) if args.target else None
    fmt = resolve_format(_given(args), qat, target, _pow2_taus(model))
    enc = args.encoding or cfg.encoding
    T = args.T or cfg.T
    train, _ = load_data(cfg.dataset, args.data)
    n = min(args.calibration, len(train))
    images = train.images[:n].astype(np.float32) / np.float32(255)
    step = (qat or {}).get("input_step") if enc == (qat or {}).get("encoding", enc) else None
    qnet, report = quantize(model, fmt, images, train.mean, train.std, enc, T, step=step)
    fit_report = check_target(qnet, target) if target is not None else None
    cal = dict(report["calibration"], agreement=report["agreement"],
               mean=[float(v) for v in train.mean], std=[float(v) for v in train.std],
               label_names=[str(v) for v in train.label_names])
    sha = save_quantized(args.out, qnet, args.checkpoint, cal)
    bounds = qnet.current_bounds()
    rows = []
    for p, lay, b in zip(qnet.populations, report["layers"], bounds):
        step_txt = "" if p.step is None else (f"{p.step.min():.4g}" if p.step.min() ==
                                              p.step.max() else
                                              f"{p.step.min():.3g}..{p.step.max():.3g}")
        rows.append({"layer": p.name, "kind": p.kind, "neurons": p.size, "step": step_txt,
                     "v_th": "" if p.v_th is None else f"{p.v_th.min()}..{p.v_th.max()}"
                     if p.v_th.min() != p.v_th.max() else str(p.v_th.min()),
                     "max_current": b, "rate_float": lay["firing_rate_float"],
                     "rate_int": lay["firing_rate_int"], "saturated": lay["saturated"]})
    if args.format == "json":
        print(json.dumps({"checkpoint": str(args.checkpoint), "out": str(args.out),
                          "source_sha256": sha, "format": fmt.as_dict(),
                          "input": {"kind": qnet.input_kind, "step": qnet.input_step},
                          "calibration": cal, "layers": rows,
                          "fit": fit_report}, indent=2))
        return 0
    print(f"{args.checkpoint} -> {args.out}: {fmt.describe()}; input {qnet.input_kind}"
          + (f" (step {qnet.input_step:.4g})" if qnet.input_step else "")
          + f"; calibrated on {n} training images, {enc}, T={T}")
    print_table(["layer", "kind", "neurons", "step", "v_th", "max_current", "rate_float",
                 "rate_int", "saturated"], rows)
    print(f"integer prediction = float prediction on {report['agreement']:.1%} of the "
          f"calibration images; source sha256 {sha[:16]}...")
    if fit_report is not None:
        soft = fit_report["violations"]
        print(f"target {target.name}: formats fit" + ("" if not soft else
              "; other constraints broken: " + "; ".join(
                  f"{v['layer'] or 'model'}: {v['message']}" for v in soft)))
    return 0
