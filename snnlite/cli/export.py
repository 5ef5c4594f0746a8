"""``snnlite export CKPT --format nir OUT.nir [--dt 1e-4] [--input-shape 3 32 32]``: write a
checkpoint's model as a NIR graph."""
from pathlib import Path

from ..io.checkpoint import load_model
from ..io.nir import DEFAULT_DT, export_nir


def add_parser(subparsers):
    p = subparsers.add_parser("export", help="export a checkpoint's model (NIR)")
    p.add_argument("checkpoint", type=Path, help="checkpoint file (.h5)")
    p.add_argument("out", type=Path, help="file to write")
    p.add_argument("--format", default="nir", choices=["nir"], help="output format")
    p.add_argument("--dt", type=float, default=DEFAULT_DT,
                   help="time step: NIR time constants are tau * dt (the default is what "
                        "SpikingJelly's and snnTorch's NIR importers assume)")
    p.add_argument("--input-shape", type=int, nargs=3, default=[3, 32, 32],
                   metavar=("C", "H", "W"), help="shape of one input sample")
    p.set_defaults(func=run)
    return p


def run(args):
    model, _ = load_model(args.checkpoint)
    model.eval()
    out = export_nir(model, args.out, dt=args.dt, input_shape=tuple(args.input_shape))
    print(f"{args.checkpoint}: wrote {out} ({args.format}, dt={args.dt})")
    return 0
