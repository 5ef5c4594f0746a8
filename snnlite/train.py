"""Training and evaluation loops with exact resume.

A run lives in one folder: ``last.h5`` (written every ``checkpoint_every`` steps, every
``checkpoint_minutes`` and at each epoch end), ``best.h5`` (best test accuracy),
``metrics.jsonl`` (one line per epoch) and ``config.json``. Batches are a pure function of
(seed, epoch, batch index) and the learning rate a pure function of the step, so a run
resumed from any checkpoint — after Ctrl-C, SIGTERM, a crash or SIGKILL — ends with the same weights
as one that was never interrupted (for the same number of threads).

One run per folder: the trainer locks it (:class:`~snnlite.io.run_folder.RunFolder`) from
construction until ``fit`` returns, refuses a folder holding another run's files unless
resuming it, and on resume refuses every setting that differs from the checkpoint's unless
it is named in ``override`` (recorded in ``state["changes"]``, ``config.json`` and the
epoch's metrics row). Every checkpoint is finite: a step whose gradient, weights, batch-norm
statistics or optimizer state turn NaN or infinite stops the run with a
:class:`~snnlite.losses.DivergenceError` that names the last finite checkpoint.
"""
import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from pathlib import Path

import numpy as np

from . import data as sdata
from . import losses, models, optim
from ._memory import tune_malloc
from ._precompile import precompile
from .encoding import model_input
from .io.checkpoint import atomic_write, load_checkpoint, load_model, read_header, save_checkpoint
from .io.config import TrainConfig
from .io.run_folder import RunFolder
from .losses import DivergenceError

# TrainConfig, load_model and model_input live in snnlite.io.config, snnlite.io.checkpoint
# and snnlite.encoding; they stay importable from here for code written against snnlite 0.1.
__all__ = ["DivergenceError", "Interrupted", "TrainConfig", "Trainer", "evaluate",
           "load_model", "model_input", "subset"]


ETA_STEPS = 5
"""Steps timed (after the first of a sitting) before the total time is estimated."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
"""Signals that stop a run cleanly: the current step ends, ``last.h5`` is written."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by one of :data:`STOP_SIGNALS` after saving its checkpoint; ``signum``
    says which (the CLI exits with 128 + signum, the shell's convention)."""

    def __init__(self, signum, message):
        super().__init__(message)
        self.signum = signum


def subset(ds, limit):
    """The first ``limit`` samples of ``ds`` (all of them for None)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or limit < 1):
        raise ValueError(f"limit: expected a positive integer or None, got {limit!r}")
    if limit is None or limit >= len(ds):
        return ds
    return sdata.ArrayDataset(ds.images[:limit], ds.labels[:limit], ds.label_names, ds.mean,
                              ds.std)


def evaluate(model, ds, T, enc="direct", batch_size=200, progress=False, on_batch=None,
             desc=None):
    """Test loss and accuracy of ``model`` on dataset ``ds`` (eval mode, no augmentation).
    Also returns the logits [N, K]. ``on_batch(logits)``, if given, is called after each
    batch's forward (e.g. to read the layers' spike counts). ``desc`` labels the progress
    bar (default ``eval <enc>``)."""
    was_training = model.training
    model.eval()
    logits, total = [], 0.0
    n = len(ds)
    bar = _bar(range(0, n, batch_size), progress, desc or f"eval {enc}", leave=False)
    try:
        for i in bar:
            x = ds.images[i:i + batch_size].astype(np.float32) / np.float32(255)
            z = model.forward(model_input(x, enc, T, ds.mean, ds.std))
            if on_batch is not None:
                on_batch(z)
            loss, _ = losses.cross_entropy(z, ds.labels[i:i + batch_size])
            total += loss * len(z)
            logits.append(z)
    finally:
        model.train(was_training)
    logits = np.concatenate(logits)
    acc = float((logits.argmax(1) == ds.labels).mean())
    return {"loss": total / n, "acc": acc, "logits": logits}


def _init_weights(config):
    """The state dict of ``config.init``, a checkpoint of the same model."""
    model, cfg = load_model(config.init)
    if (cfg.model, cfg.num_classes) != (config.model, config.num_classes):
        raise ValueError(f"init: {config.init} holds a {cfg.model} with {cfg.num_classes} "
                         f"classes; this run trains a {config.model} with "
                         f"{config.num_classes}")
    return model.state_dict()


def _bar(it, enabled, desc, **kw):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, dynamic_ncols=True, **kw)


class Trainer:
    """Supervised training of a spiking classifier; subclasses change :meth:`loss` (and
    :meth:`extra_metrics`) to train differently (e.g. distillation).

    Constructing one applies :func:`snnlite.tune_malloc` (large activations reused from the
    heap; ``SNNLITE_MALLOC_TUNE=0`` turns it off), locks ``out_dir`` (released when ``fit``
    returns or raises, or by :meth:`close`) and, with ``resume``, restores its last
    checkpoint; ``override`` names the settings that may differ from the checkpoint's
    (see the module docstring)."""

    def __init__(self, config, out_dir, train_set, test_set, model=None, resume=False,
                 progress=True, log_every=0, override=()):
        tune_malloc()
        self.cfg = config
        self.out = Path(out_dir)
        self.train_set = subset(train_set, config.train_limit)
        self.test_set = subset(test_set, config.test_limit)
        self.progress = progress
        self.log_every = log_every  # without a progress bar: a log line every N steps
        self.model = model if model is not None else models.build(
            config.model, config.num_classes, seed=config.seed)
        if config.init and model is None and not (resume and (self.out / "last.h5").exists()):
            self.model.load_state_dict(_init_weights(config))
        if config.quantize:  # quantization-aware training: fake quantization, STE gradients
            from .quant.qat import attach
            self.model, config.quantize = attach(self.model, config.quantize, self.train_set,
                                                 config.encoding, config.T)
        self.opt = optim.SGD(self.model.parameters(), config.lr, config.momentum, True,
                             config.weight_decay,
                             names=[n for n, _ in self.model.named_parameters()])
        self.loader = sdata.Loader(self.train_set, config.batch_size, shuffle=True,
                                   augment=config.augment, seed=config.seed)
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = min(self.total_steps,
                                int(round(config.warmup_epochs * self.steps_per_epoch)))
        self.state = dict(epoch=0, batch=0, step=0, loss_sum=0.0, correct=0, seen=0,
                          history=[], best_acc=-1.0, wall=0.0, changes=[],
                          data={"train": len(self.train_set), "test": len(self.test_set)})
        self.changes = []  # (setting, old, new) overridden by this resume
        self.on_eta = None  # on_eta(estimate()) once the first steps are timed (CLI: prints)
        self.eta_steps = ETA_STEPS
        self._timed = [-1, 0.0]  # steps timed in this sitting (the first is not), their seconds
        self._last_good = None  # (epoch, step) of the last finite last.h5
        self._runs = 0
        self._stop = False
        self.folder = RunFolder(self.out).acquire()
        try:
            self._open(resume, set(override))
        except BaseException:
            self.folder.release()
            raise

    def close(self):
        """Release the run folder's lock (``fit`` does so when it returns or raises)."""
        self.folder.release()

    # ------------------------------------------------------------------ checkpoints
    def config_dict(self):
        return dataclasses.asdict(self.cfg)

    def _open(self, resume, override):
        """Restore, start afresh or refuse, from what the locked folder holds."""
        last, present = self.out / "last.h5", self.folder.present()
        if resume and last.exists():
            saved, state = read_header(last)  # settings first: they explain any mismatch
            self._differences(saved, override, str(last), state.get("step", 0))
            shapes = {k: v.shape for k, v in self.model.state_dict().items()}
            params = {k: p.data.shape for k, p in self.model.named_parameters()}
            self._restore(load_checkpoint(last, shapes, params), override)
        elif resume and present:  # a run stopped before its first checkpoint
            if "config.json" not in present:
                raise FileExistsError(
                    f"{self.out} holds {', '.join(present)} but no last.h5 or config.json: "
                    "not a run that can be resumed; choose another output folder")
            path = self.out / "config.json"
            try:
                saved = json.loads(path.read_text())
            except (OSError, ValueError) as e:
                raise ValueError(f"{path}: unreadable run config ({e})") from None
            self._differences(saved, override, f"{path} (no checkpoint yet)")
        elif present:
            raise FileExistsError(
                f"{self.out} holds another run ({', '.join(present)}): pass resume=True "
                "(--resume) to continue it, or choose another output folder")

    def _differences(self, saved, override, source, step=0):
        """[(setting, saved value, this run's value)] of the overridden differences between
        the run's saved config dict and this one; any other difference is refused."""
        cls = type(self.cfg)
        if not isinstance(saved, dict):
            raise ValueError(f"resume: {source}: the saved config is not a JSON object")
        try:
            full = dict(saved, **dataclasses.asdict(cls.from_dict(saved)))
        except (TypeError, ValueError) as e:
            raise ValueError(f"resume: {source}: invalid saved config ({e})") from None
        mine = self.config_dict()
        unknown = sorted(set(override) - set(mine))
        if unknown:
            raise ValueError(f"override: unknown setting(s) {', '.join(unknown)}")
        keys = [k for k in dict.fromkeys([*mine, *full])
                if k not in cls.RESUME_SAFE and k != "changes"]
        diffs = [(k, full.get(k), mine.get(k)) for k in keys if full.get(k) != mine.get(k)]
        fixed = [d for d in diffs if d[0] in cls.RESUME_FIXED]
        refused = [d for d in diffs if d[0] not in override]
        if fixed:
            raise ValueError(
                f"resume: {source} was made with " + ", ".join(f"{k}={a!r}" for k, a, _ in fixed)
                + "; this run asks for " + ", ".join(f"{k}={b!r}" for k, _, b in fixed)
                + ": these settings define the run and cannot change when resuming; "
                  "start a new run in another folder")
        if refused:
            raise ValueError(
                f"resume: {source} was made with "
                + ", ".join(f"{k}={a!r}" for k, a, _ in refused) + "; this run asks for "
                + ", ".join(f"{k}={b!r}" for k, _, b in refused) + ". Pass the run's own "
                "settings, or override them explicitly (--override NAME=VALUE; "
                f"override={{...}}) to change them from step {step} on, recorded in the run")
        return diffs

    def _restore(self, ck, override=()):
        changes = self._differences(ck["config"], override, str(self.out / "last.h5"),
                                    ck["state"].get("step", 0))
        saved_data, data = ck["state"].get("data"), self.state["data"]
        if isinstance(saved_data, dict) and saved_data.get("train") != data["train"]:
            raise ValueError(f"resume: {self.out / 'last.h5'} was trained on "
                             f"{saved_data.get('train')} images, this training set has "
                             f"{data['train']}: not the same data")
        self.model.load_state_dict(ck["model"])
        names = [n for n, _ in self.model.named_parameters()]
        self.opt.load_state_dict({"lr": self.cfg.lr,
                                  "momenta": [ck["momenta"].get(n) for n in names]})
        self.state.update(ck["state"])
        self.state["data"] = data
        self.state.setdefault("changes", [])
        for k, old, new in changes:
            self.state["changes"].append({"epoch": self.state["epoch"] + 1,
                                          "step": self.state["step"], "setting": k,
                                          "old": old, "new": new})
        self.changes = changes
        self._last_good = (self.state["epoch"], self.state["step"])

    def save(self, path):
        names = [n for n, _ in self.model.named_parameters()]
        momenta = {n: b for n, b in zip(names, self.opt.momenta) if b is not None}
        save_checkpoint(path, self.model.state_dict(), self.config_dict(), self.state, momenta)
        if Path(path) == self.out / "last.h5":
            self._last_good = (self.state["epoch"], self.state["step"])

    def _write_metrics(self):
        lines = "".join(json.dumps(h) + "\n" for h in self.state["history"])
        atomic_write(self.out / "metrics.jsonl", lambda p: Path(p).write_text(lines))

    # ------------------------------------------------------------------ steps
    def lr_at(self, step):
        return optim.cosine_warmup(step, self.total_steps, self.cfg.lr, self.warmup_steps,
                                   floor=self.cfg.lr_floor)

    def loss(self, logits, x, y):
        """(loss, grad wrt ``logits``) of one batch: the model's logits [B, K] on raw images
        x [B, 3, H, W] with labels y [B]. Cross-entropy here; subclasses change the
        objective (and may use x, e.g. to run a teacher on it)."""
        return losses.cross_entropy(logits, y)

    def train_step(self, x, y):
        """One optimisation step on raw images x [B, 3, H, W]; returns (loss, n_correct)."""
        cfg = self.cfg
        z = self.model.forward(model_input(x, cfg.encoding, cfg.T, self.train_set.mean,
                                           self.train_set.std))
        loss, g = self.loss(z, x, y)
        self.opt.zero_grad()
        self.model.backward(g)
        self.opt.step()
        return loss, int((z.argmax(1) == y).sum())

    def evaluate_test(self):
        """Evaluate the model on the test split (:func:`evaluate`'s dict)."""
        cfg = self.cfg
        return evaluate(self.model, self.test_set, cfg.T, cfg.encoding, cfg.eval_batch_size,
                        self.progress)

    def extra_metrics(self):
        """Additional per-epoch metrics (dict) logged after :meth:`evaluate_test`."""
        return {}

    # ------------------------------------------------------------------ loop
    def _on_signal(self, signum, frame):
        self._stop = signum

    def fit(self):
        """Train until ``epochs`` are done, or until Ctrl-C or SIGTERM (a job scheduler's stop,
        ``kill``): checkpoint at the end of the current step, then :class:`Interrupted`."""
        with self._running():
            self._write_config()
            # the first start on a machine: this model's kernels compiled on every core
            precompile(self.cfg.model, progress=self.progress)
            main = threading.current_thread() is threading.main_thread()
            old = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS} if main else {}
            try:
                return self._fit()
            finally:
                for s, h in old.items():
                    signal.signal(s, h)

    @contextlib.contextmanager
    def _running(self):
        """Hold the folder's lock until the outermost ``fit`` ends (a second ``fit`` of the
        same trainer takes it again)."""
        if self._runs == 0:
            self.folder.acquire()
        self._runs += 1
        try:
            yield
        finally:
            self._runs -= 1
            if self._runs == 0:
                self.folder.release()

    def _write_config(self):
        cfg = self.config_dict()
        if self.state.get("changes"):
            cfg["changes"] = self.state["changes"]
        text = json.dumps(cfg, indent=2) + "\n"
        atomic_write(self.out / "config.json", lambda p: Path(p).write_text(text))

    def _fit(self):
        try:
            return self._loop()
        except DivergenceError as e:
            st, lr = self.state, self.opt.lr
            if self._last_good is not None:
                epoch, step = self._last_good
                where = (f"The last finite checkpoint is {self.out / 'last.h5'} (step {step}, "
                         f"epoch {epoch + 1}); continue from it with a lower learning rate "
                         "(--resume --override lr=..., or resume=True, override={'lr'})")
            else:
                where = "No checkpoint was written before it; start again with a lower --lr"
            raise DivergenceError(f"training diverged at epoch {st['epoch'] + 1}, step "
                                  f"{st['step']} (lr {lr:.4g}): {e}. {where}") from None

    def _loop(self):
        cfg, st = self.cfg, self.state
        last_save = time.monotonic()
        while st["epoch"] < cfg.epochs:
            epoch = st["epoch"]
            self.model.train()
            it = self.loader.epoch(epoch, start=st["batch"])
            bar = _bar(it, self.progress, f"epoch {epoch + 1}/{cfg.epochs}",
                       initial=st["batch"], total=self.steps_per_epoch)
            t0 = time.monotonic()
            for x, y in bar:
                lr = self.lr_at(st["step"])
                self.opt.lr = lr
                with np.errstate(over="ignore", invalid="ignore"):  # divergence is
                    loss, correct = self.train_step(x, y)  # caught below and at each save
                if not math.isfinite(loss):
                    raise DivergenceError(f"loss is {loss}")
                st["step"] += 1
                st["batch"] += 1
                st["loss_sum"] += loss * len(y)
                st["correct"] += correct
                st["seen"] += len(y)
                now = time.monotonic()
                st["wall"] += now - t0
                self._time_step(now - t0)
                if self.progress:
                    bar.set_postfix(loss=f"{st['loss_sum'] / st['seen']:.3f}",
                                    acc=f"{st['correct'] / st['seen']:.3f}",
                                    img_s=f"{len(y) / max(now - t0, 1e-9):.0f}", lr=f"{lr:.3g}")
                elif self.log_every and st["step"] % self.log_every == 0:
                    print(f"epoch {epoch + 1} batch {st['batch']}/{self.steps_per_epoch} step "
                          f"{st['step']}: loss {st['loss_sum'] / st['seen']:.4f} acc "
                          f"{st['correct'] / st['seen']:.4f} lr {lr:.4g} "
                          f"{st['step'] * cfg.batch_size / max(st['wall'], 1e-9):.1f} img/s",
                          flush=True)
                t0 = now
                if self._stop:
                    self.save(self.out / "last.h5")
                    raise Interrupted(self._stop, f"interrupted ({signal.Signals(self._stop).name}"
                                      f"); checkpoint saved to {self.out / 'last.h5'} (resume "
                                      "with --resume)")
                if (st["step"] % cfg.checkpoint_every == 0
                        or now - last_save > 60 * cfg.checkpoint_minutes):
                    self.save(self.out / "last.h5")
                    last_save = now
            self._end_epoch()
            last_save = time.monotonic()
        return st["history"][-1] if st["history"] else {}

    def summary(self):
        """What this run will do, for the first screen: model, parameters, data sizes,
        time steps, batch, epochs, steps (total and done), run folder."""
        cfg, st = self.cfg, self.state
        return {"model": cfg.model, "parameters": sum(p.data.size for p in
                                                      self.model.parameters()),
                "dataset": cfg.dataset, "train_images": len(self.train_set),
                "test_images": len(self.test_set),
                "image_shape": tuple(self.train_set.images.shape[1:]),
                "encoding": cfg.encoding, "T": cfg.T, "batch_size": cfg.batch_size,
                "epochs": cfg.epochs, "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps, "lr": cfg.lr,
                "warmup_epochs": cfg.warmup_epochs, "step": st["step"],
                "epoch": st["epoch"], "out": str(self.out)}

    def _time_step(self, seconds):
        """Time the steps after the first of this sitting (which compiles the kernels on a
        fresh machine); after ``eta_steps`` of them, call ``on_eta(estimate())`` once."""
        timed = self._timed
        timed[0] += 1
        if timed[0] < 1:
            return
        timed[1] += seconds
        if timed[0] == self.eta_steps and self.on_eta is not None:
            self.on_eta(self.estimate())

    def estimate(self):
        """Estimated time left, from the steps timed so far in this sitting: dict(
        step_s: seconds per step, steps: steps left, train_s: their time, eval_s: the test
        evaluations left (one per epoch; an image's forward taken as a quarter of its
        training step, as measured on trained models), total_s: time left, timed: steps
        measured, elapsed_s: time in steps so far), or None before any step is timed."""
        n, seconds = self._timed
        if n < 1:
            return None
        step_s = seconds / n
        steps = self.total_steps - self.state["step"]
        epochs = self.cfg.epochs - self.state["epoch"]
        eval_s = epochs * len(self.test_set) / self.cfg.batch_size * step_s / 4
        return {"step_s": step_s, "steps": steps, "train_s": steps * step_s, "eval_s": eval_s,
                "total_s": steps * step_s + eval_s, "timed": n,
                "elapsed_s": self.state["wall"]}

    def _end_epoch(self):
        st = self.state
        ev = self.evaluate_test()
        row = dict(epoch=st["epoch"] + 1, step=st["step"],
                   train_loss=st["loss_sum"] / max(st["seen"], 1),
                   train_acc=st["correct"] / max(st["seen"], 1),
                   test_loss=ev["loss"], test_acc=ev["acc"], lr=self.lr_at(st["step"] - 1),
                   wall_s=round(st["wall"], 1))
        row.update(self.extra_metrics())
        changes = [c for c in st.get("changes", []) if c["epoch"] == st["epoch"] + 1]
        if changes:
            row["changes"] = changes
        st["history"].append(row)
        st.update(epoch=st["epoch"] + 1, batch=0, loss_sum=0.0, correct=0, seen=0)
        improved = ev["acc"] > st["best_acc"]
        if improved:
            st["best_acc"] = ev["acc"]
        self.save(self.out / "last.h5")
        if improved:
            self.save(self.out / "best.h5")
        self._write_metrics()
        if self.progress or self.log_every:
            print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc "
                  f"{row['train_acc']:.4f} | test loss {row['test_loss']:.4f} acc "
                  f"{row['test_acc']:.4f}", flush=True)

