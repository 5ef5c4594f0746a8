"""Command line: ``snnlite train | eval | data`` (also ``python -m snnlite``)."""
import argparse
import json
import sys
from pathlib import Path


def _add_data_args(p):
    p.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100"])
    p.add_argument("--data", default=None,
                   help="dataset file, archive or folder (default: $SNNLITE_DATA, then the "
                        "user cache, then download)")


def _load_data(args):
    from . import data
    return data.load_dataset(args.dataset, args.data)


def _cmd_train(args):
    from .train import TrainConfig, Trainer
    cfg = TrainConfig(model=args.model, dataset=args.dataset, T=args.T, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                      warmup_epochs=args.warmup_epochs, encoding=args.encoding, seed=args.seed,
                      augment=not args.no_augment,
                      num_classes=100 if args.dataset == "cifar100" else 10,
                      checkpoint_every=args.checkpoint_every, train_limit=args.train_limit,
                      test_limit=args.test_limit)
    out = Path(args.out or f"runs/{cfg.model}-{cfg.dataset}-T{cfg.T}-s{cfg.seed}")
    train, test = _load_data(args)
    trainer = Trainer(cfg, out, train, test, resume=args.resume, progress=not args.no_progress,
                      log_every=args.log_every)
    if trainer.state["epoch"] >= cfg.epochs:
        print(f"{out}: already trained for {cfg.epochs} epochs")
    else:
        trainer.fit()
    hist = trainer.state["history"]
    _print_table(["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "wall_s"],
                 hist[-10:])
    print(f"best test accuracy {trainer.state['best_acc']:.4f}; checkpoints in {out}")
    return 0


def _cmd_eval(args):
    from .train import evaluate, load_model
    model, cfg = load_model(args.checkpoint)
    args.dataset = cfg.dataset
    _, test = _load_data(args)
    if args.limit:
        from .train import subset
        test = subset(test, args.limit)
    T = args.T or cfg.T
    res = {}
    for enc in args.encoding:
        ev = evaluate(model, test, T, enc, progress=not args.no_progress)
        res[enc] = {"accuracy": ev["acc"], "loss": ev["loss"], "T": T, "images": len(test)}
    if args.format == "json":
        print(json.dumps({"checkpoint": str(args.checkpoint), "model": cfg.model,
                          "results": res}, indent=2))
    else:
        _print_table(["encoding", "T", "images", "accuracy", "loss"],
                     [dict(encoding=k, **v) for k, v in res.items()])
    return 0


def _cmd_data(args):
    from data_tools import cli_main
    argv = [args.name] + (["--from", args.src] if args.src else []) + \
        (["--out", args.out] if args.out else [])
    return cli_main(argv, prog="snnlite data")


def _cmd_bench(args):
    from . import bench
    images = bench.bench_images(args.batch_size, args.data)
    peak = bench.sgemm_gflops()
    rows = []
    for T in args.T:
        r = bench.measure(args.model, T, args.batch_size, args.steps, args.warmup, images,
                          args.weights)
        r["train_gflops"] = r["train_img_s"] * r["train_flops_per_img"] / 1e9
        r["train_peak_fraction"] = r["train_gflops"] / peak
        r["sgemm_gflops"] = peak
        rows.append(r)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
    else:
        print(f"{args.model}, batch {args.batch_size}, input {rows[0]['input']}; numpy sgemm "
              f"{peak:.0f} GFLOP/s")
        _print_table(["T", "spike_rate", "train_img_s", "train_gflops", "train_peak_fraction",
                      "infer_img_s", "peak_rss_mb"], rows)
    return 0


def _print_table(cols, rows):
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


def build_parser():
    from .models import MODELS
    p = argparse.ArgumentParser(prog="snnlite", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a spiking classifier")
    t.add_argument("--model", default="cifarnet_small", choices=sorted(MODELS))
    _add_data_args(t)
    t.add_argument("--T", type=int, default=8, help="time steps (default 8)")
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=None, help="default 0.1 * batch / 256")
    t.add_argument("--weight-decay", type=float, default=5e-4)
    t.add_argument("--warmup-epochs", type=float, default=1.0)
    t.add_argument("--encoding", default="direct", choices=["direct", "ttfs", "latency"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps")
    t.add_argument("--train-limit", type=int, default=None, help="use the first N images")
    t.add_argument("--test-limit", type=int, default=None)
    t.add_argument("--out", default=None, help="run folder (default runs/<model>-...)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--log-every", type=int, default=0,
                   help="with --no-progress: print a status line every N steps")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint on the test split")
    e.add_argument("checkpoint")
    _add_data_args(e)
    e.add_argument("--encoding", nargs="+", default=["direct"],
                   choices=["direct", "ttfs", "latency"])
    e.add_argument("--T", type=int, default=None, help="default: the checkpoint's")
    e.add_argument("--limit", type=int, default=None, help="first N test images")
    e.add_argument("--format", default="table", choices=["table", "json"])
    e.add_argument("--no-progress", action="store_true")
    e.set_defaults(func=_cmd_eval)

    b = sub.add_parser("bench", help="training and inference throughput on this machine")
    b.add_argument("--model", default="cifarnet_small", choices=sorted(MODELS))
    b.add_argument("--T", type=int, nargs="+", default=[8, 4])
    b.add_argument("--batch-size", type=int, default=32)
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--data", default=None, help="cifar10-mini.npz for real images "
                   "(default: uniform noise)")
    b.add_argument("--weights", default=None, help="checkpoint of a trained model: speed "
                   "at its firing rates (default: a fresh initialisation)")
    b.add_argument("--format", default="table", choices=["table", "json"])
    b.set_defaults(func=_cmd_bench)

    d = sub.add_parser("data", help="fetch, verify and convert a dataset to HDF5")
    d.add_argument("name", choices=["cifar10", "cifar100"])
    d.add_argument("--from", dest="src", default=None, help="local archive or folder")
    d.add_argument("--out", default=None, help="output folder (default: user cache)")
    d.set_defaults(func=_cmd_data)

    from .transfer import add_transfer_parser
    add_transfer_parser(sub)
    from .event.cli import add_audit_parser
    add_audit_parser(sub)
    from .io.cli import add_export_parser, add_import_parser
    add_import_parser(sub)
    add_export_parser(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt as e:
        print(f"\n{e}", file=sys.stderr)
        return 130
    except (FileNotFoundError, FileExistsError, ValueError, FloatingPointError) as e:
        print(f"snnlite {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
