"""Firing rates (spikes per neuron per time step) of every spiking layer, in depth order:
from transfer runs (their last epoch, logged per layer in ``metrics.jsonl``) and from audit
reports (per encoding); with the mean rate per epoch (runs) and per time step (audits)."""
import numpy as np

from .common import colours, figure, integer_ticks, short, tidy


def _run_series(run):
    """(label, [(layer label, rate)], [(epoch, mean rate)]) of a run that logs firing."""
    rows = [h for h in run.history if h.get("firing_rates")]
    if not rows:
        return None
    last = rows[-1]
    layers = [(f"LIF {k}", v) for k, v in last["firing_rates"].items()]
    epochs = [(h["epoch"], h["firing_rate"]) for h in rows if "firing_rate" in h]
    return f"{short(run.name)} (epoch {last['epoch']})", layers, epochs


def _audit_series(audit):
    """[(label, [(layer label, rate)], [rate per step])] per encoding of an audit."""
    out = []
    for enc, res in audit.results.items():
        lifs = [l for l in res["layers"] if l["kind"] == "lif"]
        layers = [(l["desc"].split(" -> ")[0].split(" (")[0], l["firing_rate"]) for l in lifs]
        neurons = sum(l["neurons"] for l in lifs)
        spikes = np.sum([l["out_spikes_per_step"] for l in lifs], axis=0)
        out.append((f"{short(audit.name)}: {enc}, T={res['T']}", layers,
                    list(spikes / max(neurons, 1))))
    return out


def firing_figure(runs=(), audits=(), title=None):
    """Panels "Firing rate per layer" and, as the sources have them, "Mean firing rate per
    epoch" (runs) and "Firing rate per time step" (audits)."""
    runs_s = [s for s in map(_run_series, runs) if s is not None]
    audit_s = [s for a in audits for s in _audit_series(a)]
    if not runs_s and not audit_s:
        names = ", ".join(r.name for r in runs) or "none"
        raise ValueError(f"firing: no per-layer firing rates in the runs ({names}); transfer "
                         "runs log them, and snnlite audit CKPT --format json > a.json gives "
                         "them for any checkpoint")
    series = [(lab, layers) for lab, layers, _ in runs_s + audit_s]
    panels = 1 + bool(runs_s) + bool(audit_s)
    fig, axes = figure(1, panels, width=5.0 + 4.0 * panels, height=4.3,
                       gridspec_kw={"width_ratios": [2] + [1] * (panels - 1)})
    axes = list(axes[0])
    cols = colours(len(series))
    ax = axes.pop(0)
    depth = max(len(layers) for _, layers in series)
    width = 0.8 / len(series)
    ticks = [""] * depth
    for i, ((lab, layers), c) in enumerate(zip(series, cols)):
        x = np.arange(len(layers)) + (i - (len(series) - 1) / 2) * width
        ax.bar(x, [r * 100 for _, r in layers], width, color=c, label=lab)
        for d, (name, _) in enumerate(layers):
            ticks[d] = ticks[d] or name
    ax.set_xticks(range(depth), [f"{d + 1}\n{short(t, 22)}" for d, t in enumerate(ticks)],
                  fontsize="small")
    tidy(ax, "Firing rate per spiking layer", "spiking layer (in depth order)",
         "spikes per neuron per step (%)")
    ax.legend(fontsize="small")
    ci = 0
    if runs_s:
        ax = axes.pop(0)
        for (lab, _, epochs), c in zip(runs_s, cols):
            if epochs:
                e, r = zip(*epochs)
                ax.plot(e, [v * 100 for v in r], "-o", ms=3, color=c, label=lab)
        tidy(ax, "Mean firing rate per epoch", "epoch", "spikes per neuron per step (%)")
        integer_ticks(ax.xaxis)
        ci = len(runs_s)
    if audit_s:
        ax = axes.pop(0)
        for (lab, _, steps), c in zip(audit_s, cols[ci:]):
            ax.plot(range(len(steps)), [v * 100 for v in steps], "-o", ms=3, color=c,
                    label=lab)
        tidy(ax, "Firing rate per time step", "time step t", "spikes per neuron (%)")
    fig.suptitle(title or "Firing rates (all spiking layers; readout excluded)")
    return fig
