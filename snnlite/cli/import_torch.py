"""``snnlite import-torch FILE.pth --model NAME [--num-classes K] [--T 8] --out CKPT.h5
[--force]``: load a PyTorch/SpikingJelly state dict (without torch) into the named snnlite
model and write a checkpoint that ``snnlite eval`` (and every command reading checkpoints)
accepts. An existing ``--out`` is kept unless ``--force``."""
import dataclasses
from pathlib import Path

from .. import models
from ..io.checkpoint import save_checkpoint
from ..io.config import TrainConfig
from ..io.torch_import import load_torch_state_dict
from .common import DATASETS


def add_parser(subparsers):
    p = subparsers.add_parser(
        "import-torch", help="convert a PyTorch/SpikingJelly .pth to a checkpoint")
    p.add_argument("file", type=Path, help="the .pth file (read without torch)")
    p.add_argument("--model", required=True, choices=sorted(models.MODELS),
                   help="the snnlite model of the same structure (required)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classes (default: 10, or 100 with --dataset cifar100)")
    p.add_argument("--T", type=int, default=8, help="time steps stored in the config")
    p.add_argument("--dataset", default="cifar10", choices=list(DATASETS),
                   help="dataset stored in the config (eval and audit read it)")
    p.add_argument("--key", default=None,
                   help="entry holding the state dict in a nested checkpoint (default: found "
                        "by looking)")
    p.add_argument("--out", required=True, type=Path,
                   help="checkpoint to write (.h5; required)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)
    return p


def run(args):
    if args.out.exists() and not args.force:
        raise FileExistsError(f"{args.out} exists: pass --force to overwrite it, or choose "
                              "another --out")
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
