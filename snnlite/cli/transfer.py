"""``snnlite transfer``: direct-to-event transfer of a trained checkpoint (SKD, TSF, ...);
the trainer is :class:`snnlite.transfer.Transfer`."""
from pathlib import Path

from ..io.checkpoint import read_config
from ..transfer import METHODS, Transfer, TransferConfig
from .banner import banner, eta_printer
from .common import (
    DATA_HELP,
    add_run_args,
    apply_overrides,
    load_data,
    print_table,
    report_changes,
)
from .quantize import add_qat_args, qat_format

TABLE = ["epoch", "train_loss", "test_acc", "teacher_acc", "gap", "kl", "kl_temp",
         "firing_rate", "wall_s"]
FORMATS = {"wall_s": ",.1f"}


def add_parser(subparsers):
    p = subparsers.add_parser(
        "transfer", help="direct-to-event transfer of a checkpoint (SKD, TSF, ...)",
        description="Finetune a copy of a direct-coded checkpoint on event (TTFS) input, "
                    "distilling from the frozen original (D2E).")
    p.add_argument("--teacher", required=True,
                   help="checkpoint of the direct-coded model, e.g. runs/x/best.h5 "
                        "(required)")
    p.add_argument("--method", default="skd", choices=list(METHODS),
                   help="skd: CE + KL from the teacher; tsf: CE alone; reverse_kl, mse: "
                        "other divergences (ablations)")
    p.add_argument("--encoding", default="ttfs", choices=["ttfs", "latency"],
                   help="the student's event encoding")
    p.add_argument("--T", type=int, default=8, help="student time steps")
    p.add_argument("--teacher-T", type=int, default=None,
                   help="teacher time steps (default: the checkpoint's)")
    p.add_argument("--epochs", type=int, required=True, help="epochs to train (required)")
    p.add_argument("--alpha", type=float, default=0.4,
                   help="weight of the cross-entropy term (skd)")
    p.add_argument("--temperature", type=float, default=4.0,
                   help="distillation temperature K")
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: 0.1 * batch size / 256)")
    p.add_argument("--batch-size", type=int, default=64, help="images per step")
    p.add_argument("--weight-decay", type=float, default=5e-4,
                   help="weight decay (not on batch norm and biases)")
    p.add_argument("--warmup-epochs", type=float, default=1.0,
                   help="epochs of linear warmup from lr/10 to lr, then cosine to 0")
    p.add_argument("--seed", type=int, default=0, help="seed of the batch order and augmentation")
    p.add_argument("--data", default=None, help=DATA_HELP + "; the dataset is the teacher's")
    add_run_args(p, "runs/transfer-<method>-<encoding>-T<T>-s<seed>")
    add_qat_args(p)
    p.set_defaults(func=run)
    return p


def run(args):
    dataset = read_config(args.teacher).get("dataset", "cifar10")
    cfg = TransferConfig(teacher=args.teacher, method=args.method, encoding=args.encoding,
                         T=args.T, teacher_T=args.teacher_T, epochs=args.epochs,
                         alpha=args.alpha, temperature=args.temperature, lr=args.lr,
                         batch_size=args.batch_size, weight_decay=args.weight_decay,
                         warmup_epochs=args.warmup_epochs, seed=args.seed,
                         augment=not args.no_augment, checkpoint_every=args.checkpoint_every,
                         train_limit=args.train_limit, test_limit=args.test_limit,
                         quantize=qat_format(args))
    cfg, override = apply_overrides(cfg, args.override)
    out = Path(args.out or f"runs/transfer-{cfg.method}-{cfg.encoding}-T{cfg.T}-s{cfg.seed}")
    train, test = load_data(dataset, args.data)
    tr = Transfer(cfg, out, train, test, resume=args.resume, progress=not args.no_progress,
                  log_every=args.log_every, override=override)
    report_changes(tr)
    print(banner("transfer", tr.summary(), getattr(train, "source", None)), flush=True)
    tr.on_eta = eta_printer(cfg.epochs, "transfer")
    res = tr.fit()
    hist = tr.state["history"]
    print_table(TABLE, hist if len(hist) <= 12 else hist[:1] + hist[-10:], FORMATS)
    r = res["pearson_kl_gap"]
    print(f"{res['method']}: teacher (direct) {res['teacher_acc']:.4f} | baseline "
          f"({res['encoding']}) {res['baseline_acc']:.4f} | final {res['final_acc']:.4f} | "
          f"best {res['best_acc']:.4f} | r(KL, gap) "
          f"{'n/a' if r is None else f'{r:.3f}'}; results in {out / 'results.json'}")
    return 0
