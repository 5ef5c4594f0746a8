"""The run configuration a checkpoint stores (its ``config`` attribute, as JSON).

:class:`TrainConfig` is the schema: :class:`~snnlite.train.Trainer` trains from it, every
checkpoint carries ``dataclasses.asdict`` of it (plus any extra keys a subclass adds, such
as the transfer settings), and :func:`~snnlite.io.checkpoint.load_model` rebuilds the model
from its ``model`` and ``num_classes``. Unknown keys are ignored on reading, so checkpoints
written by a subclass or by an older or newer snnlite still load.

Resuming a run (:class:`~snnlite.train.Trainer` with ``resume=True``) compares every
setting with the checkpoint's, except those in ``RESUME_SAFE`` (they change no result):
any other difference is refused, naming the setting, unless the caller overrides it
explicitly (``override=``; ``snnlite train --resume --override lr=0.01``), which the run
records. Settings in ``RESUME_FIXED`` define what a step is and are never changed.
"""
import dataclasses
import math
import types
import typing

from .. import encoding, models


@dataclasses.dataclass
class TrainConfig:
    model: str = "cifarnet_small"
    dataset: str = "cifar10"
    T: int = 8
    epochs: int = 60
    batch_size: int = 64
    lr: float | None = None  # default 0.1 * batch_size / 256, as in the D2E paper
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    lr_floor: float = 0.0
    encoding: str = "direct"
    seed: int = 0
    augment: bool = True
    num_classes: int = 10
    checkpoint_every: int = 500
    checkpoint_minutes: float = 10.0
    eval_batch_size: int = 200
    train_limit: int | None = None  # first N training images only (quick runs, tests)
    test_limit: int | None = None
    init: str | None = None  # a checkpoint whose weights start the run (finetuning)
    quantize: dict | None = None  # quantization-aware training: a format (snnlite.quant.qat)

    RESUME_SAFE: typing.ClassVar[tuple] = ("checkpoint_every", "checkpoint_minutes",
                                           "eval_batch_size", "init")  # init: first step only
    RESUME_FIXED: typing.ClassVar[tuple] = ("model", "num_classes", "dataset", "batch_size",
                                            "train_limit")

    def __post_init__(self):
        for name in ("T", "epochs", "batch_size", "checkpoint_every", "eval_batch_size",
                     "seed", "num_classes", "train_limit", "test_limit"):
            _check_int(self, name, 0 if name == "seed" else 1)
        if self.lr is None:
            self.lr = 0.1 * self.batch_size / 256
        _check_number(self, "lr", 0, strict=True)
        _check_number(self, "momentum", 0, 1, upper_strict=True)
        for name in ("weight_decay", "warmup_epochs", "lr_floor"):
            _check_number(self, name, 0)
        _check_number(self, "checkpoint_minutes", 0, strict=True)
        if not isinstance(self.augment, bool):
            raise TypeError(f"augment: expected True or False, got {self.augment!r}")
        if self.init is not None and not isinstance(self.init, str):
            raise TypeError(f"init: expected a checkpoint path, got {self.init!r}")
        if self.quantize is not None and not isinstance(self.quantize, dict):
            raise TypeError(f"quantize: expected a format (dict), got {self.quantize!r}")
        if self.encoding not in encoding.ENCODERS:
            raise ValueError(f"encoding: expected one of {sorted(encoding.ENCODERS)}, "
                             f"got {self.encoding!r}")
        if self.model not in models.MODELS:
            raise ValueError(f"model: expected one of {sorted(models.MODELS)}, "
                             f"got {self.model!r}")

    @classmethod
    def from_dict(cls, d):
        """The config of a checkpoint's ``config`` dict; keys this class lacks are ignored."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    @classmethod
    def parse_setting(cls, text):
        """``"name=value"`` -> (name, value typed as the field ``name``), e.g. for
        ``--override lr=0.01``; ``none`` gives None where a field allows it."""
        name, sep, raw = str(text).partition("=")
        name, raw = name.strip().replace("-", "_"), raw.strip()
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE, got {text!r}")
        if name not in fields:
            raise ValueError(f"unknown setting {name!r} (settings: {', '.join(fields)})")
        return name, _parse_value(name, raw, fields[name].type)


def _parse_value(name, raw, typ):
    args = typing.get_args(typ) if isinstance(typ, types.UnionType) or \
        typing.get_origin(typ) is typing.Union else (typ,)
    if type(None) in args and raw.lower() in ("none", "null", ""):
        return None
    for t in args:
        if t is bool:
            if raw.lower() in ("true", "yes", "1", "on"):
                return True
            if raw.lower() in ("false", "no", "0", "off"):
                return False
        elif t in (int, float, str):
            try:
                return t(raw)
            except ValueError:
                continue
    want = " or ".join(getattr(t, "__name__", str(t)) for t in args)
    raise ValueError(f"{name}: expected {want}, got {raw!r}")


def _check_int(cfg, name, minimum):
    v = getattr(cfg, name)
    if v is None and name in ("train_limit", "test_limit"):
        return
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name}: expected an integer, got {v!r}")
    if v < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: expected {what}, got {v}")


def _check_number(cfg, name, lo, hi=None, strict=False, upper_strict=False):
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name}: expected a number, got {v!r}")
    ok = math.isfinite(v) and (v > lo if strict else v >= lo) and \
        (hi is None or (v < hi if upper_strict else v <= hi))
    if not ok:
        rng = f"{'>' if strict else '>='} {lo}" if hi is None else \
            f"in [{lo}, {hi}{')' if upper_strict else ']'}"
        raise ValueError(f"{name}: expected a finite number {rng}, got {v}")
