"""Audit reports: per-sample means of the exact counts and of the energy estimates (compute
and memory apart), as a JSON-able dict, a table for people, or CSV.

JSON schema of one result (``summarize``), every number a per-sample mean over the samples
(``SCHEMA_VERSION`` of the audit document, :data:`RESULT_SCHEMA` below)::

    {"encoding": str, "mode": "events" | "dense", "T": int, "samples": int,
     "accuracy": float | null, "input_events": float,
     "layers": [LAYER, ...], "total": LAYER without name/desc/kind,
     "energy_unpriced": [op, ...]}       # ops counted but without a price in the target
    LAYER = {"name": str, "desc": str, "kind": "lif" | "readout" | "maxpool",
             "neurons": int, "in_events", "out_spikes", "firing_rate", "synops", "macs",
             "acs", "bias_adds", "neuron_updates": float,
             "energy_pj", "compute_pj", "memory_pj": float | null,
             "energy_pj_by_op": {"mac", "ac", "bias", "neuron", "weight_read", "state_read",
                                 "state_write", "bias_read", "event_route": float | null},
             "synops_per_step": [T floats], "out_spikes_per_step": [T floats]}

Counts are summed over the T steps of a sample, then averaged over samples (so a "per
inference" figure); ``firing_rate`` is spikes per neuron per step (for ``total``, over the
LIF layers only); energies are ESTIMATES (see :mod:`snnlite.event.energy`): null where the
target prices none of the layer's operations.
"""
import csv
import io
import textwrap

import numpy as np

from .counts import KINDS
from .energy import COMPUTE_PARTS, MEMORY_PARTS, energy_with_memory
from .targets import Target, get_target

SCHEMA_VERSION = 2
RESULT_SCHEMA = __doc__[__doc__.index("    {\"encoding\""):__doc__.index("Counts are summed")]
CSV_COLUMNS = ("encoding", "layer", "desc", "neurons", "in_events", "out_spikes",
               "firing_rate", "synops", "macs", "acs", "bias_adds", "neuron_updates",
               "energy_pj", "compute_pj", "memory_pj")
ESTIMATE_NOTE = ("energy figures are ESTIMATES: exact operation counts and memory accesses "
                 "times the target's per-operation and per-access energies (see its sources)")


def summarize(counts, target, encoding="", logits=None, labels=None, net=None, formats=None):
    """Per-sample means of ``counts`` (a Counts) with energy from ``target`` (see schema).
    Memory energy needs ``net`` (the EventNet the counts come from); without it only the
    compute energy is estimated."""
    target = get_target(target)
    B, T = counts.shape
    if net is None:
        from .graph import EventNet, Population
        pops = [Population(lc.name, lc.kind, (lc.neurons, 1, 1), lc.name) for lc in counts.layers]
        net, target = EventNet((1, 1, 1), pops), _strip_memory(target)
    e, info = energy_with_memory(counts, target, net, formats)
    layers = []
    for lc in counts.layers:
        row = {"name": lc.name, "desc": lc.desc, "kind": lc.kind, "neurons": lc.neurons}
        row.update({k: float(getattr(lc, k).sum(1).mean()) for k in KINDS})
        row["firing_rate"] = float(lc.firing_rate().mean())
        row.update(_energy(e[lc.name]))
        row["synops_per_step"] = [float(v) for v in lc.synops.mean(0)]
        row["out_spikes_per_step"] = [float(v) for v in lc.out_spikes.mean(0)]
        layers.append(row)
    total = {"neurons": sum(lc.neurons for lc in counts.layers if lc.kind == "lif")}
    total.update({k: float(counts.per_sample(k).mean()) for k in KINDS})
    total["firing_rate"] = float(counts.firing_rate().mean())
    total.update(_energy(e["total"]))
    total["synops_per_step"] = [float(v) for v in counts.total("synops").mean(0)]
    total["out_spikes_per_step"] = [float(v) for v in counts.total("out_spikes").mean(0)]
    acc = None
    if logits is not None and labels is not None:
        acc = float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())
    return {"encoding": encoding, "mode": counts.mode, "T": T, "samples": B, "accuracy": acc,
            "input_events": float(counts.input_events.sum(1).mean()), "layers": layers,
            "total": total, "energy_unpriced": info["unpriced"]}


def _strip_memory(target):
    """``target`` with no memory model (memory energy needs the compiled net)."""
    return Target(target.name, target.title, target.description, target.sources,
                  target.compute, {}, target.constraints)


def _mean(v):
    return None if v is None else float(np.mean(v))


def _energy(parts):
    return {"energy_pj": _mean(parts["total"]), "compute_pj": _mean(parts["compute"]),
            "memory_pj": _mean(parts["memory"]),
            "energy_pj_by_op": {k: _mean(parts[k]) for k in COMPUTE_PARTS + MEMORY_PARTS}}


def to_csv(results):
    """CSV text: one row per (encoding, layer) plus a ``total`` row per encoding;
    columns ``CSV_COLUMNS`` (per-sample means)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for enc, res in results.items():
        for row in res["layers"] + [dict(res["total"], name="total", desc="")]:
            w.writerow([enc, row["name"], row["desc"]] + [_csv_num(row[c])
                                                          for c in CSV_COLUMNS[3:]])
    return buf.getvalue()


def _csv_num(v):
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


def _nj(v):
    return "n/a" if v is None else f"{v / 1000:,.2f}"


def format_table(results, target, title=""):
    """Side-by-side table (one column group per encoding) for people: energy in nJ per
    inference, compute + memory."""
    target = get_target(target)
    encs = list(results)
    first = results[encs[0]]
    head = ["layer", "neurons"]
    for enc in encs:
        head += [f"{enc} rate", f"{enc} synops", f"{enc} MACs", f"{enc} nJ cmp+mem"]
    rows = []
    for i, lay in enumerate(first["layers"] + [dict(first["total"], name="total")]):
        row = [lay["name"], f"{lay['neurons']:,}"]
        for enc in encs:
            r = results[enc]
            r = (r["layers"] + [r["total"]])[i]
            rate = "" if r.get("kind") == "readout" else f"{r['firing_rate']:.4f}"
            row += [rate, f"{r['synops']:,.0f}", f"{r['macs']:,.0f}",
                    f"{_nj(r['compute_pj'])}+{_nj(r['memory_pj'])}"]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    lines = [title] if title else []
    lines.append("  ".join(h.rjust(w) if i else h.ljust(w)
                           for i, (h, w) in enumerate(zip(head, widths))))
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))))
    for enc in encs:
        r = results[enc]
        acc = "" if r["accuracy"] is None else f", accuracy {r['accuracy']:.4f}"
        tot = r["total"]["energy_pj"]
        lines.append(f"{enc}: {r['mode']} input, T={r['T']}, {r['samples']} samples, "
                     f"{r['input_events']:,.0f} input events/sample{acc}, energy "
                     f"{_nj(tot)} nJ/sample" + (f" (unpriced: {', '.join(r['energy_unpriced'])})"
                                                 if r.get("energy_unpriced") else ""))
    layers = "; ".join(f"{lay['name']} = {lay['desc']}" for lay in first["layers"])
    note = (f"per-sample means (one inference = T steps); {ESTIMATE_NOTE}; target "
            f"{target.name}: {target.title} (`snnlite targets {target.name}` lists its "
            "figures and sources)")
    for n in (f"layers: {layers}", note):
        lines += textwrap.wrap(n, 100, subsequent_indent="  ")
    return "\n".join(lines)
