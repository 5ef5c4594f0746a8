"""Helpers shared by the command modules: data arguments, data loading, tables, the help
formatter."""
import argparse
import math

from .. import data

DATASETS = ("cifar10", "cifar100")
ENCODINGS = ("direct", "ttfs", "latency")
DATA_HELP = ("dataset file, archive or folder (default: $SNNLITE_DATA, then the user cache, "
             "then download)")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's help followed by its default, ``(default: 0.4)``, unless the help
    already states it (say, ``default: the checkpoint's`` where the default is None) or the
    option is an on/off flag; lists show as they are typed (``direct ttfs``)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._action_max_length = 18  # every command name on its help's line

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if ("default" in text or not action.option_strings or d is None
                or isinstance(d, bool) or d is argparse.SUPPRESS):
            return text
        shown = " ".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)
        return f"{text} (default: {shown.replace('%', '%%')})"

    def _format_action(self, action):
        text = super()._format_action(action)
        if action.nargs == argparse.PARSER:  # the commands: one line each, no metavar line
            text = text.split("\n", 1)[1]
        return text


def add_data_args(p):
    """``--dataset`` and ``--data`` on parser ``p``."""
    p.add_argument("--dataset", default="cifar10", choices=list(DATASETS), help="dataset")
    p.add_argument("--data", default=None, help=DATA_HELP)


def add_run_args(p, out_default):
    """The options of a resumable run folder, shared by ``train`` and ``transfer``: data
    limits, augmentation, checkpointing, ``--out`` (default ``out_default``), ``--resume``,
    ``--override`` and the progress display."""
    p.add_argument("--no-augment", action="store_true",
                   help="no random crop and flip of the training images")
    p.add_argument("--checkpoint-every", type=int, default=500,
                   help="write last.h5 every N steps (and at the end of each epoch)")
    p.add_argument("--train-limit", type=int, default=None,
                   help="train on the first N training images (default: all)")
    p.add_argument("--test-limit", type=int, default=None,
                   help="evaluate on the first N test images (default: all)")
    p.add_argument("--out", default=None, help=f"run folder (default: {out_default})")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out where it stopped")
    p.add_argument("--override", action="append", default=None, metavar="NAME=VALUE",
                   help="with --resume: change one of the run's settings from where it "
                        "stopped (e.g. lr=0.01 after a divergence), recorded in the run; "
                        "repeatable")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    p.add_argument("--log-every", type=int, default=0,
                   help="with --no-progress: a status line every N steps (0: none)")


def load_data(dataset, path):
    """(train, test) of ``dataset`` from ``path`` (``--data``; None: the default places), as
    :func:`snnlite.data.load_dataset` finds them; both carry ``source``, the file read."""
    if path is not None and str(path).endswith(".npz"):
        source = path
        train, test = data.load_mini(path)
    else:
        source = data.resolve_dataset(dataset, path)
        train, test = data.load_h5(source, "train"), data.load_h5(source, "test")
    train.source = test.source = str(source)
    return train, test


def number(v, digits=4):
    """``v`` to ``digits`` significant digits, without an exponent from 1e-4 up and with
    thousands separators from 1,000 up: 0.87834 -> 0.8783, 49.6852 -> 49.69, 23937.4 ->
    23,937, 3.1e-06 -> 3.1e-06; ints as they are."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if not math.isfinite(v) or v == 0:
        return str(v) if v else "0"
    mag = math.floor(math.log10(abs(v)))
    if mag >= digits - 1:
        return f"{v:,.0f}"
    if mag < -4:
        return f"{v:.{digits}g}"
    return f"{v:.{digits - 1 - mag}f}"


def print_table(cols, rows, formats=None):
    """Print dicts ``rows`` as right-aligned columns ``cols``: numbers by :func:`number`
    (4 significant digits), or by ``formats`` {column: format spec} where given (``".1f"``:
    one decimal, as a wall time in seconds has); a missing value is blank."""
    formats = formats or {}

    def fmt(c, v):
        if v is None or v == "":
            return ""
        if c in formats and isinstance(v, (int, float)) and not isinstance(v, bool):
            return format(v, formats[c])
        return number(v)
    cells = [[fmt(c, r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths)))


# ---------------------------------------------------------------------- resuming
def apply_overrides(cfg, items):
    """(config with the ``--override`` items applied, set of their names). An item is
    ``NAME=VALUE``, or ``NAME`` alone to accept this command's own flag for it (``--lr 0.01
    --override lr``)."""
    import dataclasses

    values, names = {}, set()
    fields = {f.name for f in dataclasses.fields(cfg)}
    for item in items or ():
        if "=" in item:
            name, value = type(cfg).parse_setting(item)
            values[name] = value
        else:
            name = item.strip().replace("-", "_")
            if name not in fields:
                raise ValueError(f"--override: unknown setting {name!r} (settings: "
                                 f"{', '.join(sorted(fields))})")
        names.add(name)
    return (dataclasses.replace(cfg, **values) if values else cfg), names


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
