"""``snnlite plot SOURCE...``: figures (PNG, SVG) of run folders, folders of runs, audit
reports and depth statistics; matplotlib is needed only here (``pip install -e ".[plot]"``).

    snnlite plot runs/teacher                                # its training curves
    snnlite plot examples/runs/d2e --kind curves kl-gap firing --format png svg
    snnlite audit CKPT --format json > a.json && snnlite plot a.json   # energy, firing
    snnlite plot runs/skd --kind raster --sample 3           # spikes of test image 3
    snnlite plot examples/runs/depth/cifarnet_small.json     # firing by depth, direct/TTFS

Several depth-statistics files give one figure each, ``NAME-depth-<file stem>.FORMAT``.
"""
import sys
from pathlib import Path

from .. import plot
from ..io.checkpoint import load_model
from .common import DATA_HELP, ENCODINGS, load_data

AUTO = "auto"


def add_parser(subparsers):
    p = subparsers.add_parser(
        "plot", help="figures: curves, firing, energy, rasters, KL vs gap, depth",
        description="Draw figures of run folders (a folder of run folders counts as its "
                    "runs), audit reports (snnlite audit --format json), depth statistics "
                    "(examples/depth_stats.py --json) and checkpoints. "
                    "Needs matplotlib (pip install -e \".[plot]\").")
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="run folder, folder of run folders, audit or depth-statistics .json, "
                        "or checkpoint .h5")
    p.add_argument("--kind", nargs="+", default=[AUTO], choices=[AUTO, *plot.KINDS],
                   metavar="KIND",
                   help="figures to draw; auto: curves (+ kl-gap and firing for transfer "
                        "runs) of runs, energy and firing of audits, depth of depth "
                        "statistics (one figure per file), the raster of a checkpoint")
    p.add_argument("--out", type=Path, default=Path("runs/plots"),
                   help="folder to write the figures in")
    p.add_argument("--name", default=None,
                   help="file name stem, files are NAME-KIND.FORMAT (default: the source's "
                        "name, or the folder the sources share)")
    p.add_argument("--format", nargs="+", default=["png"], choices=list(plot.FORMATS),
                   help="image formats to write")
    p.add_argument("--sample", type=int, default=0, help="raster: index of the test image")
    p.add_argument("--encoding", default=None, choices=list(ENCODINGS),
                   help="raster: input encoding (default: the checkpoint's)")
    p.add_argument("--T", type=int, default=None,
                   help="raster: time steps (default: the checkpoint's)")
    p.add_argument("--data", default=None, help="raster: " + DATA_HELP)
    p.set_defaults(func=run)
    return p


def _auto(src):
    kinds = []
    if src.runs:
        kinds.append("curves")
        if any(r.is_transfer for r in src.runs):
            kinds.append("kl-gap")
    if src.audits:
        kinds.append("energy")
    if src.audits or any(h.get("firing_rates") for r in src.runs for h in r.history):
        kinds.append("firing")
    if src.depths:
        kinds.append("depth")
    if src.checkpoints:
        kinds.append("raster")
    return kinds


def _figures(kind, src, args):
    """[(name suffix, figure)] of one kind."""
    if kind == "curves":
        return [("", plot.curves_figure(src.runs))]
    if kind == "kl-gap":
        runs = [r for r in src.runs if r.is_transfer] if AUTO in args.kind else src.runs
        return [("", plot.kl_gap_figure(runs))]
    if kind == "firing":
        return [("", plot.firing_figure(src.runs, src.audits))]
    if kind == "energy":
        return [("", plot.energy_figure(src.audits))]
    if kind == "depth":
        if not src.depths:
            raise ValueError("depth: needs depth statistics (python examples/depth_stats.py "
                             "CKPT --json FILE.json)")
        many = len(src.depths) > 1
        return [(f"-{d.name.replace('/', '-')}" if many else "", plot.depth_figure(d))
                for d in src.depths]
    ckpts = [(p.parent.name if p.name in plot.sources.CHECKPOINTS else p.stem, p)
             for p in src.checkpoints]
    ckpts += [(r.name.replace("/", "-"), r.checkpoint) for r in src.runs]
    missing = [r.name for r in src.runs if r.checkpoint is None]
    if missing or not ckpts:
        raise ValueError("raster: needs a checkpoint (a run folder with last.h5 or best.h5, "
                         f"or an .h5 file); none in {', '.join(missing) or 'the sources'}")
    out = []
    for name, path in ckpts:
        out.append((f"-{name}" if len(ckpts) > 1 else "", _raster(path, name, args)))
    return out


def _raster(path, name, args):
    model, cfg = load_model(path)
    _, test = load_data(cfg.dataset, args.data)
    if not 0 <= args.sample < len(test):
        raise ValueError(f"--sample: {args.sample} is not a test image index "
                         f"(0..{len(test) - 1})")
    T = args.T or cfg.T
    if T < 1:
        raise ValueError(f"--T: expected a positive integer, got {T}")
    image = test.images[args.sample] / 255.0
    return plot.raster_figure(model, image, test.labels[args.sample],
                              args.encoding or cfg.encoding, T, test.mean, test.std,
                              test.label_names, name=name, index=args.sample)


def run(args):
    try:
        plot.common.matplotlib()
    except ModuleNotFoundError as e:
        print(f"snnlite plot: error: {e}", file=sys.stderr)
        return 2
    src = plot.gather(args.sources)
    kinds = _auto(src) if AUTO in args.kind else list(dict.fromkeys(args.kind))
    if not kinds:
        raise ValueError("nothing to plot in the sources")
    stem = args.name or plot.sources.stem(args.sources)
    written = []
    for kind in kinds:
        for suffix, fig in _figures(kind, src, args):
            for fmt in args.format:
                written.append(plot.save(fig, args.out / f"{stem}-{kind}{suffix}.{fmt}"))
    for path in written:
        print(f"wrote {path}")
    return 0
