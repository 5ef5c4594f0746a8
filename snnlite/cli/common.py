"""Helpers shared by the command modules: data arguments, data loading, tables."""
import math

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

# ---------------------------------------------------------------------- resuming
def apply_overrides(cfg, items):
    """(config with ``--override NAME=VALUE`` items applied, set of their names)."""
    import dataclasses

    values = dict(type(cfg).parse_setting(item) for item in items or ())
    return (dataclasses.replace(cfg, **values) if values else cfg), set(values)


def report_changes(trainer):
    """Say which settings a resume changed (they are recorded in the run)."""
    step = trainer.state["step"]
    for name, old, new in trainer.changes:
        print(f"{trainer.out}: {name} changes from {old!r} to {new!r} at step {step} "
              "(recorded in config.json, metrics.jsonl and the checkpoints)", flush=True)


# ---------------------------------------------------------------------- number flags
NUMBER_RULES = {
    # destination: rule, for every command that has the flag (None: not given)
    "T": "count", "teacher_T": "count", "epochs": "count", "batch_size": "count",
    "limit": "count", "train_limit": "count", "test_limit": "count", "samples": "count",
    "steps": "count", "checkpoint_every": "count", "num_classes": "count",
    "input_shape": "count", "warmup": "natural", "log_every": "natural", "seed": "natural",
    "sample": "natural",
    "lr": "positive", "temperature": "positive", "dt": "positive", "weight_decay": "nonneg",
    "warmup_epochs": "nonneg", "alpha": "fraction",
}
"""The range of each number flag, by argparse destination: ``check_numbers`` applies it to
whichever of them a command has, before the command runs."""
_RULE_TEXT = {"count": "a positive integer", "natural": "an integer >= 0",
              "positive": "a finite number > 0", "nonneg": "a finite number >= 0",
              "fraction": "a number in [0, 1]"}


def _in_range(rule, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if rule in ("count", "natural"):
        return isinstance(v, int) and v >= (1 if rule == "count" else 0)
    if not math.isfinite(v):
        return False
    return {"positive": v > 0, "nonneg": v >= 0, "fraction": 0 <= v <= 1}[rule]


def check_numbers(args):
    """ValueError ``--flag: expected ..., got ...`` for the first number flag of ``args``
    out of its range (see :data:`NUMBER_RULES`)."""
    for dest, rule in NUMBER_RULES.items():
        v = getattr(args, dest, None)
        if v is None:
            continue
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            if not _in_range(rule, item):
                raise ValueError(f"--{dest.replace('_', '-')}: expected {_RULE_TEXT[rule]}, "
                                 f"got {item}")
