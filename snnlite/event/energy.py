"""Energy ESTIMATES from exact counts: per-operation energies of named hardware targets.

    E = macs * mac_pj + acs * ac_pj + bias_adds * bias_add_pj + neuron_updates * neuron_update_pj

(see the conventions in :mod:`snnlite.event`). A table is an :class:`EnergyTable`; the
built-in ones are in ``TABLES``. A custom table is a JSON object with the same fields::

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
