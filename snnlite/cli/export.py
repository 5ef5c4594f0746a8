"""``snnlite export CKPT --format nir OUT.nir [--dt 1e-4] [--input-shape 3 32 32]``: write a
checkpoint's model as a NIR graph. ``snnlite export Q.h5 OUT.npz --format bundle``: a
quantized checkpoint's integer model as one ``.npz`` for :mod:`snnlite.runtime` (numpy
only)."""
from pathlib import Path

from ..io.bundle import write_bundle
from ..io.checkpoint import load_model
from ..io.nir import DEFAULT_DT, export_nir
from ..quant.checkpoint import load_quantized


def add_parser(subparsers):
    p = subparsers.add_parser("export", help="export a checkpoint (NIR, or an integer "
                                             "runtime bundle)")
    p.add_argument("checkpoint", type=Path, help="checkpoint file (.h5)")
    p.add_argument("out", type=Path, help="file to write (.nir, or .npz for a bundle)")
    p.add_argument("--format", default="nir", choices=["nir", "bundle"],
                   help="output format: nir, or bundle (a quantized checkpoint's integer "
                        "model as one .npz that snnlite.runtime runs with numpy alone)")
    p.add_argument("--dt", type=float, default=DEFAULT_DT,
                   help="time step: NIR time constants are tau * dt (the default is what "
                        "SpikingJelly's and snnTorch's NIR importers assume)")
    p.add_argument("--input-shape", type=int, nargs=3, default=[3, 32, 32],
                   metavar=("C", "H", "W"), help="shape of one input sample")
    p.set_defaults(func=run)
    return p


def run(args):
    if args.format == "bundle":
        return _bundle(args)
    model, _ = load_model(args.checkpoint)
    model.eval()
    out = export_nir(model, args.out, dt=args.dt, input_shape=tuple(args.input_shape))
    print(f"{args.checkpoint}: wrote {out} ({args.format}, dt={args.dt})")
    return 0


def _bundle(args):
    qnet, cfg, rec = load_quantized(args.checkpoint)
    cal = rec.get("calibration", {})
    if "mean" not in cal or "std" not in cal:
        raise ValueError(f"{args.checkpoint}: no input statistics recorded; quantize it again "
                         "with this snnlite")
    model = {"name": cfg.model, "num_classes": cfg.num_classes, "dataset": cfg.dataset,
             "T": cal.get("T", cfg.T), "encoding": cal.get("encoding", cfg.encoding),
             "mean": cal["mean"], "std": cal["std"], "label_names": cal.get("label_names")}
    write_bundle(args.out, qnet, model, rec.get("source", {}))
    print(f"{args.checkpoint}: wrote {args.out} (bundle: integer model for snnlite.runtime, "
          f"{qnet.fmt.describe()})")
    return 0
