"""Direct-to-event (D2E) transfer: turn a direct-coded SNN into an event-coded one.

The teacher is a trained direct-coded model (a :class:`~snnlite.train.Trainer` checkpoint),
frozen and in eval mode: it sees the normalised image, repeated at each of its own T steps.
The student starts as a bit-identical copy of it and sees the TTFS code of the raw [0, 1]
image (the same augmented batch), T = 8 by default. Methods (``TransferConfig.method``):

- ``skd``: ``alpha * CE + (1 - alpha) * K^2 * KL(teacher || student)`` at temperature K
  (self-knowledge distillation, :func:`snnlite.losses.skd_loss`; alpha 0.4, K 4);
- ``tsf``: task-specific finetuning, CE alone;
- ``reverse_kl``, ``mse``: ablations, the divergence term swapped
  (:func:`snnlite.losses.distillation_loss`).

:class:`Transfer` is a :class:`~snnlite.train.Trainer` with its own :meth:`Transfer.loss`:
same loop, schedule (cosine with warmup from lr/10), checkpoints, exact resume and
``metrics.jsonl``. Each metrics row adds, on the test split: ``teacher_acc`` (direct
input), ``gap`` (teacher_acc - test_acc, the student on event input), ``kl`` (mean
KL(teacher || student) at temperature 1), ``kl_temp`` (the same at the training
temperature, without the K^2 factor), ``firing_rate`` (all spiking layers) and
``firing_rates`` ({dotted LIF name: spikes / neurons / T}). Row ``epoch: 0`` is the
unchanged copy before any step (the TTFS baseline). At the end, ``results.json`` holds the
accuracies, the Pearson r between KL and gap over the epochs, the method, config and wall
time.

Modules: :mod:`~snnlite.transfer.config` (:class:`TransferConfig`, :data:`METHODS`),
:mod:`~snnlite.transfer.stats` (:func:`state_digest`, :func:`pearson`, :func:`mcnemar`),
:mod:`~snnlite.transfer.trainer` (:class:`Transfer`). The command line is
:mod:`snnlite.cli.transfer`.
"""
from .config import METHODS, TransferConfig
from .stats import mcnemar, pearson, state_digest
from .trainer import Transfer

__all__ = ["METHODS", "Transfer", "TransferConfig", "mcnemar", "pearson", "state_digest"]
