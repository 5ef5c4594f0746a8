"""The first screen of ``snnlite train`` and ``snnlite transfer``: what the run will do
(model, data, time steps, batch, epochs, steps, run folder), a notice when the kernels are
about to be compiled for the first time on this machine, and, once the first steps are
timed, the estimated total time, with a warning and ways to shorten a run of over an hour."""
import math
import os
import textwrap
from pathlib import Path

from .. import _config
from ..train import ETA_STEPS

HOUR = 3600.0


def duration(seconds):
    """``45 s``, ``12 min``, ``3.4 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / HOUR:.1f} h"


def kernels_cold(cache_dir=None):
    """True when snnlite's kernels will be compiled in this process: on-disk caching is on
    and the cache folder (:func:`snnlite._config.kernel_cache_dir`) holds no compiled
    kernel yet (a new machine, or kernel sources that changed)."""
    if not _config.CACHE:
        return False
    folder = Path(cache_dir or _config.kernel_cache_dir())
    return not (folder.is_dir() and any(folder.glob("*.nbi")))


def kernel_notice(cache_dir=None):
    """The one-line compile notice, or None when the kernels are cached."""
    if not kernels_cold(cache_dir):
        return None
    where = cache_dir or _config.kernel_cache_dir()
    return (f"note: first run of this snnlite on this machine: its kernels compile before "
            f"the first step, on every core (some 15 s on 2 CPUs, once; cached in {_home(where)})")


def _home(path):
    home = os.path.expanduser("~")
    path = os.fspath(path)
    return "~" + path[len(home):] if path.startswith(home + os.sep) else path


def banner(command, s, source=None):
    """The summary block (a str) of :meth:`snnlite.train.Trainer.summary` ``s``; ``source``
    is the data file read."""
    resumed = s["step"] > 0
    head = (f"snnlite {command}: resuming {s['out']} at epoch {s['epoch'] + 1} "
            f"(step {s['step']:,} of {s['total_steps']:,})" if resumed
            else f"snnlite {command}: a new run in {s['out']}")
    shape = "x".join(map(str, s["image_shape"]))
    rows = [("model", f"{s['model']}, {s['parameters']:,} parameters")]
    if "teacher" in s:
        rows.append(("teacher", f"{s['teacher']} (frozen, direct coding, "
                                f"T={s['teacher_T']})"))
        rows.append(("method", _method(s)))
    rows += [
        ("data", f"{s['dataset']}: {s['train_images']:,} training / {s['test_images']:,} "
                 f"test images, {shape}"),
        ("input", f"{s['encoding']} coding, T={s['T']} time steps"),
        ("steps", f"{s['epochs']} epochs x {s['steps_per_epoch']:,} steps of "
                  f"{s['batch_size']} images = {s['total_steps']:,} steps"),
        ("lr", f"{s['lr']:.4g}, linear warmup over {s['warmup_epochs']:g} epoch(s) from "
               f"lr/10, then cosine to 0"),
        ("time", f"estimated after the first {ETA_STEPS + 1} steps"),
    ]
    if source:
        rows.insert(-4, ("source", _home(source)))
    lines = [head] + [f"  {k:<9} {v}" for k, v in rows]
    notice = kernel_notice()
    if notice:
        lines.append(notice)
    return "\n".join(lines)


def _method(s):
    m = s["method"]
    if m == "tsf":
        return "tsf: cross-entropy alone on event input"
    div = {"skd": "KL(teacher || student)", "reverse_kl": "KL(student || teacher)",
           "mse": "MSE of the softmaxes"}.get(m, m)
    return (f"{m}: {s['alpha']:g} x CE + {1 - s['alpha']:g} x K^2 x {div}, "
            f"K={s['temperature']:g}")


def eta_lines(est, epochs, command="train"):
    """The estimate line for :meth:`snnlite.train.Trainer.estimate` ``est`` and, past an
    hour, a warning with ways to shorten the run (``epochs``: the run's)."""
    whole = est["total_s"] + est["elapsed_s"]
    lines = [f"  time      about {duration(whole)} in all, {duration(est['total_s'])} left "
             f"({est['steps']:,} steps x {est['step_s']:.3g} s + {duration(est['eval_s'])} "
             "of evaluation)"]
    if est["total_s"] > HOUR:
        fit = max(1, math.floor(epochs * HOUR / whole))
        lines += textwrap.wrap(
            f"warning: about {duration(est['total_s'])} to go. To shorten the run: fewer "
            f"--epochs (--epochs {fit} takes about an hour), a smaller --T, --train-limit N "
            f"(train on the first N images) or a smaller --model. Ctrl-C stops it with a "
            f"checkpoint; snnlite {command} --resume continues it.",
            width=92, subsequent_indent="         ")
    return lines


def eta_printer(epochs, command="train"):
    """An ``on_eta`` callback for :class:`snnlite.train.Trainer` that prints
    :func:`eta_lines` above any progress bar."""
    def on_eta(est):
        from tqdm.auto import tqdm

        for line in eta_lines(est, epochs, command):
            tqdm.write(line)
    return on_eta
