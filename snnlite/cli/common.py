"""Helpers shared by the command modules: data arguments, data loading, tables."""
from .. import data

DATASETS = ("cifar10", "cifar100")
ENCODINGS = ("direct", "ttfs", "latency")
DATA_HELP = ("dataset file, archive or folder (default: $SNNLITE_DATA, then the user cache, "
             "then download)")


def add_data_args(p):
    """``--dataset`` and ``--data`` on parser ``p``."""
    p.add_argument("--dataset", default="cifar10", choices=list(DATASETS))
    p.add_argument("--data", default=None, help=DATA_HELP)


def load_data(dataset, path):
    """(train, test) of ``dataset`` from ``path`` (``--data``; None: the default places)."""
    return data.load_dataset(dataset, path)


def print_table(cols, rows):
    """Print dicts ``rows`` as right-aligned columns ``cols`` (floats to 4 decimals)."""
    def fmt(v):
        return f"{v:.4f}" if isinstance(v, float) else str(v)
    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))
