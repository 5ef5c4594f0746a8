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

:class:`Transfer` is a :class:`~snnlite.train.Trainer`: same loop, schedule (cosine with
warmup from lr/10), checkpoints, exact resume and ``metrics.jsonl``. Each metrics row adds,
on the test split: ``teacher_acc`` (direct input), ``gap`` (teacher_acc - test_acc, the
student on event input), ``kl`` (mean KL(teacher || student) at temperature 1), ``kl_temp``
(the same at the training temperature, without the K^2 factor), ``firing_rate`` (all
spiking layers) and ``firing_rates`` ({dotted LIF name: spikes / neurons / T}). Row
``epoch: 0`` is the unchanged copy before any step (the TTFS baseline). At the end,
``results.json`` holds the accuracies, the Pearson r between KL and gap over the epochs, the
method, config and wall time.
"""
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from . import losses, models
from .io.checkpoint import atomic_write, load_checkpoint
from .nn import LIF
from .train import TrainConfig, Trainer, evaluate, load_model, model_input

METHODS = {"skd": "kl", "tsf": None, "reverse_kl": "reverse_kl", "mse": "mse"}
"""Method name -> divergence of :func:`snnlite.losses.distillation_loss` (None: CE only)."""


@dataclasses.dataclass
class TransferConfig(TrainConfig):
    """:class:`~snnlite.train.TrainConfig` plus the transfer settings. ``model``,
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
        if self.model is not None:  # None until the teacher is known (see for_teacher)
            super().__post_init__()

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


def spiking_layers(model, prefix=""):
    """[(dotted name, LIF module)] of every spiking layer of ``model``, in order."""
    out = []
    for name, child in model.named_children():
        if isinstance(child, LIF):
            out.append((prefix + name, child))
        out += spiking_layers(child, f"{prefix}{name}.")
    return out


def neuron_counts(model, image_shape):
    """{dotted LIF name: neurons per sample}. Counted by one forward of a blank image
    (T = B = 1, eval mode) with every threshold lowered so that each neuron fires once."""
    lifs = spiking_layers(model)
    thresholds = [m.v_threshold for _, m in lifs]
    was_training = model.training
    model.eval()
    try:
        for _, m in lifs:
            m.v_threshold = -1e30
        model.forward(np.zeros((1, 1) + tuple(image_shape), model.dtype))
        return {name: int(m.spike_count) for name, m in lifs}
    finally:
        for (_, m), v in zip(lifs, thresholds):
            m.v_threshold = v
        model.train(was_training)


def state_digest(state):
    """SHA-256 of a ``state_dict`` (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for k, v in state.items():
        v = np.ascontiguousarray(v)
        h.update(f"{k}:{v.dtype.str}:{v.shape};".encode())
        h.update(v.tobytes())
    return h.hexdigest()


def pearson(x, y):
    """Pearson correlation of two sequences; None if fewer than 3 points or one is
    constant."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def mcnemar(correct_a, correct_b):
    """Exact two-sided McNemar test of two classifiers on the same samples.

    ``correct_a``, ``correct_b``: boolean arrays, True where each was right. Returns
    ``(b, c, p)``: the samples only A got right, only B got right, and the probability of
    a split at least as uneven as (b, c) if both were equally accurate (binomial, 1/2)."""
    ra, rb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if ra.shape != rb.shape or ra.ndim != 1:
        raise ValueError(f"correct_a, correct_b: expected two 1-D arrays of one length, got "
                         f"shapes {ra.shape} and {rb.shape}")
    b, c = int((ra & ~rb).sum()), int((~ra & rb).sum())
    if b + c == 0:
        return b, c, 1.0
    from scipy.stats import binom
    return b, c, float(min(1.0, 2 * binom.cdf(min(b, c), b + c, 0.5)))


class Transfer(Trainer):
    """Finetune a copy of the teacher checkpoint ``config.teacher`` on event input.

    ``fit()`` logs the epoch-0 baseline, trains (resumable as with :class:`Trainer`) and
    writes ``results.json``; it returns :meth:`results`.
    """

    def __init__(self, config, out_dir, train_set, test_set, resume=False, progress=True):
        teacher, teacher_cfg = load_model(config.teacher)
        config = config.for_teacher(teacher_cfg)
        self.teacher = teacher.eval()
        self.teacher_sha256 = state_digest(teacher.state_dict())
        student = models.build(config.model, config.num_classes)
        student.load_state_dict(teacher.state_dict())
        super().__init__(config, out_dir, train_set, test_set, model=student, resume=resume,
                         progress=progress)
        self._teacher_eval = None
        self._last_eval = None

    # ------------------------------------------------------------------ checkpoints
    def config_dict(self):
        return dict(super().config_dict(), teacher_sha256=self.teacher_sha256)

    def _restore(self, ck):
        saved = dict(ck["config"])
        for k in ("method", "alpha", "temperature", "teacher_T", "teacher_sha256"):
            mine = self.teacher_sha256 if k == "teacher_sha256" else getattr(self.cfg, k)
            if saved.get(k) != mine:
                raise ValueError(f"resume: checkpoint was made with {k}={saved.get(k)!r}, "
                                 f"this run asks for {mine!r}")
        super()._restore(ck)

    # ------------------------------------------------------------------ steps
    def teacher_logits(self, x):
        """Teacher logits [B, K] of raw images x: eval mode, direct coding, no cache."""
        ds = self.train_set
        return self.teacher.forward(model_input(x, "direct", self.cfg.teacher_T, ds.mean,
                                                ds.std))

    def loss(self, student_logits, teacher_logits, labels):
        """(loss, grad wrt student logits) of the configured method."""
        cfg = self.cfg
        if METHODS[cfg.method] is None:
            return losses.cross_entropy(student_logits, labels)
        return losses.distillation_loss(student_logits, teacher_logits, labels, cfg.alpha,
                                        cfg.temperature, METHODS[cfg.method])

    def train_step(self, x, y):
        cfg = self.cfg
        t = None if METHODS[cfg.method] is None else self.teacher_logits(x)
        z = self.model.forward(model_input(x, cfg.encoding, cfg.T, self.train_set.mean,
                                           self.train_set.std))
        loss, g = self.loss(z, t, y)
        self.opt.zero_grad()
        self.model.backward(g)
        self.opt.step()
        return loss, int((z.argmax(1) == y).sum())

    # ------------------------------------------------------------------ metrics
    def teacher_eval(self):
        """The teacher on the test split, direct input (computed once)."""
        if self._teacher_eval is None:
            cfg = self.cfg
            self._teacher_eval = evaluate(self.teacher, self.test_set, cfg.teacher_T,
                                          "direct", cfg.eval_batch_size, self.progress)
        return self._teacher_eval

    def evaluate_test(self):
        """The student on the test split (event input), with per-layer firing rates."""
        cfg = self.cfg
        lifs = spiking_layers(self.model)
        spikes = dict.fromkeys((name for name, _ in lifs), 0)

        def count(_logits):
            for name, m in lifs:
                spikes[name] += m.spike_count

        ev = evaluate(self.model, self.test_set, cfg.T, cfg.encoding, cfg.eval_batch_size,
                      self.progress, on_batch=count)
        neurons = neuron_counts(self.model, self.test_set.images.shape[1:])
        steps = cfg.T * len(self.test_set)
        ev["firing_rates"] = {k: spikes[k] / (neurons[k] * steps) for k in spikes}
        ev["firing_rate"] = sum(spikes.values()) / max(sum(neurons.values()) * steps, 1)
        self._last_eval = ev
        return ev

    def extra_metrics(self):
        ev, tev = self._last_eval, self.teacher_eval()
        K = float(self.cfg.temperature)
        kl, _ = losses.kl_forward(ev["logits"], tev["logits"], 1.0)
        kl_temp, _ = losses.kl_forward(ev["logits"], tev["logits"], K)
        return {"teacher_acc": tev["acc"], "gap": tev["acc"] - ev["acc"], "kl": kl,
                "kl_temp": kl_temp / (K * K), "firing_rate": ev["firing_rate"],
                "firing_rates": ev["firing_rates"]}

    # ------------------------------------------------------------------ loop
    def fit(self):
        st = self.state
        if not st["history"]:  # epoch 0: the unchanged copy on event input
            ev = self.evaluate_test()
            row = {"epoch": 0, "step": 0, "test_loss": ev["loss"], "test_acc": ev["acc"],
                   "wall_s": 0.0}
            row.update(self.extra_metrics())
            st["history"].append(row)
            self.out.mkdir(parents=True, exist_ok=True)
            self._write_metrics()
            if self.progress:
                print(f"epoch 0 (before transfer): test acc {row['test_acc']:.4f} | teacher "
                      f"{row['teacher_acc']:.4f} | KL {row['kl']:.4f}", flush=True)
        super().fit()
        res = self.results()
        atomic_write(self.out / "results.json",
                     lambda p: Path(p).write_text(json.dumps(res, indent=2) + "\n"))
        return res

    def results(self):
        """Summary of the run so far (the content of ``results.json``)."""
        cfg, st = self.cfg, self.state
        hist = st["history"]
        base, final = hist[0], hist[-1]
        trained = hist[1:]
        best = max(trained, key=lambda h: h["test_acc"]) if trained else None
        return {
            "method": cfg.method,
            "teacher": cfg.teacher,
            "teacher_sha256": self.teacher_sha256,
            "encoding": cfg.encoding, "T": cfg.T, "teacher_T": cfg.teacher_T,
            "epochs": st["epoch"],
            "test_images": len(self.test_set),
            "teacher_acc": final["teacher_acc"],
            "baseline_acc": base["test_acc"],
            "baseline_kl": base["kl"],
            "final_acc": final["test_acc"],
            "best_acc": best["test_acc"] if best else None,
            "best_epoch": best["epoch"] if best else None,
            "final_kl": final["kl"],
            "final_kl_temp": final["kl_temp"],
            "final_gap": final["gap"],
            "final_firing_rate": final["firing_rate"],
            "final_firing_rates": final["firing_rates"],
            "pearson_kl_gap": pearson([h["kl"] for h in hist], [h["gap"] for h in hist]),
            "pearson_kl_temp_gap": pearson([h["kl_temp"] for h in hist],
                                           [h["gap"] for h in hist]),
            "points": len(hist),
            "curve": [{k: h[k] for k in ("epoch", "test_acc", "kl", "kl_temp", "gap")}
                      for h in hist],
            "wall_s": round(st["wall"], 1),
            "config": self.config_dict(),
        }


# ---------------------------------------------------------------------- command line
TABLE = ["epoch", "train_loss", "test_acc", "teacher_acc", "gap", "kl", "kl_temp",
         "firing_rate", "wall_s"]


def add_transfer_parser(subparsers):
    """Add ``snnlite transfer`` to an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "transfer", help="direct-to-event transfer of a trained checkpoint (SKD, TSF, ...)",
        description="Finetune a copy of a direct-coded checkpoint on event (TTFS) input, "
                    "distilling from the frozen original (D2E).")
    p.add_argument("--teacher", required=True,
                   help="checkpoint of the direct-coded model (e.g. runs/x/best.h5)")
    p.add_argument("--method", default="skd", choices=list(METHODS))
    p.add_argument("--encoding", default="ttfs", choices=["ttfs", "latency"])
    p.add_argument("--T", type=int, default=8, help="student time steps (default 8)")
    p.add_argument("--teacher-T", type=int, default=None, help="default: the checkpoint's")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--alpha", type=float, default=0.4, help="CE weight (default 0.4)")
    p.add_argument("--temperature", type=float, default=4.0, help="K (default 4)")
    p.add_argument("--lr", type=float, default=None, help="default 0.1 * batch / 256")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps")
    p.add_argument("--data", default=None,
                   help="dataset file, archive or folder (default: $SNNLITE_DATA, then the "
                        "user cache, then download); the dataset is the teacher's")
    p.add_argument("--train-limit", type=int, default=None, help="use the first N images")
    p.add_argument("--test-limit", type=int, default=None)
    p.add_argument("--out", default=None,
                   help="run folder (default runs/transfer-<method>-<encoding>-T<T>-s<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_transfer)
    return p


def _cmd_transfer(args):
    from .cli import _load_data, _print_table
    args.dataset = load_checkpoint(args.teacher)["config"].get("dataset", "cifar10")
    cfg = TransferConfig(teacher=args.teacher, method=args.method, encoding=args.encoding,
                         T=args.T, teacher_T=args.teacher_T, epochs=args.epochs,
                         alpha=args.alpha, temperature=args.temperature, lr=args.lr,
                         batch_size=args.batch_size, weight_decay=args.weight_decay,
                         warmup_epochs=args.warmup_epochs, seed=args.seed,
                         augment=not args.no_augment, checkpoint_every=args.checkpoint_every,
                         train_limit=args.train_limit, test_limit=args.test_limit)
    out = Path(args.out or f"runs/transfer-{cfg.method}-{cfg.encoding}-T{cfg.T}-s{cfg.seed}")
    train, test = _load_data(args)
    tr = Transfer(cfg, out, train, test, resume=args.resume, progress=not args.no_progress)
    res = tr.fit()
    hist = tr.state["history"]
    _print_table(TABLE, hist if len(hist) <= 12 else hist[:1] + hist[-10:])
    r = res["pearson_kl_gap"]
    print(f"{res['method']}: teacher (direct) {res['teacher_acc']:.4f} | baseline "
          f"({res['encoding']}) {res['baseline_acc']:.4f} | final {res['final_acc']:.4f} | "
          f"best {res['best_acc']:.4f} | r(KL, gap) "
          f"{'n/a' if r is None else f'{r:.3f}'}; results in {out / 'results.json'}")
    return 0
