"""Does a compiled model fit a target? ``fit(net, target, formats)`` checks every constraint
the profile defines (:data:`snnlite.event.targets.CONSTRAINTS`), layer by layer, and maps
the layers onto cores where the target defines them.

The model is read from the compiled :class:`~snnlite.event.graph.EventNet` (populations and
their projections, BN and pooling folded), never from a model's field names. A layer is a
population (a report row); what each check reads:

- formats: ``formats`` = the checkpoint's integer formats ({"weight_bits", "state_bits"}, its
  ``quant`` record) when present; a float model breaks any ``weight_bits`` / ``state_bits``.
- dynamics: ``lif`` (leak 1/tau: a ``shift`` when tau is a power of two, else ``multiply``),
  ``readout`` (a non-spiking accumulator), ``maxpool``; other population kinds by name.
  Reset: ``zero`` (hard, to 0), ``value`` (hard, to v_reset != 0), ``subtract`` (soft).
- fan-in of a neuron: its distinct inputs, C*k*k per conv projection, F per linear, 1 per
  identity (a residual shortcut); fan-out of a layer: the layers it feeds.
- ``neurons_per_core`` (with ``fan_in_per_core``, ``synapse_bits_per_core``): a layer of N
  neurons takes ceil(N / n) cores, n = min(neurons_per_core, synapse_bits_per_core //
  (fan-in * weight bits)) neurons per core; their sum must not exceed ``cores``. Synapses
  are counted at their weight width only (no index overhead), so the count is a lower bound.
- ``core_memory`` (one layer per core, Speck / DYNAP-CNN): each layer needs kernel memory
  c * 2^(ceil(log2(k*k)) + ceil(log2 f)) per projection (a linear layer's kernel is its
  input map, an identity shortcut a 1x1 kernel), neuron memory f * 2^(ceil(log2 h) +
  ceil(log2 w)) and bias memory f, as sinabs counts them; layers are matched to distinct
  cores that hold them (bipartite matching).
"""
import math

from .graph import EventNet
from .targets import get_target

KNOWN_KINDS = ("lif", "readout", "maxpool")


class FitError(ValueError):
    """The fit check cannot map the model onto the target."""


def _pow2(n):
    return 1 << max(0, math.ceil(math.log2(n))) if n > 0 else 0


def dynamics(pop):
    """(dynamics name, leak forms that implement it or None, reset mode or None)."""
    if pop.kind == "lif":
        tau = float(pop.tau)
        shift = tau >= 1 and math.log2(tau).is_integer()
        leak = ("shift", "multiply") if shift else ("multiply",)
        if pop.v_reset is None:
            reset = "subtract"
        else:
            reset = "zero" if float(pop.v_reset) == 0.0 else "value"
        return "lif", leak, reset
    if pop.kind in ("readout", "maxpool"):
        return pop.kind, None, None
    reset = getattr(pop, "v_reset", "none")
    reset = None if reset == "none" else ("subtract" if reset is None else
                                          "zero" if float(reset) == 0.0 else "value")
    return pop.kind, None, reset


def fan_in(pop):
    """Distinct inputs of one neuron of ``pop`` (interior neuron of a conv)."""
    n = 0
    for q in pop.projections:
        if q.kind == "conv":
            n += q.src_shape[0] * q.kernel * q.kernel
        elif q.kind == "linear":
            n += int(q.weight.shape[1])
        elif q.kind == "identity":
            n += 1
        else:
            raise FitError(f"layer {pop.name!r}: projection {q.name!r} of kind {q.kind!r} is "
                           "unknown to the fit check")
    return n


def core_memory_need(pop):
    """{"kernel", "neuron", "bias"} entries a layer needs on a Speck / DYNAP-CNN core."""
    kernel = 0
    for q in pop.projections:
        c, f = q.src_shape[0], q.out_shape[0]
        if q.kind == "conv":
            kk = q.kernel * q.kernel
        elif q.kind == "linear":
            _, H, W = q.src_shape
            kk = (H // q.pool) * (W // q.pool)
        else:  # identity: a 1x1 kernel c -> c
            kk = 1
        kernel += c * (_pow2(kk) * _pow2(f))
    f, h, w = pop.shape
    return {"kernel": kernel, "neuron": f * _pow2(h) * _pow2(w),
            "bias": 0 if pop.bias is None else f}


def _match(needs, cores):
    """Assign each layer (needs[i]) to a distinct core that holds it (Kuhn's bipartite
    matching). Returns [core index or None]."""
    ok = [[j for j, c in enumerate(cores) if all(n[k] <= c[k] for k in n)] for n in needs]
    owner = [None] * len(cores)

    def place(i, seen):
        for j in ok[i]:
            if j not in seen:
                seen.add(j)
                if owner[j] is None or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(needs)):
        place(i, set())
    where = [None] * len(needs)
    for j, i in enumerate(owner):
        if i is not None:
            where[i] = j
    return where


def fit(net, target, formats=None):
    """Check ``net`` (an EventNet) against ``target``; returns a JSON-able report::

        {"target": name, "fits": bool, "violations": [VIOLATION, ...],
         "layers": [{"name", "kind", "dynamics", "neurons", "fan_in", "fan_out", "kernel",
                     "cores", "core"}, ...],
         "cores_used": int | None, "cores_available": int | None, "formats": {...}}
        VIOLATION = {"layer": name | None, "constraint": name, "value", "limit", "message"}
    """
    if not isinstance(net, EventNet):
        raise TypeError(f"net: expected an EventNet (compile_model), got {type(net).__name__}")
    target = get_target(target)
    c = target.constraint
    formats = dict(formats or {})
    pops = net.populations
    viol = []

    def bad(layer, constraint, value, limit, message):
        viol.append({"layer": layer, "constraint": constraint, "value": value, "limit": limit,
                     "message": message})

    wb, sb = formats.get("weight_bits"), formats.get("state_bits")
    if c("weight_bits") is not None:
        if wb is None:
            bad(None, "weight_bits", "float", c("weight_bits"),
                f"weights are floating point; {target.name} holds integer weights of at most "
                f"{c('weight_bits')} bits: quantize the model first")
        elif wb > c("weight_bits"):
            bad(None, "weight_bits", wb, c("weight_bits"),
                f"{wb}-bit weights exceed the target's {c('weight_bits')} bits")
    if c("state_bits") is not None:
        if sb is None:
            bad(None, "state_bits", "float", c("state_bits"),
                f"membranes are floating point; {target.name} holds integer states of at most "
                f"{c('state_bits')} bits: quantize the model first")
        elif sb > c("state_bits"):
            bad(None, "state_bits", sb, c("state_bits"),
                f"{sb}-bit states exceed the target's {c('state_bits')} bits")

    layers_counted = [p for p in pops if p.kind != "maxpool"]
    if c("layers_max") is not None and len(layers_counted) > c("layers_max"):
        bad(None, "layers_max", len(layers_counted), c("layers_max"),
            f"{len(layers_counted)} layers exceed the target's {c('layers_max')}")

    consumers = {i: set() for i in range(len(pops))}
    for j, p in enumerate(pops):
        for q in p.projections:
            if q.source >= 0:
                consumers[q.source].add(j)
        if p.kind == "maxpool":
            consumers[p.source].add(j)

    rows = []
    w_bits = wb or c("weight_bits")
    for i, p in enumerate(pops):
        dyn, leaks, reset = dynamics(p)
        fi = fan_in(p)
        row = {"name": p.name, "kind": p.kind, "dynamics": dyn, "neurons": p.size,
               "fan_in": fi, "fan_out": len(consumers[i]),
               "kernel": max([q.kernel for q in p.projections if q.kind == "conv"], default=None),
               "cores": None, "core": None}
        rows.append(row)
        allowed = c("neuron_dynamics")
        readout_as_output = p.kind == "readout" and c("outputs_max") is not None
        if allowed is not None and dyn not in allowed and not readout_as_output:
            bad(p.name, "neuron_dynamics", dyn, allowed,
                f"{dyn} neurons are not among the target's dynamics {allowed}")
        if leaks is not None and c("leak_forms") is not None and \
                not set(leaks) & set(c("leak_forms")):
            bad(p.name, "leak_forms", f"1/tau = 1/{p.tau:g}", c("leak_forms"),
                f"a leak of 1/tau with tau = {p.tau:g} needs {' or '.join(leaks)}; the target "
                f"offers {c('leak_forms')}")
        if reset is not None and c("reset_modes") is not None and reset not in c("reset_modes"):
            bad(p.name, "reset_modes", reset, c("reset_modes"),
                f"{reset} reset is not among the target's {c('reset_modes')}")
        for q in p.projections:
            kinds = c("projection_kinds")
            if kinds is not None and q.kind not in kinds:
                bad(p.name, "projection_kinds", q.kind, kinds,
                    f"projection {q.name!r} is {q.kind}; the target supports {kinds}")
            if q.kind == "conv" and c("kernel_max") is not None and q.kernel > c("kernel_max"):
                bad(p.name, "kernel_max", q.kernel, c("kernel_max"),
                    f"{q.kernel}x{q.kernel} kernel of {q.name!r} exceeds {c('kernel_max')}")
        if c("fan_out") is not None and len(consumers[i]) > c("fan_out"):
            bad(p.name, "fan_out", len(consumers[i]), c("fan_out"),
                f"feeds {len(consumers[i])} layers; the target allows {c('fan_out')}")
        if c("fan_in_per_core") is not None and fi > c("fan_in_per_core"):
            bad(p.name, "fan_in_per_core", fi, c("fan_in_per_core"),
                f"a neuron has {fi} inputs; a core takes {c('fan_in_per_core')}: the layer "
                "cannot be mapped")

    lif_neurons = sum(p.size for p in pops if p.kind not in ("readout", "maxpool"))
    if c("neurons_max") is not None and lif_neurons > c("neurons_max"):
        bad(None, "neurons_max", lif_neurons, c("neurons_max"),
            f"{lif_neurons} spiking neurons exceed the target's {c('neurons_max')}")
    out_n = pops[-1].size
    if c("outputs_max") is not None and out_n > c("outputs_max"):
        bad(pops[-1].name, "outputs_max", out_n, c("outputs_max"),
            f"{out_n} output neurons exceed the target's {c('outputs_max')}")

    cores_used = None
    if c("neurons_per_core") is not None:
        cores_used = 0
        for p, row in zip(pops, rows):
            n = c("neurons_per_core")
            if c("synapse_bits_per_core") is not None and w_bits and row["fan_in"]:
                n = min(n, c("synapse_bits_per_core") // (row["fan_in"] * w_bits))
            if n < 1:
                bad(p.name, "synapse_bits_per_core", row["fan_in"] * w_bits,
                    c("synapse_bits_per_core"),
                    f"one neuron's synapses ({row['fan_in']} x {w_bits} bits) exceed a core's "
                    f"{c('synapse_bits_per_core')} bits of synaptic memory")
                continue
            row["cores"] = -(-p.size // n)
            cores_used += row["cores"]
        if c("cores") is not None and cores_used > c("cores"):
            bad(None, "cores", cores_used, c("cores"),
                f"the layers need at least {cores_used} cores; the chip has {c('cores')}")
    elif c("core_memory") is not None:
        cores = c("core_memory")
        mapped = [p for p in pops if p.kind != "maxpool"]
        needs = [core_memory_need(p) for p in mapped]
        where = _match(needs, cores) if len(mapped) <= len(cores) else [None] * len(mapped)
        byname = {r["name"]: r for r in rows}
        for p, need, j in zip(mapped, needs, where):
            byname[p.name]["cores"] = None if j is None else 1
            byname[p.name]["core"] = j
            byname[p.name]["memory"] = need
            if j is None and len(mapped) <= len(cores):
                fits_any = [k for k, cm in enumerate(cores)
                            if all(need[m] <= cm[m] for m in need)]
                bad(p.name, "core_memory", need, None,
                    (f"no core holds kernel {need['kernel']}, neuron {need['neuron']}, bias "
                     f"{need['bias']} entries" if not fits_any else
                     "the cores that hold this layer are taken by other layers"))
        cores_used = sum(1 for j in where if j is not None)
    return {"target": target.name, "fits": not viol, "violations": viol, "layers": rows,
            "cores_used": cores_used,
            "cores_available": c("cores") if c("cores") is not None else
            (len(c("core_memory")) if c("core_memory") is not None else None),
            "formats": {"weight_bits": wb, "state_bits": sb}}


def formats_from_config(cfg_dict):
    """Integer formats a checkpoint's config records (its ``quant`` entry), or {}: reads
    ``weight_bits`` (or ``bits``) and ``state_bits``."""
    q = (cfg_dict or {}).get("quant")
    if not q:
        return {}
    if not isinstance(q, dict):
        raise ValueError(f"checkpoint config 'quant': expected an object, got {q!r}")
    out = {"weight_bits": q.get("weight_bits", q.get("bits")), "state_bits": q.get("state_bits")}
    for k, v in out.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"checkpoint config 'quant.{k}': expected a positive integer, "
                             f"got {v!r}")
    return {k: v for k, v in out.items() if v is not None}


def format_fit(report):
    """Lines for people: one per violation, then the core count."""
    lines = [f"fit on {report['target']}: " + ("fits" if report["fits"] else
                                               f"{len(report['violations'])} violations")]
    for v in report["violations"]:
        lines.append(f"  {v['layer'] or '(model)'}: {v['constraint']}: {v['message']}")
    if report["cores_used"] is not None:
        avail = report["cores_available"]
        where = ", ".join(f"{r['name']}: " + (str(r["cores"]) if r["core"] is None
                                                else f"core {r['core']}")
                          for r in report["layers"] if r["cores"] or r["core"] is not None)
        lines.append(f"  cores: {report['cores_used']}" + (f" of {avail}" if avail else "")
                     + f"  ({where})")
    return "\n".join(lines)


__all__ = ["FitError", "core_memory_need", "dynamics", "fan_in", "fit", "format_fit",
           "formats_from_config"]
