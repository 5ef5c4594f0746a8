"""Training and evaluation loops with exact resume.

A run lives in one folder: ``last.h5`` (written every ``checkpoint_every`` steps, every
``checkpoint_minutes`` and at each epoch end), ``best.h5`` (best test accuracy),
``metrics.jsonl`` (one line per epoch) and ``config.json``. Batches are a pure function of
(seed, epoch, batch index) and the learning rate a pure function of the step, so a run
resumed from any checkpoint — after Ctrl-C, a crash or SIGKILL — ends with the same weights
as one that was never interrupted (for the same number of threads).
"""
import dataclasses
import json
import math
import signal
import time
from pathlib import Path

import numpy as np

from . import data as sdata
from . import losses, models, optim
from ._memory import tune_malloc
from .encoding import model_input
from .io.checkpoint import atomic_write, load_checkpoint, load_model, save_checkpoint
from .io.config import TrainConfig
from .losses import DivergenceError

# TrainConfig, load_model and model_input live in snnlite.io.config, snnlite.io.checkpoint
# and snnlite.encoding; they stay importable from here for code written against snnlite 0.1.
__all__ = ["DivergenceError", "TrainConfig", "Trainer", "evaluate", "load_model",
           "model_input", "subset"]


def subset(ds, limit):
    if limit is None or limit >= len(ds):
        return ds
    return sdata.ArrayDataset(ds.images[:limit], ds.labels[:limit], ds.label_names, ds.mean,
                              ds.std)


def evaluate(model, ds, T, enc="direct", batch_size=200, progress=False, on_batch=None):
    """Test loss and accuracy of ``model`` on dataset ``ds`` (eval mode, no augmentation).
    Also returns the logits [N, K]. ``on_batch(logits)``, if given, is called after each
    batch's forward (e.g. to read the layers' spike counts)."""
    was_training = model.training
    model.eval()
    logits, total = [], 0.0
    n = len(ds)
    bar = _bar(range(0, n, batch_size), progress, "eval", leave=False)
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


def _bar(it, enabled, desc, **kw):
    if not enabled:
        return it
    from tqdm.auto import tqdm
    return tqdm(it, desc=desc, dynamic_ncols=True, **kw)


class Trainer:
    """Supervised training of a spiking classifier; subclasses change :meth:`loss` (and
    :meth:`extra_metrics`) to train differently (e.g. distillation).

    Constructing one applies :func:`snnlite.tune_malloc` (large activations reused from the
    heap; ``SNNLITE_MALLOC_TUNE=0`` turns it off)."""

    def __init__(self, config, out_dir, train_set, test_set, model=None, resume=False,
                 progress=True, log_every=0):
        tune_malloc()
        self.cfg = config
        self.out = Path(out_dir)
        self.train_set = subset(train_set, config.train_limit)
        self.test_set = subset(test_set, config.test_limit)
        self.progress = progress
        self.log_every = log_every  # without a progress bar: a log line every N steps
        self.model = model if model is not None else models.build(
            config.model, config.num_classes, seed=config.seed)
        self.opt = optim.SGD(self.model.parameters(), config.lr, config.momentum, True,
                             config.weight_decay)
        self.loader = sdata.Loader(self.train_set, config.batch_size, shuffle=True,
                                   augment=config.augment, seed=config.seed)
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * config.epochs
        self.warmup_steps = min(self.total_steps,
                                int(round(config.warmup_epochs * self.steps_per_epoch)))
        self.state = dict(epoch=0, batch=0, step=0, loss_sum=0.0, correct=0, seen=0,
                          history=[], best_acc=-1.0, wall=0.0)
        last = self.out / "last.h5"
        if resume and last.exists():
            self._restore(load_checkpoint(last))
        elif last.exists():
            raise FileExistsError(f"{last} exists: pass resume=True (--resume) to continue "
                                  "that run, or choose another output folder")
        self._stop = False

    # ------------------------------------------------------------------ checkpoints
    def config_dict(self):
        return dataclasses.asdict(self.cfg)

    def _restore(self, ck):
        saved = TrainConfig.from_dict(ck["config"])
        for k in ("model", "T", "batch_size", "seed", "epochs", "encoding", "lr"):
            if getattr(saved, k) != getattr(self.cfg, k):
                raise ValueError(f"resume: checkpoint was made with {k}={getattr(saved, k)!r}, "
                                 f"this run asks for {getattr(self.cfg, k)!r}")
        self.model.load_state_dict(ck["model"])
        names = [n for n, _ in self.model.named_parameters()]
        self.opt.load_state_dict({"lr": self.cfg.lr,
                                  "momenta": [ck["momenta"].get(n) for n in names]})
        self.state.update(ck["state"])

    def save(self, path):
        names = [n for n, _ in self.model.named_parameters()]
        momenta = {n: b for n, b in zip(names, self.opt.momenta) if b is not None}
        save_checkpoint(path, self.model.state_dict(), self.config_dict(), self.state, momenta)

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
    def _on_sigint(self, signum, frame):
        self._stop = True

    def fit(self):
        """Train until ``epochs`` are done (or Ctrl-C: checkpoint, then KeyboardInterrupt)."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        old = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            return self._fit()
        finally:
            signal.signal(signal.SIGINT, old)

    def _fit(self):
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
                try:
                    loss, correct = self.train_step(x, y)
                    if not math.isfinite(loss):
                        raise DivergenceError(f"loss is {loss}")
                except DivergenceError as e:
                    raise DivergenceError(
                        f"training diverged at epoch {epoch + 1}, step {st['step']} "
                        f"(lr {lr:.4g}): {e}. Lower the learning rate; the last good "
                        f"checkpoint is {self.out / 'last.h5'}") from None
                st["step"] += 1
                st["batch"] += 1
                st["loss_sum"] += loss * len(y)
                st["correct"] += correct
                st["seen"] += len(y)
                now = time.monotonic()
                st["wall"] += now - t0
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
                    raise KeyboardInterrupt(f"interrupted; checkpoint saved to "
                                            f"{self.out / 'last.h5'} (resume with --resume)")
                if (st["step"] % cfg.checkpoint_every == 0
                        or now - last_save > 60 * cfg.checkpoint_minutes):
                    self.save(self.out / "last.h5")
                    last_save = now
            self._end_epoch()
            last_save = time.monotonic()
        return st["history"][-1] if st["history"] else {}

    def _end_epoch(self):
        st = self.state
        ev = self.evaluate_test()
        row = dict(epoch=st["epoch"] + 1, step=st["step"],
                   train_loss=st["loss_sum"] / max(st["seen"], 1),
                   train_acc=st["correct"] / max(st["seen"], 1),
                   test_loss=ev["loss"], test_acc=ev["acc"], lr=self.lr_at(st["step"] - 1),
                   wall_s=round(st["wall"], 1))
        row.update(self.extra_metrics())
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

