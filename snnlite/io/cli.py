"""Command-line parts for model exchange: ``snnlite import-torch`` and ``snnlite export``.

``snnlite import-torch FILE.pth --model NAME [--num-classes K] [--T 8] --out CKPT.h5``
loads a PyTorch/SpikingJelly state dict into the named snnlite model and writes a
checkpoint that ``snnlite eval`` (and every command reading checkpoints) accepts.

``snnlite export CKPT --format nir OUT.nir [--dt 1.0] [--input-shape 3 32 32]`` writes a
checkpoint's model as a NIR graph.
"""
from pathlib import Path


def _cmd_import_torch(args):
    import dataclasses

    from .. import models
    from ..train import TrainConfig
    from .checkpoint import save_checkpoint
    from .torch_import import load_torch_state_dict

    num_classes = args.num_classes or (100 if args.dataset == "cifar100" else 10)
    cfg = TrainConfig(model=args.model, dataset=args.dataset, T=args.T,
                      num_classes=num_classes)
    model = models.build(args.model, num_classes)
    info = load_torch_state_dict(model, args.file, key=args.key)
    state = {"epoch": 0, "step": 0,
             "imported_from": {"format": "pytorch", "file": str(args.file),
                               "naming_rule": info["rule"]}}
    save_checkpoint(args.out, model.state_dict(), dataclasses.asdict(cfg), state)
    print(f"{args.file}: {len(info['mapping'])} arrays loaded into {args.model} "
          f"(naming rule '{info['rule']}'); wrote {args.out}")
    return 0


def _cmd_export(args):
    from ..train import load_model
    from .nir import export_nir

    model, _ = load_model(args.checkpoint)
    model.eval()
    out = export_nir(model, args.out, dt=args.dt, input_shape=tuple(args.input_shape))
    print(f"{args.checkpoint}: wrote {out} ({args.format}, dt={args.dt})")
    return 0


def add_import_parser(subparsers):
    """Add ``import-torch`` to an argparse subparsers object."""
    from ..models import MODELS

    p = subparsers.add_parser(
        "import-torch", help="convert a PyTorch/SpikingJelly state dict (.pth) to a "
                             "snnlite checkpoint")
    p.add_argument("file", type=Path, help="the .pth file (read without torch)")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--num-classes", type=int, default=None,
                   help="default 10 (100 with --dataset cifar100)")
    p.add_argument("--T", type=int, default=8, help="time steps stored in the config "
                                                     "(default 8)")
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    p.add_argument("--key", default=None,
                   help="entry holding the state dict in a nested checkpoint")
    p.add_argument("--out", required=True, type=Path, help="checkpoint to write (.h5)")
    p.set_defaults(func=_cmd_import_torch)
    return p


def add_export_parser(subparsers):
    """Add ``export`` to an argparse subparsers object."""
    p = subparsers.add_parser("export", help="export a checkpoint's model (NIR)")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path, help="file to write")
    p.add_argument("--format", default="nir", choices=["nir"])
    p.add_argument("--dt", type=float, default=1.0,
                   help="time step: NIR time constants are tau * dt (default 1.0)")
    p.add_argument("--input-shape", type=int, nargs=3, default=[3, 32, 32],
                   metavar=("C", "H", "W"), help="one input sample (default 3 32 32)")
    p.set_defaults(func=_cmd_export)
    return p
