"""Training curves of one or several runs, overlaid: loss, top-1 accuracy and learning rate
per epoch (train solid, test dashed; one colour per run)."""
from .common import colours, figure, integer_ticks, short, tidy


def _series(history, key, scale=1.0):
    pts = [(h["epoch"], h[key] * scale) for h in history if h.get(key) is not None]
    return [p[0] for p in pts], [p[1] for p in pts]


def curves_figure(runs, title=None):
    """Figure of :class:`~snnlite.plot.sources.Run` s ``runs``: panels "Loss",
    "Top-1 accuracy", "Learning rate"; the runs' legend on the accuracy panel, the line
    styles' (train, test) on the loss panel."""
    if not runs:
        raise ValueError("curves: no run folders given")
    from matplotlib.lines import Line2D

    fig, axes = figure(1, 3, width=13, height=4.0)
    loss_ax, acc_ax, lr_ax = axes[0]
    cols = colours(len(runs))
    for run, c in zip(runs, cols):
        for ax, key, scale in ((loss_ax, "loss", 1.0), (acc_ax, "acc", 100.0)):
            for split, style in (("train", "-"), ("test", "--")):
                x, y = _series(run.history, f"{split}_{key}", scale)
                if x:
                    ax.plot(x, y, style, color=c, marker="o" if len(x) < 12 else None, ms=3)
        x, y = _series(run.history, "lr")
        if x:
            lr_ax.plot(x, y, "-", color=c, marker="o" if len(x) < 12 else None, ms=3)
    tidy(loss_ax, "Loss", "epoch", "loss (train: objective; test: cross-entropy)")
    tidy(acc_ax, "Top-1 accuracy", "epoch", "accuracy (%)")
    tidy(lr_ax, "Learning rate", "epoch", "learning rate (last step of the epoch)")
    lr_ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    for ax in (loss_ax, acc_ax, lr_ax):
        integer_ticks(ax.xaxis)
    loss_ax.legend([Line2D([], [], color="0.3", ls="-"), Line2D([], [], color="0.3", ls="--")],
                   ["train", "test"], fontsize="small")
    acc_ax.legend([Line2D([], [], color=c, lw=2) for c in cols],
                  [short(r.name) for r in runs], fontsize="small", title="run")
    best = [(max((h["test_acc"] for h in r.history if "test_acc" in h), default=None), r)
            for r in runs]
    if title is None:
        title = "Training curves: " + ", ".join(
            f"{short(r.name)} (best test {a * 100:.2f}%)" for a, r in best if a is not None)
        if len(title) > 150:
            title = f"Training curves of {len(runs)} runs"
    fig.suptitle(title)
    return fig
