"""``snnlite train``: train a spiking classifier (a resumable run folder)."""
from pathlib import Path

from ..io.config import TrainConfig
from ..models import MODELS
from ..train import Trainer
from .banner import banner, eta_printer
from .common import (
    ENCODINGS,
    add_data_args,
    add_run_args,
    apply_overrides,
    load_data,
    print_table,
    report_changes,
)
from .quantize import add_qat_args, qat_format

TABLE = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "wall_s"]
FORMATS = {"wall_s": ",.1f"}  # seconds, as logged


def add_parser(subparsers):
    t = subparsers.add_parser(
        "train", help="train a spiking classifier (a resumable run folder)",
        description="Train a spiking classifier with BPTT. A run folder holds last.h5 "
                    "(resumable with --resume), best.h5, metrics.jsonl and config.json. "
                    "Before the first step a summary of the run is printed, and the "
                    "estimated total time once the first steps are timed.")
    t.add_argument("--model", default="cifarnet_small", choices=sorted(MODELS),
                   help="model to train")
    add_data_args(t)
    t.add_argument("--T", type=int, default=8, help="time steps per image")
    t.add_argument("--epochs", type=int, default=60, help="epochs to train")
    t.add_argument("--batch-size", type=int, default=64, help="images per step")
    t.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: 0.1 * batch size / 256)")
    t.add_argument("--weight-decay", type=float, default=5e-4,
                   help="weight decay (not on batch norm and biases)")
    t.add_argument("--warmup-epochs", type=float, default=1.0,
                   help="epochs of linear warmup from lr/10 to lr, then cosine to 0")
    t.add_argument("--encoding", default="direct", choices=list(ENCODINGS),
                   help="input encoding")
    t.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights, batch order and augmentation")
    add_run_args(t, "runs/<model>-<dataset>-T<T>-s<seed>")
    t.add_argument("--init", default=None,
                   help="start from this checkpoint's weights (finetuning, e.g. with "
                        "--quantize; default: none, a fresh model)")
    add_qat_args(t)
    t.set_defaults(func=run)
    return t


def run(args):
    if args.quantize is not None and args.init is None:
        raise ValueError("--quantize finetunes a trained model (its batch-norm statistics are "
                         "frozen): give the checkpoint to start from with --init CKPT")
    cfg = TrainConfig(model=args.model, dataset=args.dataset, T=args.T, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      warmup_epochs=args.warmup_epochs, encoding=args.encoding, seed=args.seed,
                      augment=not args.no_augment,
                      num_classes=100 if args.dataset == "cifar100" else 10,
                      checkpoint_every=args.checkpoint_every, train_limit=args.train_limit,
                      test_limit=args.test_limit, init=args.init, quantize=qat_format(args))
    cfg, override = apply_overrides(cfg, args.override)
    out = Path(args.out or f"runs/{cfg.model}-{cfg.dataset}-T{cfg.T}-s{cfg.seed}")
    train, test = load_data(args.dataset, args.data)
    trainer = Trainer(cfg, out, train, test, resume=args.resume, progress=not args.no_progress,
                      log_every=args.log_every, override=override)
    report_changes(trainer)
    if trainer.state["epoch"] >= cfg.epochs:
        print(f"{out}: already trained for {cfg.epochs} epochs")
    else:
        print(banner("train", trainer.summary(), getattr(train, "source", None)), flush=True)
        trainer.on_eta = eta_printer(cfg.epochs, "train")
        trainer.fit()
    hist = trainer.state["history"]
    print_table(TABLE, hist[-10:], FORMATS)
    print(f"best test accuracy {trainer.state['best_acc']:.4f}; checkpoints in {out}")
    return 0
