"""The D2E trainer: :class:`Transfer`, a :class:`~snnlite.train.Trainer` whose loss
distils from a frozen teacher (see the package docstring for the methods and metrics)."""
import json
from pathlib import Path

from .. import losses, models
from ..encoding import model_input
from ..io.checkpoint import atomic_write, load_model
from ..nn.graph import trace
from ..train import Trainer, evaluate
from .config import METHODS
from .stats import pearson, state_digest


class Transfer(Trainer):
    """Finetune a copy of the teacher checkpoint ``config.teacher`` on event input.

    ``fit()`` logs the epoch-0 baseline, trains (resumable as with :class:`Trainer`) and
    writes ``results.json``; it returns :meth:`results`.
    """

    def __init__(self, config, out_dir, train_set, test_set, resume=False, progress=True,
                 log_every=0, override=()):
        teacher, teacher_cfg = load_model(config.teacher)
        config = config.for_teacher(teacher_cfg)
        self.teacher = teacher.eval()
        self.teacher_sha256 = state_digest(teacher.state_dict())
        student = models.build(config.model, config.num_classes)
        student.load_state_dict(teacher.state_dict())
        super().__init__(config, out_dir, train_set, test_set, model=student, resume=resume,
                         progress=progress, log_every=log_every, override=override)
        self._graph = None
        self._teacher_eval = None
        self._last_eval = None

    # ------------------------------------------------------------------ checkpoints
    def config_dict(self):
        return dict(super().config_dict(), teacher_sha256=self.teacher_sha256)

    def summary(self):
        """:meth:`Trainer.summary` with the teacher and the method."""
        cfg = self.cfg
        return dict(super().summary(), teacher=str(cfg.teacher), teacher_T=cfg.teacher_T,
                    method=cfg.method, alpha=cfg.alpha, temperature=cfg.temperature)

    # ------------------------------------------------------------------ steps
    def teacher_logits(self, x):
        """Teacher logits [B, K] of raw images x: eval mode, direct coding, no cache."""
        ds = self.train_set
        return self.teacher.forward(model_input(x, "direct", self.cfg.teacher_T, ds.mean,
                                                ds.std))

    def loss(self, logits, x, y):
        """(loss, grad wrt the student's ``logits``) of the configured method; the teacher
        runs on the same raw batch x only when the method distils."""
        cfg = self.cfg
        divergence = METHODS[cfg.method]
        if divergence is None:
            return losses.cross_entropy(logits, y)
        return losses.distillation_loss(logits, self.teacher_logits(x), y, cfg.alpha,
                                        cfg.temperature, divergence)

    # ------------------------------------------------------------------ metrics
    def graph(self):
        """The student's traced graph (:func:`snnlite.nn.graph.trace`) for one test image."""
        if self._graph is None:
            self._graph = trace(self.model, self.test_set.images.shape[1:])
        return self._graph

    def teacher_eval(self):
        """The teacher on the test split, direct input (computed once)."""
        if self._teacher_eval is None:
            cfg = self.cfg
            self._teacher_eval = evaluate(self.teacher, self.test_set, cfg.teacher_T,
                                          "direct", cfg.eval_batch_size, self.progress,
                                          desc="eval teacher (direct)")
        return self._teacher_eval

    def evaluate_test(self):
        """The student on the test split (event input), with per-layer firing rates."""
        cfg = self.cfg
        lifs = self.graph().of_kind("lif")
        spikes = {n.name: 0 for n in lifs}

        def count(_logits):
            for n in lifs:
                spikes[n.name] += n.module.spike_count

        ev = evaluate(self.model, self.test_set, cfg.T, cfg.encoding, cfg.eval_batch_size,
                      self.progress, on_batch=count, desc=f"eval student ({cfg.encoding})")
        neurons = self.graph().neurons()
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
        with self._running():  # the folder stays locked until results.json is written
            if not st["history"]:  # epoch 0: the unchanged copy on event input
                self._write_config()
                ev = self.evaluate_test()
                row = {"epoch": 0, "step": 0, "test_loss": ev["loss"], "test_acc": ev["acc"],
                       "wall_s": 0.0}
                row.update(self.extra_metrics())
                st["history"].append(row)
                self._write_metrics()
                if self.progress:
                    print(f"epoch 0 (before transfer): test acc {row['test_acc']:.4f} | "
                          f"teacher {row['teacher_acc']:.4f} | KL {row['kl']:.4f}", flush=True)
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
