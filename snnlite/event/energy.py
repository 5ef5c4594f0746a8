"""Energy ESTIMATES from exact counts: compute and memory energy of named hardware targets.

Compute (an :class:`EnergyTable`, or the ``compute`` section of a target profile,
:mod:`snnlite.event.targets`)::

    E_compute = macs * mac_pj + acs * ac_pj + bias_adds * bias_add_pj
                + neuron_updates * neuron_update_pj

Memory (profiles only, :func:`energy_with_memory`; per layer, from the same exact counts)::

    E_memory = synops * weight_read_pj                       # each synop reads its weight
             + (synops + neuron_updates) * (state_read_pj + state_write_pj)
                                    # each synop and each update reads and writes a state
             + bias_adds * bias_read_pj + events * event_route_pj

``events`` are the spikes arriving at the layer (dense input values are not routed events).
A price is either fixed in the profile or set by the size of the memory that holds the data
(``sram_levels`` / ``sram_linear``): the layer's weights (``weight_bits`` each), its
neurons' states (``state_bits``), its biases. A price the profile does not give is left out
and the op listed as ``unpriced``; ``included_in`` prices count 0 (part of another figure).

The compute-only tables are ``TABLES``; a custom table is a JSON object with the fields::

    {"name": "my_asic", "mac_pj": 0.5, "ac_pj": 0.05,
     "source": "vendor datasheet rev. 3, 22 nm, int8",
     "bias_add_pj": 0.05, "neuron_update_pj": 0.1}

``name``, ``mac_pj``, ``ac_pj`` and ``source`` are required; ``bias_add_pj`` defaults to
``ac_pj`` and ``neuron_update_pj`` to 0. Energies are in picojoules, finite and >= 0.
"""
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

COMPUTE_PARTS = ("mac", "ac", "bias", "neuron")
MEMORY_PARTS = ("weight_read", "state_read", "state_write", "bias_read", "event_route")

HOROWITZ = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
            "ISSCC 2014, 45 nm CMOS")


@dataclass(frozen=True)
class EnergyTable:
    """Energy per operation in pJ, and where the figures come from."""

    name: str
    mac_pj: float
    ac_pj: float
    source: str
    bias_add_pj: float | None = None  # None: same as ac_pj
    neuron_update_pj: float = 0.0

    @property
    def bias_pj(self):
        return self.ac_pj if self.bias_add_pj is None else self.bias_add_pj

    def as_dict(self):
        d = asdict(self)
        d["bias_add_pj"] = self.bias_pj
        return d


TABLES = {t.name: t for t in (
    EnergyTable("cmos45_fp32", 4.6, 0.9, HOROWITZ + ": fp32 MAC = mult 3.7 + add 0.9 pJ, "
                "AC = add 0.9 pJ"),
    EnergyTable("cmos45_fp16", 1.5, 0.4, HOROWITZ + ": fp16 MAC = mult 1.1 + add 0.4 pJ, "
                "AC = add 0.4 pJ"),
    EnergyTable("cmos45_int8", 0.23, 0.03, HOROWITZ + ": int8 MAC = mult 0.2 + add 0.03 pJ, "
                "AC = add 0.03 pJ"),
)}

_FIELDS = {"name": str, "mac_pj": float, "ac_pj": float, "source": str,
           "bias_add_pj": float, "neuron_update_pj": float}
_REQUIRED = ("name", "mac_pj", "ac_pj", "source")


def table_from_dict(d, where="energy table"):
    """Validate a dict (see the module doc) and return an :class:`EnergyTable`."""
    if type(d) is not dict:  # a file's content, so a ValueError (the CLI reports those)
        raise ValueError(f"{where}: expected a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; expected {sorted(_FIELDS)}")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise ValueError(f"{where}: missing required fields {missing}")
    for k, v in d.items():
        if _FIELDS[k] is str:
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{where}: {k} must be a non-empty string, got {v!r}")
        elif k == "bias_add_pj" and v is None:
            continue
        elif (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
              or v < 0):
            raise ValueError(f"{where}: {k} must be a finite number of pJ >= 0, got {v!r}")
    return EnergyTable(**{k: (float(v) if _FIELDS[k] is float and v is not None else v)
                          for k, v in d.items()})


def load_table(path):
    """Read and validate a custom energy table from a JSON file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"energy table not found: {path}")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    return table_from_dict(d, str(path))


def get_table(target):
    """An :class:`EnergyTable`: itself, a built-in name (``TABLES``) or a JSON file path."""
    if isinstance(target, EnergyTable):
        return target
    if target in TABLES:
        return TABLES[target]
    if str(target).endswith(".json") or Path(target).is_file():
        return load_table(target)
    raise ValueError(f"target: expected one of {sorted(TABLES)} or a JSON file, got {target!r}")


def energy(counts, table):
    """Energy ESTIMATES in pJ per sample: {layer name: {mac, ac, bias, neuron, total: [B]}}
    plus ``"total"`` over layers. ``counts`` is a :class:`~snnlite.event.counts.Counts`."""
    table = get_table(table)
    out = {}
    for lc in counts.layers:
        parts = {"mac": lc.macs.sum(1) * table.mac_pj, "ac": lc.acs.sum(1) * table.ac_pj,
                 "bias": lc.bias_adds.sum(1) * table.bias_pj,
                 "neuron": lc.neuron_updates.sum(1) * table.neuron_update_pj}
        parts["total"] = parts["mac"] + parts["ac"] + parts["bias"] + parts["neuron"]
        out[lc.name] = parts
    B = counts.shape[0]
    out["total"] = {k: sum((v[k] for v in out.values()), np.zeros(B))
                    for k in ("mac", "ac", "bias", "neuron", "total")}
    return out


# ------------------------------------------------------------------ energy with memory


def layer_memories(net, formats=None, word_bits=None):
    """{population name: {"weight_bytes", "state_bytes", "bias_bytes", "weight_bits",
    "state_bits"}}: what each layer's memories hold. Integer formats come from ``formats``
    ({"weight_bits", "state_bits"}, a quantized checkpoint's record), else ``word_bits``."""
    formats = formats or {}
    wb = formats.get("weight_bits") or word_bits
    sb = formats.get("state_bits") or word_bits
    out = {}
    for p in net.populations:
        n_w = sum(int(q.weight.size) for q in p.projections if q.weight is not None)
        n_b = 0 if p.bias is None else int(p.bias.size)
        out[p.name] = {"weights": n_w, "biases": n_b, "neurons": p.size,
                       "weight_bits": wb, "state_bits": sb,
                       "weight_bytes": None if wb is None else n_w * wb / 8,
                       "state_bytes": None if sb is None else p.size * sb / 8,
                       "bias_bytes": None if wb is None else n_b * wb / 8}
    return out


def access_price(target, key, nbytes):
    """pJ of one access priced ``key`` (a memory price name) to a memory of ``nbytes``: the
    profile's fixed price, else its size model, else None (not modelled)."""
    p = target.price(key)
    if p is not None or key in target.memory:
        return p
    if nbytes is None:
        return None
    levels, linear = target.value("memory", "sram_levels"), target.value("memory", "sram_linear")
    if levels is not None:
        for size, pj in levels:
            if nbytes <= size:
                return float(pj)
        return target.price("dram_pj") if "dram_pj" in target.memory else float(levels[-1][1])
    if linear is not None:
        return float(linear["offset_pj"] + linear["pj_per_bit"] * nbytes * 8)
    return None


def energy_with_memory(counts, target, net, formats=None):
    """Energy ESTIMATES in pJ per sample with memory (see the module doc). Returns
    ({layer name | "total": {part: [B] or None, "compute", "memory", "total"}},
    {"unpriced": [part names with nonzero counts and no price],
     "prices": {layer: {part: pJ or None}}, "memories": layer_memories(...)})."""
    if not hasattr(target, "price"):
        raise TypeError(f"target: expected a Target (snnlite.event.targets.get_target), got "
                        f"{type(target).__name__}")
    mems = layer_memories(net, formats, target.value("memory", "word_bits"))
    B = counts.shape[0]
    out, prices, unpriced = {}, {}, set()
    pops = {p.name: p for p in net.populations}
    for lc in counts.layers:
        pop, mem = pops[lc.name], mems[lc.name]
        dense_in = 0
        if counts.mode == "dense":
            dense_in = sum(1 for q in pop.projections if q.source < 0)
        events = lc.in_events - dense_in * counts.input_events
        state_ops = lc.synops + lc.neuron_updates
        n = {"mac": lc.macs, "ac": lc.acs, "bias": lc.bias_adds, "neuron": lc.neuron_updates,
             "weight_read": lc.synops, "state_read": state_ops, "state_write": state_ops,
             "bias_read": lc.bias_adds, "event_route": events}
        price = {"mac": target.price("mac_pj"), "ac": target.price("ac_pj"),
                 "bias": target.price("bias_add_pj"),
                 "neuron": target.price("neuron_update_pj"),
                 "weight_read": access_price(target, "weight_read_pj", mem["weight_bytes"]),
                 "state_read": access_price(target, "state_read_pj", mem["state_bytes"]),
                 "state_write": access_price(target, "state_write_pj", mem["state_bytes"]),
                 "bias_read": access_price(target, "bias_read_pj", mem["bias_bytes"]),
                 "event_route": target.price("event_route_pj")}
        if target.price("bias_add_pj") is None and "bias_add_pj" not in target.compute:
            price["bias"] = price["ac"]  # as the energy tables do
        parts = {}
        for k, c in n.items():
            c = c.sum(1).astype(np.float64)
            if price[k] is None:
                parts[k] = None
                if c.any():
                    unpriced.add(k)
            else:
                parts[k] = c * price[k]
        out[lc.name] = _totals(parts, B)
        prices[lc.name] = price
    out["total"] = _totals({k: _sum_or_none([out[lc.name][k] for lc in counts.layers])
                            for k in COMPUTE_PARTS + MEMORY_PARTS}, B)
    order = COMPUTE_PARTS + MEMORY_PARTS
    return out, {"unpriced": [k for k in order if k in unpriced], "prices": prices,
                 "memories": mems}


def _sum_or_none(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals[1:], vals[0]) if vals else None


def _totals(parts, B):
    comp = _sum_or_none([parts[k] for k in COMPUTE_PARTS])
    mem = _sum_or_none([parts[k] for k in MEMORY_PARTS])
    parts = dict(parts)
    parts["compute"] = comp
    parts["memory"] = mem
    parts["total"] = _sum_or_none([comp, mem])
    return parts
