"""The settings of a transfer run: :class:`TransferConfig` and the method table."""
import dataclasses
import typing

from ..io.config import TrainConfig

METHODS = {"skd": "kl", "tsf": None, "reverse_kl": "reverse_kl", "mse": "mse"}
"""Method name -> divergence of :func:`snnlite.losses.distillation_loss` (None: CE only)."""


@dataclasses.dataclass
class TransferConfig(TrainConfig):
    """:class:`~snnlite.io.config.TrainConfig` plus the transfer settings. ``model``,
    ``num_classes``, ``dataset`` and ``teacher_T`` default (None) to the teacher's."""

    teacher: str = ""
    method: str = "skd"
    alpha: float = 0.4
    temperature: float = 4.0
    teacher_T: int | None = None
    model: str | None = None
    num_classes: int | None = None
    dataset: str | None = None
    encoding: str = "ttfs"
    T: int = 8
    epochs: int = 10

    # the teacher is identified by teacher_sha256 (in the run's config), not by its path
    RESUME_SAFE: typing.ClassVar[tuple] = TrainConfig.RESUME_SAFE + ("teacher",)
    RESUME_FIXED: typing.ClassVar[tuple] = TrainConfig.RESUME_FIXED + (
        "method", "teacher_T", "teacher_sha256")

    def __post_init__(self):
        if not self.teacher:
            raise ValueError("teacher: expected the path of a checkpoint")
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {sorted(METHODS)}, got {self.method!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {self.temperature}")
        if self.encoding == "direct":
            raise ValueError("encoding: the student sees event input (ttfs or latency), "
                             "got 'direct'")
        if self.teacher_T is not None and int(self.teacher_T) < 1:
            raise ValueError(f"teacher_T: expected a positive integer, got {self.teacher_T}")
        if None not in (self.model, self.num_classes, self.dataset):  # None until the
            super().__post_init__()  # teacher is known (see for_teacher)

    def for_teacher(self, teacher_cfg):
        """This config with the teacher's architecture, label space, dataset (which must not
        differ if set) and T (unless ``teacher_T`` is set) filled in."""
        fill = {}
        for k in ("model", "num_classes", "dataset"):
            mine, theirs = getattr(self, k), getattr(teacher_cfg, k)
            if mine is not None and mine != theirs:
                raise ValueError(f"{k}: the student is a copy of the teacher ({theirs!r}), "
                                 f"got {mine!r}")
            fill[k] = theirs
        fill["teacher_T"] = self.teacher_T or teacher_cfg.T
        return dataclasses.replace(self, **fill)
