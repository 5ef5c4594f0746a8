"""Target profiles (shipped data, validation, sources), energy with memory and the fit check on
hand-countable models, and NeuroBench's metric definitions, by hand and against NeuroBench."""
import copy
import json
import math
import os
import pathlib
import runpy

import numpy as np
import pytest

import snnlite
from snnlite import nn
from snnlite.event import compile_model
from snnlite.event.energy import access_price, energy_with_memory
from snnlite.event.graph import EventNet, Population, Projection
from snnlite.event.neurobench import neurobench_metrics
from snnlite.event.targets import builtin, get_target, load_target, target_from_dict
from snnlite.event.targets_fit import FitError, core_memory_need, fit, formats_from_config

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_builtin_profiles_carry_a_source_for_every_figure():
    got = builtin()
    assert {"cmos45_fp32", "cmos45_fp16", "cmos45_int8", "lemaire2022", "loihi", "speck",
            "xylo"} <= set(got)
    for t in got.values():
        for section in ("compute", "memory", "constraints"):
            for k, f in getattr(t, section).items():
                if f.value is not None:
                    assert f.source in t.sources and f.where, (t.name, k)
                else:
                    assert f.note or f.included_in, (t.name, k)
                if f.second_hand:
                    assert f.note, (t.name, k)
    assert got["cmos45_fp32"].price("mac_pj") == 4.6 and got["cmos45_int8"].price("ac_pj") == 0.03
    assert got["speck"].constraint("layers_max") == 9
    assert got["speck"].constraint("weight_bits") == 8
    assert len(got["speck"].constraint("core_memory")) == 9
    assert got["loihi"].constraint("neurons_per_core") == 1024
    assert got["loihi"].compute["ac_pj"].second_hand  # Davies et al.'s Table 2, seen quoted
    assert got["xylo"].constraint("neurons_max") == 1000 and got["speck"].price("ac_pj") is None


GOOD = {"format": "snnlite-target", "version": 1, "name": "mine", "title": "my chip",
        "sources": {"ds": "datasheet rev 3"},
        "compute": {"mac_pj": {"value": 1.0, "source": "ds", "where": "table 4"},
                    "ac_pj": {"value": 2.0, "source": "ds", "where": "table 4"}}}


def _with(path, value):
    d = copy.deepcopy(GOOD)
    *head, last = path
    node = d
    for k in head:
        node = node.setdefault(k, {})
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize("d,match", [
    (_with(["name"], KeyError), r"missing required fields \['name'\]"),
    (_with(["sources"], {}), "sources must be a non-empty object"),
    (_with(["compute", "ac_pj"], KeyError), r"missing required fields \['ac_pj'\]"),
    (_with(["compute", "ac_pj", "value"], -1), "ac_pj must be a finite number"),
    (_with(["compute", "ac_pj"], {"value": 2.0}), "has a value but no source"),
    (_with(["compute", "ac_pj"], {"value": 2.0, "source": "web", "where": "x"}),
     "is not a key of"),
    (_with(["compute", "ac_pj"], {"value": None}), "is null: say why"),
    (_with(["compute", "ac_pj", "second_hand"], True), "second-hand: say"),
    (_with(["compute", "mac"], {"value": 1}), r"unknown fields \['mac'\]"),
    (_with(["constraints", "cores"], {"value": 2.5, "source": "ds", "where": "p. 1"}),
     "positive integer"),
    (_with(["memory", "sram_levels"], {"value": [[10, 1], [5, 2]], "source": "ds",
                                       "where": "p. 1"}), "ascending"),
    (_with(["version"], 9), "version"),
])
def test_profile_validation_names_the_field(d, match):
    with pytest.raises(ValueError, match=match):
        target_from_dict(d, "mine.json")


def test_profile_files_and_unknown_targets(tmp_path):
    p = tmp_path / "mine.json"
    p.write_text(json.dumps(GOOD))
    t = get_target(str(p))
    assert (t.name, t.price("mac_pj"), t.price("neuron_update_pj")) == ("mine", 1.0, None)
    legacy = tmp_path / "old.json"  # the energy-table form still loads, compute only
    legacy.write_text(json.dumps({"name": "asic", "mac_pj": 0.5, "ac_pj": 0.05, "source": "s"}))
    assert load_target(legacy).price("ac_pj") == 0.05
    with pytest.raises(ValueError, match="loihi"):
        get_target("loihi2")
    with pytest.raises(FileNotFoundError, match="none.json"):
        get_target(str(tmp_path / "none.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="bad.json: not valid JSON"):
        get_target(str(bad))


def _tiny_fc():
    """Flatten, Linear(4->3, no bias) + LIF, then a readout Linear(3->2, bias) + mean over T."""
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, bias=False, dtype=np.float64), nn.LIF(),
                      nn.Linear(3, 2, dtype=np.float64), nn.TimeMean())
    m[1].weight.data[...] = 4.0
    return m.eval()


PRICED = _with(["compute", "bias_add_pj"], {"value": 0.5, "source": "ds", "where": "t"})
PRICED["compute"]["neuron_update_pj"] = {"value": 3.0, "source": "ds", "where": "t"}
PRICED["memory"] = {k: {"value": v, "source": "ds", "where": "t"} for k, v in
                    (("weight_read_pj", 5.0), ("state_read_pj", 7.0), ("state_write_pj", 11.0),
                     ("bias_read_pj", 13.0), ("event_route_pj", 17.0))}


def test_energy_with_memory_by_hand():
    net = compile_model(_tiny_fc(), (4, 1, 1), dtype=np.float64)
    x = np.zeros((2, 1, 4, 1, 1))
    x[0, 0, :2] = 1  # two input events at step 0; all 3 neurons fire then, none at step 1
    c = net.run(x).counts
    e, info = energy_with_memory(c, target_from_dict(PRICED), net)
    # layer "1": 6 ACs, 6 neuron updates; 6 weight reads, 12 state reads and writes, 2 events
    assert e["1"]["compute"][0] == 6 * 2.0 + 6 * 3.0
    assert e["1"]["memory"][0] == 6 * 5.0 + 12 * 7.0 + 12 * 11.0 + 2 * 17.0
    # readout "3": 3 spikes x 2 = 6 ACs, 2 x 2 bias adds; 6 state RMWs, 3 events
    assert e["3"]["compute"][0] == 6 * 2.0 + 4 * 0.5
    assert e["3"]["memory"][0] == 6 * 5.0 + 6 * (7.0 + 11.0) + 4 * 13.0 + 3 * 17.0
    assert e["total"]["total"][0] == 30 + 280 + 14 + 241 and info["unpriced"] == []
    e, info = energy_with_memory(c, target_from_dict(GOOD), net)  # no memory, no neuron price
    assert e["1"]["memory"] is None
    assert info["unpriced"] == ["neuron", "weight_read", "state_read", "state_write",
                                "bias_read", "event_route"]


def test_memory_priced_by_size():
    t = get_target("cmos45_fp32")  # Horowitz: 8 KB 10 pJ, 32 KB 20 pJ, 1 MB 100 pJ, DRAM 1.3 nJ
    assert [access_price(t, "weight_read_pj", b) for b in (48, 8192, 8193, 2 ** 20, 2 ** 21)] \
        == [10.0, 10.0, 20.0, 100.0, 1300.0]
    lem = get_target("lemaire2022")
    assert math.isclose(access_price(lem, "state_read_pj", 1000), 13.2 + 1.09e-5 * 8000)
    net = compile_model(_tiny_fc(), (4, 1, 1), dtype=np.float64)
    x = np.zeros((2, 1, 4, 1, 1))
    x[0, 0, :2] = 1
    e, info = energy_with_memory(net.run(x).counts, t, net)  # t: a Target
    assert info["memories"]["1"]["weight_bytes"] == 12 * 4  # 12 fp32 weights
    assert e["1"]["weight_read"][0] == 6 * 10.0
    assert info["unpriced"] == ["neuron", "event_route"]  # Horowitz gives neither


def _conv_net():
    m = nn.Sequential(nn.Conv2d(2, 4, 3, 1, 1, bias=False, dtype=np.float64), nn.LIF(),
                      nn.Flatten(), nn.Linear(64, 3, dtype=np.float64), nn.TimeMean())
    return compile_model(m.eval(), (2, 4, 4), dtype=np.float64)


CHIP = _with(["constraints"], {k: {"value": v, "source": "ds", "where": "p. 2"} for k, v in (
    ("neurons_per_core", 16), ("synapse_bits_per_core", 1440), ("cores", 8),
    ("fan_in_per_core", 32), ("weight_bits", 8), ("state_bits", 16))})


def test_fit_cores_by_hand():
    r = fit(_conv_net(), target_from_dict(CHIP), {"weight_bits": 8, "state_bits": 16})
    rows = {row["name"]: row for row in r["layers"]}
    # conv: fan-in 2*3*3 = 18, 1440 // (18 * 8) = 10 neurons per core -> ceil(64 / 10) = 7
    assert (rows["0"]["fan_in"], rows["0"]["cores"]) == (18, 7)
    # readout: fan-in 64 > 32 per core; 1440 // 512 = 2 per core -> 2 cores
    assert (rows["3"]["fan_in"], rows["3"]["cores"]) == (64, 2) and r["cores_used"] == 9
    broken = {(v["layer"], v["constraint"]) for v in r["violations"]}
    assert broken == {("3", "fan_in_per_core"), (None, "cores")} and not r["fits"]
    floats = fit(_conv_net(), target_from_dict(CHIP))  # a float model breaks the formats
    assert {(None, "weight_bits"), (None, "state_bits")} <= \
        {(v["layer"], v["constraint"]) for v in floats["violations"]}


def test_fit_speck_and_xylo():
    net = _conv_net()
    conv = net.populations[0]
    assert core_memory_need(conv) == {"kernel": 2 * 16 * 4, "neuron": 4 * 4 * 4, "bias": 0}
    wrn = compile_model(snnlite.models.build("wrn20_1"))
    r = fit(wrn, "speck", {"weight_bits": 8, "state_bits": 16})
    layers = [v for v in r["violations"] if v["constraint"] == "layers_max"]
    assert layers and layers[0]["value"] == 20 and layers[0]["limit"] == 9
    assert any(v["constraint"] == "projection_kinds" and v["value"] == "identity"
               for v in r["violations"])
    m = nn.Sequential(nn.Flatten(), nn.Linear(4, 3, dtype=np.float64), nn.LIF(tau=3.0),
                      nn.Linear(3, 2, dtype=np.float64), nn.TimeMean())
    r = fit(compile_model(m.eval(), (4, 1, 1)), "xylo", {"weight_bits": 8})
    assert [(v["layer"], v["constraint"]) for v in r["violations"]] == [("1", "leak_forms")]
    m[2].tau = 2.0  # a leak of 1/2 is a shift by one
    assert fit(compile_model(m, (4, 1, 1)), "xylo", {"weight_bits": 8})["fits"]


def test_fit_bad_input():
    assert formats_from_config({"quant": {"weight_bits": 8, "state_bits": 16}}) == \
        {"weight_bits": 8, "state_bits": 16}
    assert formats_from_config({"model": "x"}) == {}
    with pytest.raises(ValueError, match="quant.weight_bits"):
        formats_from_config({"quant": {"weight_bits": "8"}})
    weird = Projection("w", "sparse", -1, (4, 1, 1), (3, 1, 1), np.ones((3, 4)))
    net = EventNet((4, 1, 1), [Population("w", "readout", (3, 1, 1), "w", [weird])])
    with pytest.raises(FitError, match="'sparse' is unknown to the fit check"):
        fit(net, "loihi")
    with pytest.raises(TypeError, match="EventNet"):
        fit(object(), "loihi")


def _hand_net():
    """conv3x3(1->1, pad 1, one zero tap) + LIF, flatten, linear(16->2); float32 as stored."""
    m = nn.Sequential(nn.Conv2d(1, 1, 3, 1, 1, bias=False), nn.LIF(), nn.Flatten(),
                      nn.Linear(16, 2), nn.TimeMean())
    m[0].weight.data[...] = 0.25
    m[0].weight.data[0, 0, 2, 2] = 0.0  # a tap a corner spike never uses
    return m.eval()


def test_neurobench_definitions_by_hand():
    m = _hand_net()
    x = np.zeros((2, 1, 1, 4, 4), np.float32)
    x[0, 0, 0, 0, 0] = 1  # one spike in the corner at step 0
    nb = neurobench_metrics(m, [x], [np.array([0])])
    assert nb["footprint"] == (9 + 32 + 2) * 4 and nb["parameter_count"] == 43
    assert nb["connection_sparsity"] == round(1 / 41, 4)
    # the corner spike reaches 2x2 outputs through 4 nonzero taps; the LIF stays silent
    # (0.25 / 2 < 1), so the linear layer sees zeros: 0 ops. Dense: conv 10 x 10 valid
    # (output, tap) pairs per step, linear 16 x 2, both steps
    assert nb["synaptic_operations"] == {"Effective_MACs": 0.0, "Effective_ACs": 4.0,
                                         "Dense": 2 * (100 + 32)}
    assert nb["activation_sparsity"] == 1.0
    assert nb["membrane_updates"] == 16 + 4  # all at step 0, then the 4 that leak
    assert nb["classification_accuracy"] in (0.0, 1.0)
    d = np.zeros((2, 1, 1, 4, 4), np.float32)
    d[:, 0, 0, 0, 0] = 0.5  # a dense (non-binary) input: MACs, zero pixels not counted
    ops = neurobench_metrics(m, [d])["synaptic_operations"]
    assert (ops["Effective_MACs"], ops["Effective_ACs"]) == (8.0, 0.0)


NB_PYTHON = os.environ.get("SNNLITE_NEUROBENCH_PYTHON")


@pytest.mark.skipif(not NB_PYTHON, reason="SNNLITE_NEUROBENCH_PYTHON (a venv with torch, "
                                          "snntorch and neurobench) not set")
def test_agrees_with_neurobench(capsys):
    """The same dyadic network and inputs through NeuroBench's own Benchmark: equal."""
    mod = runpy.run_path(str(REPO / "examples" / "neurobench_compare.py"))
    for enc in ("ttfs", "direct"):
        ours, theirs = mod["main"](["--tiny", "--samples", "6", "--batch-size", "3",
                                    "--encoding", enc])
        if theirs is None:
            pytest.skip(capsys.readouterr().out.splitlines()[-1])
        rows = mod["compare"](ours, theirs)
        assert len(rows) == 9
        averaged = {"activation_sparsity", "classification_accuracy"}  # batch-weighted there
        assert all(d == 0.0 for k, (_, _, d) in rows.items() if k not in averaged), rows
        assert all(rows[k][2] < 1e-6 for k in averaged), rows
