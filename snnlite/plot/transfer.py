"""Direct-to-event transfer runs: KL(teacher || student) and the accuracy gap per epoch, and
KL against the gap (each run's epochs in order, epoch 0 being the untrained copy), with the
Pearson correlation pooled over every run's points (a point shared by several runs, such
as the common epoch-0 baseline, counted once)."""
import numpy as np

from .common import colours, figure, integer_ticks, short, tidy


def _points(run):
    return [(h["epoch"], h["kl"], h["gap"] * 100) for h in run.history
            if h.get("kl") is not None and h.get("gap") is not None]


def pearson(x, y):
    """Pearson r of two sequences (None with fewer than 3 points or no spread)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def kl_gap_figure(runs, title=None):
    """Panels "KL per epoch", "Accuracy gap per epoch", "KL against gap" of transfer
    :class:`~snnlite.plot.sources.Run` s (those without ``kl`` in their metrics raise)."""
    plain = [r.name for r in runs if not _points(r)]
    if not runs or plain:
        raise ValueError("kl-gap: needs transfer runs (metrics with kl and gap); "
                         f"not transfer runs: {', '.join(plain) or 'none given'}")
    fig, axes = figure(1, 3, width=13, height=4.0)
    kl_ax, gap_ax, xy_ax = axes[0]
    pooled = []
    for run, c in zip(runs, colours(len(runs))):
        pts = _points(run)
        ep, kl, gap = zip(*pts)
        label = short(run.name)
        kl_ax.plot(ep, kl, "-o", color=c, ms=4, label=label)
        gap_ax.plot(ep, gap, "-o", color=c, ms=4, label=label)
        xy_ax.plot(kl, gap, "-o", color=c, ms=4, label=label)
        if run is runs[0]:  # one run's epochs named; the others run alongside
            for e, k, g in pts:
                xy_ax.annotate(f"epoch {e}", (k, g), textcoords="offset points",
                               xytext=(6, -10), fontsize="small", color=c)
        pooled.extend(zip(kl, gap))
    tidy(kl_ax, "KL(teacher ‖ student) per epoch", "epoch", "KL at temperature 1 (nats)")
    tidy(gap_ax, "Accuracy gap per epoch", "epoch",
         "teacher (direct) − student (events), pp")
    pooled = list(dict.fromkeys(pooled))  # the shared epoch-0 baseline counts once
    r = pearson(*zip(*pooled)) if len(pooled) >= 3 else None
    tidy(xy_ax, "KL against gap" + (f" (r = {r:.3f} over {len(pooled)} points)"
                                    if r is not None else ""),
         "KL(teacher ‖ student), nats", "accuracy gap, pp")
    integer_ticks(kl_ax.xaxis)
    integer_ticks(gap_ax.xaxis)
    gap_ax.legend(fontsize="small", title="run")
    teacher = runs[0].history[-1].get("teacher_acc")
    fig.suptitle(title or "Direct-to-event transfer: does the student approach the teacher?"
                 + (f" (teacher {teacher * 100:.2f}% on direct input)" if teacher else ""))
    return fig
