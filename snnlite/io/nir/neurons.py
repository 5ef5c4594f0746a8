"""Neuron nodes both ways: snnlite's LIF, IF and CubaLIF <-> NIR's ``LIF``, ``IF`` and
``CubaLIF``, and the time step ``dt`` that relates their time constants.

Every mapping is one forward-Euler step of NIR's equations of length ``dt``, charge then
fire then reset, the membrane starting at rest (see :mod:`snnlite.io.nir`)::

    LIF      tau_nir = tau * dt, v_leak = v_reset, r = 1 (decay_input) or tau (otherwise)
    IF       r = 1 / dt                            (dv/dt = R I: v += dt * r * x = x)
    CubaLIF  tau_syn_nir = tau_syn * dt, tau_mem_nir = tau_mem * dt,
             w_in_nir = w_in * tau_syn, r_nir = r * tau_mem, v_leak, v_threshold, v_reset

so the peers that discretise the same way (SpikingJelly, snnTorch, Norse) rebuild the same
neurons from the file with the same ``dt``. ``v_reset`` is written only where it is not
NIR's default of 0 (nir 1.0.4 has no ``v_reset`` field, so such files load there too).
"""
import math

import numpy as np

from ...nn import IF, LIF, CubaLIF

NEURON_TYPES = ("LIF", "IF", "CubaLIF")
PEER_DTS = ("1e-4 for graphs from SpikingJelly or snnTorch (their default), 1e-3 for Norse's "
            "default, 1.0 for sinabs (whose IF nodes carry r = 1)")


def _close(a, b, rel=1e-6):
    return math.isclose(a, b, rel_tol=rel, abs_tol=0.0)


def _snap(v):
    """1.0 for a ratio that is 1 up to the rounding of float32 file values."""
    return 1.0 if _close(v, 1.0) else v


# ---------------------------------------------------------------- export
def to_nir(m, shape, dt):
    """The NIR node dict of neuron module ``m`` over neurons of ``shape``."""
    soft = m.v_reset is None
    v_reset = 0.0 if soft else float(m.v_reset)

    def full(v):
        return np.full(shape, v, np.float64)

    meta = {"reset_mode": "soft" if soft else "hard", "detach_reset": bool(m.detach_reset),
            "surrogate_alpha": float(m.surrogate_alpha)}
    if m.dynamics == "if":
        node = {"type": "IF", "r": full(1.0 / dt), "v_threshold": full(m.v_threshold)}
    elif m.dynamics == "cuba_lif":
        node = {"type": "CubaLIF", "tau_syn": full(m.tau_syn * dt),
                "tau_mem": full(m.tau_mem * dt), "r": full(m.r * m.tau_mem),
                "v_leak": full(m.v_leak), "v_threshold": full(m.v_threshold),
                "w_in": full(m.w_in * m.tau_syn)}
    else:
        meta["decay_input"] = bool(m.decay_input)
        node = {"type": "LIF", "tau": full(m.tau * dt), "r": full(1.0 if m.decay_input else m.tau),
                "v_leak": full(v_reset), "v_threshold": full(m.v_threshold)}
    if v_reset != 0.0:
        node["v_reset"] = full(v_reset)
    node["metadata"] = meta
    return node


# ---------------------------------------------------------------- import
def implied_dt(nodes):
    """The dt the neuron parameters of ``nodes`` pin down, if they agree on one: IF writes
    r = 1 / dt, and the snnTorch / SpikingJelly conventions r = tau / dt (LIF without input
    decay, CubaLIF's membrane) and w_in = tau_syn / dt. None if nothing pins it."""
    found = []
    for v in nodes.values():
        typ = v.get("type")
        try:
            if typ == "IF":
                found.append(1.0 / _uniform(v, "r"))
            elif typ == "LIF" and not _close(_uniform(v, "r"), 1.0):
                found.append(_uniform(v, "tau") / _uniform(v, "r"))
            elif typ == "CubaLIF":
                if not _close(_uniform(v, "r"), 1.0):
                    found.append(_uniform(v, "tau_mem") / _uniform(v, "r"))
                if "w_in" in v and not _close(_uniform(v, "w_in"), 1.0):
                    found.append(_uniform(v, "tau_syn") / _uniform(v, "w_in"))
        except (KeyError, ValueError, TypeError, ZeroDivisionError):
            continue
    if found and all(_close(d, found[0], 1e-4) for d in found):
        return float(f"{found[0]:.6g}")
    return None


def needs_dt(nodes):
    return any(v.get("type") in NEURON_TYPES for v in nodes.values())


def _uniform(node, key):
    a = np.asarray(node[key], np.float64)
    if a.size == 0 or not np.all(a == a.ravel()[0]):
        raise ValueError(key)
    return float(a.ravel()[0])


class NeuronReader:
    """Builds snnlite neurons from NIR neuron nodes for one ``dt``; ``imp`` is the importer
    (its ``fail``, ``field`` and ``node`` methods)."""

    def __init__(self, imp, dt, soft_reset=False):
        self.imp, self.dt, self.soft_reset = imp, dt, soft_reset

    def values(self, name, keys, shape, defaults):
        """{key: the one value of field ``key``} (NIR defaults where absent)."""
        node, vals = self.imp.node(name), {}
        for key in keys:
            if key not in node and key in defaults:
                vals[key] = defaults[key]
                continue
            a = np.asarray(self.imp.field(name, key), np.float64)
            if a.shape not in ((), (1,), tuple(shape)):
                self.imp.fail(name, f"{key} has shape {list(a.shape)}, the incoming neurons "
                                    f"{list(shape)}")
            if a.size and not np.all(a == a.ravel()[0]):
                self.imp.fail(name, f"{key} differs between neurons; snnlite's neurons need "
                                    "one value per layer")
            if not np.all(np.isfinite(a)):
                self.imp.fail(name, f"{key} is not finite")
            vals[key] = float(a.ravel()[0])
        return vals

    def steps(self, name, key, tau):
        """tau / dt in steps, to 12 significant digits (undoing the rounding of the
        writer's tau * dt: 3 * 1e-4 / 1e-4 is 3.0000000000000004 in floats)."""
        t = float(f"{tau / self.dt:.12g}")
        if not t > 1:
            self.imp.fail(name, f"{key} / dt = {t:g} must be > 1 (dt = {self.dt:g}; "
                                f"{_dt_hint(self.imp.nodes)})")
        return t

    def reset(self, name, vals, leak_key=None):
        """v_reset for the module (None for snnlite's soft reset: from node metadata, or
        for every neuron when the importer is told ``soft_reset``)."""
        soft = self.soft_reset or \
            self.imp.node(name).get("metadata", {}).get("reset_mode") == "soft"
        if soft:
            if vals["v_reset"] != 0 or (leak_key and vals[leak_key] != 0):
                self.imp.fail(name, "soft reset needs v_leak = v_reset = 0, got "
                                    f"{vals.get(leak_key, 0.0)}, {vals['v_reset']}")
            return None
        return vals["v_reset"]

    def training_kw(self, name):
        meta, kw = self.imp.node(name).get("metadata", {}), {}
        if "detach_reset" in meta:
            kw["detach_reset"] = bool(meta["detach_reset"])
        if "surrogate_alpha" in meta:
            kw["surrogate_alpha"] = float(meta["surrogate_alpha"])
        return kw

    def read(self, name, shape):
        typ = self.imp.node(name)["type"]
        return {"LIF": self.lif, "IF": self.if_, "CubaLIF": self.cuba}[typ](name, shape)

    def lif(self, name, shape):
        vals = self.values(name, ("tau", "r", "v_leak", "v_threshold", "v_reset"), shape,
                           {"v_reset": 0.0})
        tau = self.steps(name, "tau", vals["tau"])
        r = vals["r"]
        if _close(r, 1.0, 1e-9):
            decay_input = True
        elif _close(r, tau):
            decay_input = False
        else:
            self.imp.fail(name, f"r = {r:g} is neither 1 (decay_input) nor tau / dt = {tau:g}")
        v_reset = self.reset(name, vals, "v_leak")
        if v_reset is not None and vals["v_leak"] != v_reset:
            self.imp.fail(name, f"v_leak = {vals['v_leak']} differs from v_reset = "
                                f"{v_reset}; snnlite's LIF leaks towards v_reset")
        return LIF(tau=tau, v_threshold=vals["v_threshold"], v_reset=v_reset,
                   decay_input=decay_input, **self.training_kw(name))

    def if_(self, name, shape):
        vals = self.values(name, ("r", "v_threshold", "v_reset"), shape, {"v_reset": 0.0})
        gain = vals["r"] * self.dt
        if not _close(gain, 1.0):
            self.imp.fail(name, f"r * dt = {gain:g}, not 1: snnlite's IF adds its input once "
                                f"per step (NIR's dv/dt = R I over one step of dt); this "
                                f"node needs dt = 1 / r = {1 / vals['r']:g}")
        return IF(v_threshold=vals["v_threshold"], v_reset=self.reset(name, vals),
                  **self.training_kw(name))

    def cuba(self, name, shape):
        vals = self.values(name, ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold",
                                  "v_reset", "w_in"), shape, {"v_reset": 0.0, "w_in": 1.0})
        tau_syn = self.steps(name, "tau_syn", vals["tau_syn"])
        tau_mem = self.steps(name, "tau_mem", vals["tau_mem"])
        v_reset = self.reset(name, vals)
        return CubaLIF(tau_syn, tau_mem, vals["v_threshold"], v_reset, vals["v_leak"],
                       w_in=_snap(vals["w_in"] / tau_syn), r=_snap(vals["r"] / tau_mem),
                       **self.training_kw(name))


def _dt_hint(nodes):
    d = implied_dt(nodes)
    if d is not None:
        return f"its IF/CubaLIF parameters imply dt = {d:g}"
    return f"usual values: {PEER_DTS}"


def missing_dt_message(path, nodes):
    d = implied_dt(nodes)
    hint = (f"its neuron parameters imply dt={d:g} (IF writes r = 1/dt; snnTorch and "
            f"SpikingJelly write r = tau/dt and w_in = tau_syn/dt)") if d is not None else \
        f"usual values: {PEER_DTS}"
    return (f"{path}: the file records no time step (it was not written by snnlite): pass "
            f"import_nir(path, dt=...), the dt its time constants were written for; {hint}")
