"""The run configuration a checkpoint stores (its ``config`` attribute, as JSON).

:class:`TrainConfig` is the schema: :class:`~snnlite.train.Trainer` trains from it, every
checkpoint carries ``dataclasses.asdict`` of it (plus any extra keys a subclass adds, such
as the transfer settings), and :func:`~snnlite.io.checkpoint.load_model` rebuilds the model
from its ``model`` and ``num_classes``. Unknown keys are ignored on reading, so checkpoints
written by a subclass or by an older or newer snnlite still load.
"""
import dataclasses

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

    def __post_init__(self):
        if self.lr is None:
            self.lr = 0.1 * self.batch_size / 256
        if self.encoding not in encoding.ENCODERS:
            raise ValueError(f"encoding: expected one of {sorted(encoding.ENCODERS)}, "
                             f"got {self.encoding!r}")
        if self.model not in models.MODELS:
            raise ValueError(f"model: expected one of {sorted(models.MODELS)}, "
                             f"got {self.model!r}")
        for name in ("T", "epochs", "batch_size", "checkpoint_every", "eval_batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected a positive integer, got "
                                 f"{getattr(self, name)}")

    @classmethod
    def from_dict(cls, d):
        """The config of a checkpoint's ``config`` dict; keys this class lacks are ignored."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})
