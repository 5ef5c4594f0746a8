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


def unit(pj):
    """(name, picojoules per unit) that shows ``pj`` as a number from 1 to 1000."""
    for name, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return name, scale
    return "pJ", 1.0


def energy_figure(audits, title=None):
    """Panels "Energy per layer: <report>: <encoding>" (per inference, stacked by operation
    kind, one scale for all) and "Energy per inference" (one bar per report and encoding,
    annotated with its total and, where the report splits them, compute and memory); the
    operation kinds' legend below."""
    groups = _groups(audits)
    if not groups:
        raise ValueError("energy: needs an audit report (snnlite audit CKPT --format json "
                         "> a.json)")
    rows = [row for _, _, res in groups for row in res["layers"] + [res["total"]]]
    ops = list(dict.fromkeys(k for row in rows for k in row["energy_pj_by_op"]))
    ops = [k for k in ops if any(_pj(row["energy_pj_by_op"], k) for row in rows)]
    op_col = dict(zip(ops, colours(len(ops))))
    n = len(groups)
    name, scale = unit(max(layer["energy_pj"] for _, _, res in groups
                           for layer in res["layers"]))
    fig, axes = figure(1, n + 1, width=4.2 * n + 4.8, height=4.6)
    axes = list(axes[0])
    for ax, (label, _, res) in zip(axes, groups):
        if ax is not axes[0]:
            ax.sharey(axes[0])  # layers of every report on one scale
        layers = res["layers"]
        bottom = [0.0] * len(layers)
        for op in ops:
            v = [_pj(layer["energy_pj_by_op"], op) / scale for layer in layers]
            ax.bar(range(len(layers)), v, 0.7, bottom=bottom, color=op_col[op],
                   label=_label(op))
            bottom = [b + x for b, x in zip(bottom, v)]
        ax.set_xticks(range(len(layers)), [f"{layer['name']}\n{layer['kind']}"
                                           for layer in layers], fontsize="small")
        acc = res.get("accuracy")
        tidy(ax, f"Energy per layer: {label}",
             "layer (node name, kind)" + (f"\naccuracy {acc * 100:.1f}% on {res['samples']} "
                                          "images" if acc is not None else ""),
             f"energy per inference ({name})")
    ax = axes[-1]
    name, scale = unit(max(res["total"]["energy_pj"] for _, _, res in groups))
    left = [0.0] * n
    for op in ops:
        v = [_pj(res["total"]["energy_pj_by_op"], op) / scale for _, _, res in groups]
        ax.barh(range(n), v, 0.6, left=left, color=op_col[op])
        left = [a + b for a, b in zip(left, v)]
    for i, (_, _, res) in enumerate(groups):
        t = res["total"]
        note = f"{t['energy_pj'] / scale:.3g} {name}"
        if t.get("memory_pj"):
            note += (f"\ncompute {t['compute_pj'] / scale:.3g}\n"
                     f"memory {t['memory_pj'] / scale:.3g}")
        ax.annotate(note, (left[i], i), textcoords="offset points", xytext=(4, 0),
                    va="center", fontsize="small")
    ax.set_yticks(range(n), [g[0] for g in groups], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlim(0, max(left) * 1.45 or 1)
    tidy(ax, "Energy per inference", f"estimated energy ({name})", "")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(ops), 5),
               fontsize="small", title="operation kind")
    target = audits[0].report.get("target", {}).get("name", "?")
    fig.suptitle(title or f"Energy ESTIMATES per inference (exact operation counts × "
                          f"per-operation energies of target {target})")
    return fig
