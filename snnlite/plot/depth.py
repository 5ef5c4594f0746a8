"""Spike magnitude collapse by depth (the D2E paper's second effect), from the statistics of
``examples/depth_stats.py --json``: per spiking layer, in depth order, (a) the firing rate
under each input (direct, TTFS, any further direct row), (b) the mean pre-activation (the
LIF's input current) and, where the file has it, the mean of its positive part, and (c) the
ratio TTFS / direct of both, a bar below 1 being a layer that fires less under TTFS input.
One figure per file; a shallow model's panels side by side, a deep one's (more than
:data:`WIDE` layers) stacked."""
from .common import figure, short, tidy

WIDE = 8
"""Models with more spiking layers than this get their panels stacked, not side by side."""

DIRECT, TTFS = "direct", "ttfs"
LIGHT = ("#9ecae1", "#c7e9c0", "#fdd0a2")  # further direct rows (e.g. at the TTFS T)
RATIO = {"firing_rate": ("firing rate", "0.3"), "preact_pos_mean": ("positive part", "0.7")}


def _label(stats, name, sep=", "):
    """Legend name of an input: ``direct, T=4``, ``TTFS, T=8``, ``direct, T=8`` (``sep``
    between the encoding and T; ``" ("`` gives ``direct (T=4)``)."""
    rep, end = stats.report, ")" if sep.endswith("(") else ""
    if name == DIRECT and rep.get("teacher_T") is not None:
        return f"direct{sep}T={rep['teacher_T']}{end}"
    if name == TTFS:
        return "TTFS" + (f"{sep}T={rep['ttfs_T']}{end}" if rep.get("ttfs_T") is not None else "")
    head, t, rest = name.partition(" T=")
    return f"{head}{sep}T={rest}{end}" if t else name


def _headroom(ax, frac):
    """Room above the bars for a legend: the y range grown by ``frac`` at the top."""
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + (hi - lo) * frac)


def _colours(names):
    from matplotlib import colormaps

    tab = colormaps["tab10"]
    out, light, other = {}, iter(LIGHT), iter(range(2, 10))
    for n in names:
        if n == DIRECT:
            out[n] = tab(0)
        elif n == TTFS:
            out[n] = tab(1)
        elif n.startswith(DIRECT) and (c := next(light, None)):
            out[n] = c
        else:
            out[n] = tab(next(other, 9))
    return out


def _tick(row):
    name = str(row["layer"])
    return f"LIF {name}" if name.isdigit() else short(name, 16)


def _ratio(num, den):
    return num / den if den else float("nan")


def depth_figure(stats, title=None):
    """Panels "(a) Firing rate per spiking layer", "(b) Mean pre-activation per spiking
    layer" and "(c) TTFS / direct" of one :class:`~snnlite.plot.sources.DepthStats`; the
    inputs' legend below, the suptitle naming the model, checkpoint and image count."""
    inputs = stats.inputs
    names = list(inputs)
    layers = inputs[DIRECT]
    n, k = len(layers), len(names)
    pos = all("preact_pos_mean" in r for rows in inputs.values() for r in rows)
    stacked = n > WIDE
    if stacked:
        fig, axes = figure(3, 1, width=max(9.0, 0.22 * n * k + 2.5), height=11.0,
                           sharex=True, gridspec_kw={"height_ratios": [2, 2, 1.4]})
        fire_ax, pre_ax, ratio_ax = axes[:, 0]
    else:
        fig, axes = figure(1, 3, width=max(12.0, 2.2 * n + 7.0), height=4.6,
                           gridspec_kw={"width_ratios": [2, 2, 1.4]})
        fire_ax, pre_ax, ratio_ax = axes[0]
    from matplotlib.patches import Patch

    cols = _colours(names)
    width = 0.8 / k
    for i, name in enumerate(names):
        rows, c, lab = inputs[name], cols[name], _label(stats, name)
        x = [d + (i - (k - 1) / 2) * width for d in range(n)]
        fire_ax.bar(x, [r["firing_rate"] * 100 for r in rows], width, color=c, label=lab)
        if pos:  # the positive part wide and light, the plain mean narrow and solid inside
            pre_ax.bar(x, [r["preact_pos_mean"] for r in rows], width, color=c, alpha=0.45,
                       edgecolor=c)
        pre_ax.bar(x, [r["preact_mean"] for r in rows], width * (0.45 if pos else 1.0),
                   color=c)
    pre_ax.axhline(0, color="0.2", lw=0.8)
    keys = [key for key in RATIO if key != "preact_pos_mean" or pos]
    rw = 0.8 / len(keys)
    for j, key in enumerate(keys):
        lab, c = RATIO[key]
        x = [d + (j - (len(keys) - 1) / 2) * rw for d in range(n)]
        v = [_ratio(e[key], r[key]) for e, r in zip(inputs[TTFS], layers)]
        bars = ratio_ax.bar(x, v, rw, color=c, label=lab)
        if not stacked:
            ratio_ax.bar_label(bars, fmt="%.2f", fontsize="x-small", padding=1)
    ratio_ax.axhline(1, color="0.2", lw=0.8, ls="--")
    top = max([1.0] + [b.get_height() for b in ratio_ax.patches
                       if b.get_height() == b.get_height()])
    ratio_ax.set_ylim(0, top * 1.12)
    ticks = [_tick(r) for r in layers]
    for ax in (fire_ax, pre_ax, ratio_ax):
        if stacked:
            ax.set_xticks(range(n), ticks, fontsize="small", rotation=60, ha="right",
                          rotation_mode="anchor")
            ax.tick_params(labelbottom=ax is ratio_ax)
        else:
            ax.set_xticks(range(n), ticks, fontsize="small")
    xlabel = "spiking layer (input → output)"
    tidy(fire_ax, "(a) Firing rate per spiking layer", "" if stacked else xlabel,
         "spikes per neuron per step (%)")
    tidy(pre_ax, "(b) Mean pre-activation per spiking layer", "" if stacked else xlabel,
         "LIF input current (BN out + residual)")
    if pos:
        _headroom(pre_ax, 0.22)
        pre_ax.legend([Patch(facecolor="0.5", alpha=0.45, edgecolor="0.5"),
                       Patch(facecolor="0.5")],
                      ["mean of the positive part (wide)", "mean (narrow)"],
                      fontsize="small", loc="upper center", ncols=2)
    tidy(ratio_ax, f"(c) Ratio {_label(stats, TTFS, ' (')} / {_label(stats, DIRECT, ' (')}",
         xlabel, "ratio (1 = no collapse)")
    _headroom(ratio_ax, 0.2)
    ratio_ax.legend(fontsize="small", loc="upper center", ncols=2)
    handles, labels = fire_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=k, fontsize="small",
               title="input")
    rep = stats.report
    where = ", ".join(str(s) for s in (
        rep.get("checkpoint"),
        f"{rep['test_images']:,} test images" if rep.get("test_images") else None) if s)
    fig.suptitle(title or f"Spike magnitude collapse by depth: {rep.get('model', stats.name)}"
                 f", direct vs TTFS input" + (f"\n{where}" if where else ""))
    return fig
