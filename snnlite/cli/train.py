"""``snnlite train``: train a spiking classifier (a resumable run folder)."""
from pathlib import Path

from ..io.config import TrainConfig
from ..models import MODELS
from ..train import Trainer
from .common import (ENCODINGS, add_data_args, apply_overrides, load_data, print_table,
                     report_changes)


def add_parser(subparsers):
    t = subparsers.add_parser("train", help="train a spiking classifier")
    t.add_argument("--model", default="cifarnet_small", choices=sorted(MODELS))
    add_data_args(t)
    t.add_argument("--T", type=int, default=8, help="time steps (default 8)")
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=None, help="default 0.1 * batch / 256")
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--warmup-epochs", type=float, default=1.0)
    t.add_argument("--encoding", default="direct", choices=list(ENCODINGS))
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps")
    t.add_argument("--train-limit", type=int, default=None, help="use the first N images")
    t.add_argument("--test-limit", type=int, default=None)
    t.add_argument("--out", default=None, help="run folder (default runs/<model>-...)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--override", action="append", default=None, metavar="NAME=VALUE",
                   help="with --resume: change one of the run's settings from where it "
                        "stopped (e.g. lr=0.01 after a divergence), recorded in the run; "
                        "repeatable")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--log-every", type=int, default=0,
                   help="with --no-progress: print a status line every N steps")
    t.set_defaults(func=run)
    return t


def run(args):
    cfg = TrainConfig(model=args.model, dataset=args.dataset, T=args.T, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      warmup_epochs=args.warmup_epochs, encoding=args.encoding, seed=args.seed,
                      augment=not args.no_augment,
                      num_classes=100 if args.dataset == "cifar100" else 10,
                      checkpoint_every=args.checkpoint_every, train_limit=args.train_limit,
                      test_limit=args.test_limit)
    cfg, override = apply_overrides(cfg, args.override)
    out = Path(args.out or f"runs/{cfg.model}-{cfg.dataset}-T{cfg.T}-s{cfg.seed}")
    train, test = load_data(args.dataset, args.data)
    trainer = Trainer(cfg, out, train, test, resume=args.resume, progress=not args.no_progress,
                      log_every=args.log_every, override=override)
    report_changes(trainer)
    if trainer.state["epoch"] >= cfg.epochs:
        print(f"{out}: already trained for {cfg.epochs} epochs")
    else:
        trainer.fit()
    hist = trainer.state["history"]
    print_table(["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "wall_s"],
                hist[-10:])
    print(f"best test accuracy {trainer.state['best_acc']:.4f}; checkpoints in {out}")
    return 0
