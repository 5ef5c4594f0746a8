"""``snnlite bench``: training and inference throughput on this machine."""
import json

from .. import bench
from ..models import MODELS
from .common import print_table


def add_parser(subparsers):
    b = subparsers.add_parser("bench", help="training and inference throughput on this machine")
    b.add_argument("--model", default="cifarnet_small", choices=sorted(MODELS),
                   help="model to time")
    b.add_argument("--T", type=int, nargs="+", default=[8, 4],
                   help="time steps, one table row each")
    b.add_argument("--batch-size", type=int, default=32, help="images per step")
    b.add_argument("--steps", type=int, default=5, help="timed steps per row")
    b.add_argument("--warmup", type=int, default=2,
                   help="untimed steps first (compilation, caches)")
    b.add_argument("--data", default=None, help="cifar10-mini.npz for real images "
                   "(default: uniform noise)")
    b.add_argument("--weights", default=None, help="checkpoint of a trained model: speed "
                   "at its firing rates (default: a fresh initialisation)")
    b.add_argument("--format", default="table", choices=["table", "json"],
                   help="output format")
    b.set_defaults(func=run)
    return b


def run(args):
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
        print_table(["T", "spike_rate", "train_img_s", "train_gflops", "train_peak_fraction",
                     "infer_img_s", "peak_rss_mb"], rows,
                    {"train_img_s": ".1f", "train_gflops": ".0f", "train_peak_fraction": ".2f",
                     "infer_img_s": ".0f", "peak_rss_mb": ",.0f"})
    return 0
