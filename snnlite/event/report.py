"""Audit reports: per-sample means of the exact counts and of the energy estimates, as a
JSON-able dict, a table for people, or CSV.

JSON schema of one result (``summarize``), all values per-sample means over the samples::

    {"encoding": str, "mode": "events" | "dense", "T": int, "samples": int,
     "accuracy": float | null, "input_events": float,
     "layers": [LAYER, ...], "total": LAYER without name/desc/kind}
    LAYER = {"name": str, "desc": str, "kind": "lif" | "readout" | "maxpool",
             "neurons": int, "in_events", "out_spikes", "firing_rate", "synops", "macs",
             "acs", "bias_adds", "neuron_updates": float,
             "energy_pj": float, "energy_pj_by_op": {"mac", "ac", "bias", "neuron": float},
             "synops_per_step": [T floats], "out_spikes_per_step": [T floats]}

Counts are summed over the T steps of a sample, then averaged over samples (so a "per
inference" figure); ``firing_rate`` is spikes per neuron per step (for ``total``, over the
LIF layers only); ``energy_pj`` is an ESTIMATE (see :mod:`snnlite.event.energy`).
"""
import csv
import io
import textwrap

import numpy as np

from .counts import KINDS
from .energy import energy, get_table

CSV_COLUMNS = ("encoding", "layer", "desc", "neurons", "in_events", "out_spikes",
               "firing_rate", "synops", "macs", "acs", "bias_adds", "neuron_updates",
               "energy_pj")
ESTIMATE_NOTE = ("energy figures are ESTIMATES: exact operation counts times per-operation "
                 "energies of the target; memory access and data movement are not modelled")


def summarize(counts, table, encoding="", logits=None, labels=None):
    """Per-sample means of ``counts`` (a Counts) with energy from ``table`` (see schema)."""
    table = get_table(table)
    B, T = counts.shape
    e = energy(counts, table)
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
            "total": total}


def _energy(parts):
    return {"energy_pj": float(parts["total"].mean()),
            "energy_pj_by_op": {k: float(parts[k].mean()) for k in ("mac", "ac", "bias",
                                                                     "neuron")}}


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
    return repr(v) if isinstance(v, float) else str(v)


def format_table(results, table, title=""):
    """Side-by-side table (one column group per encoding) for people."""
    table = get_table(table)
    encs = list(results)
    first = results[encs[0]]
    head = ["layer", "neurons"]
    for enc in encs:
        head += [f"{enc} rate", f"{enc} synops", f"{enc} MACs", f"{enc} nJ"]
    rows = []
    for i, lay in enumerate(first["layers"] + [dict(first["total"], name="total")]):
        row = [lay["name"], f"{lay['neurons']:,}"]
        for enc in encs:
            r = results[enc]
            r = (r["layers"] + [r["total"]])[i]
            rate = "" if r.get("kind") == "readout" else f"{r['firing_rate']:.4f}"
            row += [rate, f"{r['synops']:,.0f}", f"{r['macs']:,.0f}",
                    f"{r['energy_pj'] / 1000:,.2f}"]
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
        lines.append(f"{enc}: {r['mode']} input, T={r['T']}, {r['samples']} samples, "
                     f"{r['input_events']:,.0f} input events/sample{acc}")
    layers = "; ".join(f"{lay['name']} = {lay['desc']}" for lay in first["layers"])
    target = (f"per-sample means (one inference = T steps); {ESTIMATE_NOTE}; target "
              f"{table.name} (MAC {table.mac_pj} pJ, AC {table.ac_pj} pJ; {table.source})")
    notes = [f"layers: {layers}", target]
    for note in notes:
        lines += textwrap.wrap(note, 100, subsequent_indent="  ")
    return "\n".join(lines)
