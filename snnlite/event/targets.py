"""Target profiles: what a piece of hardware (or a technology) costs per operation and per
memory access, and what it can hold. Profiles are data: JSON files shipped in
``snnlite/event/profiles/`` (``TARGETS`` lists them by name) or a file of your own.

A profile (``format: "snnlite-target"``, ``version: 1``)::

    {"format": "snnlite-target", "version": 1, "name": "my_chip", "title": "...",
     "description": "...",
     "sources": {"key": "full citation", ...},
     "compute":     {FIELD_NAME: FIELD, ...},      # pJ per operation
     "memory":      {FIELD_NAME: FIELD, ...},      # pJ per access, or a size model
     "constraints": {FIELD_NAME: FIELD, ...}}      # what the target can hold
    FIELD = {"value": number | list | object | null, "source": key of "sources",
             "where": "table / page / file and name", "note": str,
             "second_hand": bool, "included_in": other field name}

Every non-null value names its ``source`` (a key of ``sources``) and ``where`` in it the
figure is; ``second_hand: true`` marks a figure seen only as quoted by someone else (the
note says where). A null value needs a ``note`` saying why (no primary source found, not
applicable); ``included_in`` says a cost is part of another figure (priced 0, not
"unpriced"). Fields absent from a section are not modelled (energies) or not constrained.

Compute (pJ per op): ``mac_pj``, ``ac_pj`` (required keys), ``bias_add_pj``,
``neuron_update_pj``. Memory (pJ per access): ``weight_read_pj`` (one per synop),
``state_read_pj`` / ``state_write_pj`` (one each per synop and per neuron update),
``bias_read_pj`` (one per bias add), ``event_route_pj`` (one per event arriving at a
layer); or a size model that prices an access by the size of the memory holding the data:
``sram_levels`` ([[bytes, pJ], ...] ascending: the smallest level that holds it),
``dram_pj`` (beyond the largest level), ``sram_linear`` ({"pj_per_bit", "offset_pj"}:
``offset + pj_per_bit * bits``), with ``word_bits`` the width of a stored value when the
model records no integer format. Constraints: see ``CONSTRAINTS`` (checked by
:mod:`snnlite.event.targets_fit`).
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

PROFILE_DIR = Path(__file__).with_name("profiles")
FORMAT, VERSION = "snnlite-target", 1

COMPUTE = ("mac_pj", "ac_pj", "bias_add_pj", "neuron_update_pj")
COMPUTE_REQUIRED = ("mac_pj", "ac_pj")
MEMORY_PRICES = ("weight_read_pj", "state_read_pj", "state_write_pj", "bias_read_pj",
                 "event_route_pj")
MEMORY = MEMORY_PRICES + ("sram_levels", "dram_pj", "sram_linear", "word_bits")
# constraint name -> value type: int (positive integer), "names" (list of strings),
# "cores" (list of per-core memory objects)
CONSTRAINTS = {
    "weight_bits": int, "state_bits": int,            # widest integer formats held
    "cores": int, "neurons_per_core": int,            # cores per chip, neurons per core
    "fan_in_per_core": int,                           # distinct inputs a neuron may have
    "synapse_bits_per_core": int,                     # synaptic memory of a core
    "fan_out": int,                                   # destination layers per layer
    "kernel_max": int, "layers_max": int,             # conv kernel side, layer count
    "neurons_max": int, "outputs_max": int,           # spiking neurons, readout neurons
    "projection_kinds": "names", "neuron_dynamics": "names", "leak_forms": "names",
    "reset_modes": "names",
    "core_memory": "cores",                           # one layer per core, per-core memory
}
CORE_MEMORY_KEYS = ("kernel", "neuron", "bias")
_TOP = ("format", "version", "name", "title", "description", "sources", "compute", "memory",
        "constraints")
_FIELD_KEYS = ("value", "source", "where", "note", "second_hand", "included_in")


@dataclass(frozen=True)
class Field:
    """One figure of a profile and where it comes from."""

    value: object
    source: str | None = None
    where: str | None = None
    note: str | None = None
    second_hand: bool = False
    included_in: str | None = None

    def as_dict(self):
        d = {"value": self.value}
        for k in ("source", "where", "note", "included_in"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.second_hand:
            d["second_hand"] = True
        return d


@dataclass(frozen=True)
class Target:
    """A validated profile (see the module doc); ``compute``, ``memory`` and
    ``constraints`` map field names to :class:`Field`."""

    name: str
    title: str
    description: str
    sources: dict
    compute: dict
    memory: dict = field(default_factory=dict)
    constraints: dict = field(default_factory=dict)
    path: str | None = None

    def value(self, section, key):
        """The value of ``section.key`` (None when absent or null)."""
        f = getattr(self, section).get(key)
        return None if f is None else f.value

    def price(self, key):
        """pJ of a compute or memory price: a number, 0.0 when ``included_in`` another
        figure, or None (not modelled)."""
        f = self.compute.get(key) or self.memory.get(key)
        if f is None:
            return None
        if f.value is None:
            return 0.0 if f.included_in else None
        return float(f.value)

    def constraint(self, key):
        return self.value("constraints", key)

    def as_dict(self):
        return {"format": FORMAT, "version": VERSION, "name": self.name, "title": self.title,
                "description": self.description, "sources": dict(self.sources),
                **{s: {k: f.as_dict() for k, f in getattr(self, s).items()}
                   for s in ("compute", "memory", "constraints")}}

    def citations(self):
        """[(section.field, value, citation with place, second_hand)] of every figure."""
        out = []
        for s in ("compute", "memory", "constraints"):
            for k, f in getattr(self, s).items():
                cite = (f"{self.sources[f.source]}, {f.where}" if f.source else
                        f"no figure: {f.note}" if not f.included_in else
                        f"included in {f.included_in}")
                out.append((f"{s}.{k}", f.value, cite, f.second_hand))
        return out


def _bad(where, msg):
    return ValueError(f"{where}: {msg}")


def _number(v):
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)


def _check_value(where, section, key, v):
    """Raise unless value v suits field ``section.key``."""
    kind = CONSTRAINTS.get(key) if section == "constraints" else None
    if section == "constraints" and kind is int or key == "word_bits":
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise _bad(where, f"{section}.{key} must be a positive integer, got {v!r}")
    elif kind == "names":
        if not (isinstance(v, list) and v and all(isinstance(x, str) and x for x in v)):
            raise _bad(where, f"{section}.{key} must be a non-empty list of names, got {v!r}")
    elif kind == "cores":
        if not (isinstance(v, list) and v):
            raise _bad(where, f"{section}.{key} must be a non-empty list of cores")
        for i, c in enumerate(v):
            if not (isinstance(c, dict) and set(c) == set(CORE_MEMORY_KEYS)
                    and all(_number(c[k]) and c[k] >= 0 for k in CORE_MEMORY_KEYS)):
                raise _bad(where, f"{section}.{key}[{i}] must be an object with numbers "
                                  f">= 0 for {list(CORE_MEMORY_KEYS)}, got {c!r}")
    elif key == "sram_levels":
        ok = isinstance(v, list) and v and all(
            isinstance(p, list) and len(p) == 2 and all(_number(x) and x > 0 for x in p)
            for p in v)
        if not ok or [p[0] for p in v] != sorted(p[0] for p in v):
            raise _bad(where, f"memory.sram_levels must be [[bytes, pJ], ...] with positive "
                              f"numbers in ascending bytes, got {v!r}")
    elif key == "sram_linear":
        if not (isinstance(v, dict) and set(v) == {"pj_per_bit", "offset_pj"}
                and all(_number(x) and x >= 0 for x in v.values())):
            raise _bad(where, "memory.sram_linear must be {\"pj_per_bit\": number >= 0, "
                              f"\"offset_pj\": number >= 0}}, got {v!r}")
    elif not _number(v) or v < 0:
        raise _bad(where, f"{section}.{key} must be a finite number of pJ >= 0, got {v!r}")


def _field(where, section, key, d, sources, known):
    if type(d) is not dict:
        raise _bad(where, f"{section}.{key} must be an object {{\"value\", \"source\", "
                          f"\"where\", ...}}, got {d!r}")
    unknown = sorted(set(d) - set(_FIELD_KEYS))
    if unknown:
        raise _bad(where, f"{section}.{key}: unknown keys {unknown}; expected {_FIELD_KEYS}")
    if "value" not in d:
        raise _bad(where, f"{section}.{key}: missing \"value\" (null if unknown, with a note)")
    v = d["value"]
    for k in ("source", "where", "note", "included_in"):
        if k in d and (not isinstance(d[k], str) or not d[k].strip()):
            raise _bad(where, f"{section}.{key}.{k} must be a non-empty string")
    if "second_hand" in d and not isinstance(d["second_hand"], bool):
        raise _bad(where, f"{section}.{key}.second_hand must be true or false")
    if v is None:
        if not (d.get("note") or d.get("included_in")):
            raise _bad(where, f"{section}.{key} is null: say why in \"note\" (or name the "
                              "figure it is \"included_in\")")
        if d.get("included_in") and d["included_in"] not in known:
            raise _bad(where, f"{section}.{key}.included_in names no field of the profile: "
                              f"{d['included_in']!r}")
    else:
        _check_value(where, section, key, v)
        if "source" not in d or "where" not in d:
            raise _bad(where, f"{section}.{key} has a value but no source: give \"source\" "
                              "(a key of \"sources\") and \"where\" (table, page, file)")
    if "source" in d and d["source"] not in sources:
        raise _bad(where, f"{section}.{key}.source {d['source']!r} is not a key of "
                          f"\"sources\" {sorted(sources)}")
    if d.get("second_hand") and not d.get("note"):
        raise _bad(where, f"{section}.{key} is second-hand: say in \"note\" where it was seen")
    return Field(v, d.get("source"), d.get("where"), d.get("note"),
                 bool(d.get("second_hand", False)), d.get("included_in"))


def target_from_dict(d, where="target profile"):
    """Validate a profile dict (see the module doc) and return a :class:`Target`."""
    if type(d) is not dict:
        raise _bad(where, f"expected a JSON object, got {type(d).__name__}")
    unknown = sorted(set(d) - set(_TOP))
    if unknown:
        raise _bad(where, f"unknown fields {unknown}; expected {list(_TOP)}")
    missing = [k for k in ("format", "version", "name", "title", "sources", "compute")
               if k not in d]
    if missing:
        raise _bad(where, f"missing required fields {missing}")
    if d["format"] != FORMAT or d["version"] != VERSION:
        raise _bad(where, f"expected format {FORMAT!r} version {VERSION}, got "
                          f"{d['format']!r} version {d['version']!r}")
    for k in ("name", "title"):
        if not isinstance(d[k], str) or not d[k].strip():
            raise _bad(where, f"{k} must be a non-empty string, got {d[k]!r}")
    sources = d["sources"]
    if not (isinstance(sources, dict) and sources and all(
            isinstance(v, str) and v.strip() for v in sources.values())):
        raise _bad(where, "sources must be a non-empty object of citations (key -> text): "
                          "every figure names one")
    names = {"compute": COMPUTE, "memory": MEMORY, "constraints": tuple(CONSTRAINTS)}
    known = set(COMPUTE) | set(MEMORY) | set(CONSTRAINTS)
    out = {}
    for section, allowed in names.items():
        sec = d.get(section, {})
        if type(sec) is not dict:
            raise _bad(where, f"{section} must be an object")
        bad = sorted(set(sec) - set(allowed))
        if bad:
            raise _bad(where, f"{section}: unknown fields {bad}; expected {list(allowed)}")
        out[section] = {k: _field(where, section, k, v, sources, known)
                        for k, v in sec.items()}
    absent = [k for k in COMPUTE_REQUIRED if k not in out["compute"]]
    if absent:
        raise _bad(where, f"compute: missing required fields {absent} (null with a note if "
                          "the target has no such figure)")
    return Target(d["name"], d["title"], d.get("description", ""), dict(sources),
                  out["compute"], out["memory"], out["constraints"])


def load_target(path):
    """Read and validate a profile from a JSON file. A plain energy table (the older
    ``{"name", "mac_pj", "ac_pj", "source", ...}`` form of :mod:`snnlite.event.energy`) is
    read as a profile with compute prices only."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"target profile not found: {path}")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON: {e}") from None
    if isinstance(d, dict) and "format" not in d and "mac_pj" in d:
        from .energy import table_from_dict
        return from_table(table_from_dict(d, str(path)), str(path))
    t = target_from_dict(d, str(path))
    return Target(t.name, t.title, t.description, t.sources, t.compute, t.memory,
                  t.constraints, str(path))


def from_table(table, path=None):
    """A compute-only :class:`Target` from an :class:`~snnlite.event.energy.EnergyTable`."""
    def f(v):
        return Field(v, "table", "the table's own figure")
    compute = {"mac_pj": f(table.mac_pj), "ac_pj": f(table.ac_pj),
               "bias_add_pj": f(table.bias_pj), "neuron_update_pj": f(table.neuron_update_pj)}
    return Target(table.name, table.name, "energy table (compute prices only)",
                  {"table": table.source}, compute, {}, {}, path)


_BUILTIN = None


def builtin():
    """{name: Target} of the profiles shipped in ``PROFILE_DIR`` (read once)."""
    global _BUILTIN
    if _BUILTIN is None:
        found = {}
        for p in sorted(PROFILE_DIR.glob("*.json")):
            t = load_target(p)
            if t.name != p.stem:
                raise ValueError(f"{p}: name {t.name!r} differs from the file name")
            found[t.name] = t
        _BUILTIN = found
    return _BUILTIN


def names():
    return sorted(builtin())


def get_target(target):
    """A :class:`Target`: itself, a built-in name, an EnergyTable, or a JSON file path."""
    from .energy import EnergyTable
    if isinstance(target, Target):
        return target
    if isinstance(target, EnergyTable):
        return from_table(target)
    if target in builtin():
        return builtin()[target]
    if str(target).endswith(".json") or Path(str(target)).is_file():
        return load_target(target)
    raise ValueError(f"target: expected one of {names()} or a JSON file, got {target!r}")


__all__ = ["CONSTRAINTS", "Field", "Target", "builtin", "from_table", "get_target",
           "load_target", "names", "target_from_dict"]
