"""Energy ESTIMATES of audit reports (``snnlite audit --format json``): per layer, stacked
by operation kind, one panel per (report, encoding); and the total per inference of each,
stacked the same way. Every figure is per-sample means, as the report is."""
from .common import colours, figure, short, tidy

OP_LABELS = {"mac": "MAC (dense input)", "ac": "AC (spike-driven)", "bias": "bias add",
             "neuron": "neuron update", "state_read": "membrane read",
             "state_write": "membrane write"}
"""Legend names of the operation kinds; any other kind shows as its key (``_`` as spaces).
A kind the target does not price (None in the report) is left out."""


def _label(op):
    return OP_LABELS.get(op, op.replace("_", " "))


def _pj(parts, op):
    return parts.get(op) or 0.0


def _groups(audits):
    return [(f"{short(a.name)}: {enc}, T={res['T']}", a, res)
            for a in audits for enc, res in a.results.items()]


def energy_figure(audits, title=None):
    """Panels "Energy per layer: <report>: <encoding>" (nJ per inference, stacked by
    operation kind) and "Energy per inference" (µJ, one bar per report and encoding)."""
    groups = _groups(audits)
    if not groups:
        raise ValueError("energy: needs an audit report (snnlite audit CKPT --format json "
                         "> a.json)")
    ops = []
    for _, _, res in groups:
        for layer in res["layers"]:
            ops += [k for k in layer["energy_pj_by_op"] if k not in ops]
    op_col = dict(zip(ops, colours(len(ops))))
    n = len(groups)
    top = max(layer["energy_pj"] for _, _, res in groups for layer in res["layers"])
    unit, scale = ("µJ", 1e6) if top >= 1e7 else ("nJ", 1e3)
    fig, axes = figure(1, n + 1, width=4.2 * n + 4.8, height=4.4)
    axes = list(axes[0])
    for ax, (label, _, res) in zip(axes, groups):
        if ax is not axes[0]:
            ax.sharey(axes[0])  # layers of every report on one scale
        layers = res["layers"]
        bottom = [0.0] * len(layers)
        for op in ops:
            v = [_pj(layer["energy_pj_by_op"], op) / scale for layer in layers]
            if any(v):
                ax.bar(range(len(layers)), v, 0.7, bottom=bottom, color=op_col[op],
                       label=_label(op))
            bottom = [b + x for b, x in zip(bottom, v)]
        ax.set_xticks(range(len(layers)), [f"{layer['name']}\n{layer['kind']}"
                                           for layer in layers], fontsize="small")
        acc = res.get("accuracy")
        tidy(ax, f"Energy per layer: {label}",
             "layer (node name, kind)" + (f"\naccuracy {acc * 100:.1f}% on {res['samples']} "
                                          "images" if acc is not None else ""),
             f"energy per inference ({unit})")
    ax = axes[-1]
    left = [0.0] * n
    for op in ops:
        v = [_pj(res["total"]["energy_pj_by_op"], op) / 1e6 for _, _, res in groups]
        if any(v):
            ax.barh(range(n), v, 0.6, left=left, color=op_col[op], label=_label(op))
        left = [a + b for a, b in zip(left, v)]
    for i, (_, _, res) in enumerate(groups):
        ax.annotate(f"{res['total']['energy_pj'] / 1e6:.2f} µJ", (left[i], i),
                    textcoords="offset points", xytext=(3, 0), va="center", fontsize="small")
    ax.set_yticks(range(n), [g[0] for g in groups], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.3 or 1)
    tidy(ax, "Energy per inference", "estimated energy (µJ)", "")
    ax.legend(fontsize="small", title="operation", loc="best")
    target = audits[0].report.get("target", {}).get("name", "?")
    fig.suptitle(title or f"Energy ESTIMATES per inference (exact operation counts × "
                          f"per-operation energies of target {target})")
    return fig
