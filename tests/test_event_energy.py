"""Energy tables (values, sources, JSON validation), energy arithmetic, audit reports and the
``snnlite audit`` command end to end on a checkpoint trained here."""
import csv
import io
import json
import math

import numpy as np
import pytest

import snnlite
from snnlite import cli, encoding
from snnlite.event import compile_model
from snnlite.event.energy import TABLES, EnergyTable, energy, get_table, load_table
from snnlite.event.report import CSV_COLUMNS, summarize, to_csv
from snnlite.io.config import TrainConfig
from snnlite.train import Trainer


def test_builtin_tables_carry_values_and_sources():
    want = {"cmos45_fp32": (4.6, 0.9), "cmos45_fp16": (1.5, 0.4), "cmos45_int8": (0.23, 0.03)}
    assert {k: (t.mac_pj, t.ac_pj) for k, t in TABLES.items()} == want
    for t in TABLES.values():
        assert "Horowitz" in t.source and "ISSCC 2014" in t.source and "45 nm" in t.source
        assert t.bias_pj == t.ac_pj and t.neuron_update_pj == 0.0
    assert get_table("cmos45_int8") is TABLES["cmos45_int8"]


def _write(tmp_path, obj, name="t.json"):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


GOOD = {"name": "asic", "mac_pj": 0.5, "ac_pj": 0.05, "source": "datasheet rev 3"}


def test_load_table_accepts_a_valid_file(tmp_path):
    t = load_table(_write(tmp_path, GOOD))
    assert t == EnergyTable("asic", 0.5, 0.05, "datasheet rev 3")
    t = load_table(_write(tmp_path, dict(GOOD, mac_pj=1, bias_add_pj=0.01,
                                         neuron_update_pj=0.2)))
    assert (t.mac_pj, t.bias_pj, t.neuron_update_pj) == (1.0, 0.01, 0.2)
    assert get_table(str(tmp_path / "t.json")) == t


@pytest.mark.parametrize("content,match", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({k: v for k, v in GOOD.items() if k != "ac_pj"}, r"missing required fields \['ac_pj'\]"),
    (dict(GOOD, mac_pj=-1), "mac_pj must be a finite number"),
    (dict(GOOD, ac_pj="0.9"), "ac_pj must be a finite number"),
    (dict(GOOD, ac_pj=True), "ac_pj must be a finite number"),
    ('{"name": "a", "mac_pj": NaN, "ac_pj": 1, "source": "s"}', "mac_pj must be a finite"),
    (dict(GOOD, source=" "), "source must be a non-empty string"),
    (dict(GOOD, mac=1.0), r"unknown fields \['mac'\]"),
])
def test_load_table_rejects_bad_files_naming_file_and_field(tmp_path, content, match):
    path = _write(tmp_path, content)
    with pytest.raises(ValueError, match=match) as e:
        load_table(path)
    assert "t.json" in str(e.value)


def test_get_table_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        get_table(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="cmos45_fp32"):
        get_table("cmos7_fp64")


@pytest.fixture(scope="module")
def run():
    model = snnlite.models.spiking_resnet(depth=8, width=1).astype(np.float64).eval()
    net = compile_model(model)
    x = np.random.default_rng(0).random((3, 3, 32, 32))
    return {"direct": net.run(encoding.direct(x, 2)), "ttfs": net.run(encoding.ttfs(x, 2))}


def test_energy_is_counts_times_table(run):
    t = EnergyTable("x", 3.0, 0.5, "test", bias_add_pj=0.25, neuron_update_pj=0.125)
    for res in run.values():
        c = res.counts
        e = energy(c, t)
        for lc in c.layers:
            want = (lc.macs.sum(1) * 3.0 + lc.acs.sum(1) * 0.5 + lc.bias_adds.sum(1) * 0.25
                    + lc.neuron_updates.sum(1) * 0.125)
            np.testing.assert_allclose(e[lc.name]["total"], want, rtol=1e-15)
        np.testing.assert_allclose(e["total"]["total"],
                                   sum(e[lc.name]["total"] for lc in c.layers), rtol=1e-15)
    direct = energy(run["direct"].counts, "cmos45_fp32")["conv1"]
    assert (direct["mac"] > 0).all() and not direct["ac"].any()


def test_summary_schema_and_csv(run):
    res = {k: summarize(r.counts, "cmos45_fp16", k, r.logits, np.zeros(3, int))
           for k, r in run.items()}
    s = json.loads(json.dumps(res))["ttfs"]
    assert set(s) == {"encoding", "mode", "T", "samples", "accuracy", "input_events", "layers",
                      "total", "energy_unpriced"}
    assert (s["mode"], s["T"], s["samples"]) == ("events", 2, 3)
    layer_keys = {"name", "desc", "kind", "neurons", "in_events", "out_spikes", "firing_rate",
                  "synops", "macs", "acs", "bias_adds", "neuron_updates", "energy_pj",
                  "compute_pj", "memory_pj", "energy_pj_by_op", "synops_per_step",
                  "out_spikes_per_step"}
    assert all(set(lay) == layer_keys for lay in s["layers"])
    assert set(s["total"]) == layer_keys - {"name", "desc", "kind"}
    c = run["ttfs"].counts
    assert [lay["name"] for lay in s["layers"]] == [lc.name for lc in c.layers]
    for k in ("synops", "acs", "out_spikes", "energy_pj"):
        assert math.isclose(s["total"][k], sum(lay[k] for lay in s["layers"]), rel_tol=1e-12)
    assert s["total"]["synops"] == c.per_sample("synops").mean()
    assert math.isclose(sum(s["total"]["synops_per_step"]), s["total"]["synops"])
    rows = list(csv.reader(io.StringIO(to_csv(res))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + 2 * (len(c.layers) + 1)
    assert rows[len(c.layers) + 1][:2] == ["direct", "total"]


# ------------------------------------------------------------------------ CLI


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from conftest import shared_data_dir
    mini = shared_data_dir() / "cifar10-mini.npz"
    if not mini.exists():
        pytest.skip(f"{mini} not found (set SNNLITE_DATA)")
    train, test = snnlite.data.load_mini(mini)
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="cifarnet_small", T=2, epochs=1, batch_size=16, train_limit=32,
                      test_limit=16)
    Trainer(cfg, out, train, test, progress=False).fit()
    return out / "last.h5", mini


def _audit(capsys, *args):
    code = cli.main(["audit", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_audit_json_checked(checkpoint, capsys):
    ck, mini = checkpoint
    code, out, err = _audit(capsys, ck, "--data", mini, "--samples", 5, "--batch-size", 2,
                            "--format", "json", "--check")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["format"], doc["version"], doc["model"], doc["T"], doc["samples"]) == \
        ("snnlite-audit", 2, "cifarnet_small", 2, 5)
    assert doc["checked"] is True and "ESTIMATES" in doc["note"]
    assert doc["target"]["name"] == "cmos45_fp32"
    assert doc["target"]["compute"]["mac_pj"]["value"] == 4.6
    assert doc["fit"]["fits"] is True and doc["fit"]["target"] == "cmos45_fp32"
    res = doc["results"]
    assert set(res) == {"direct", "ttfs"}
    assert [lay["name"] for lay in res["ttfs"]["layers"]] == ["0", "3", "7", "11", "16"]
    d0, t0 = res["direct"]["layers"][0], res["ttfs"]["layers"][0]
    assert d0["macs"] == 2 * 3 * 32 * 94 * 94 and d0["acs"] == 0  # every step, border-exact
    assert t0["macs"] == 0 and t0["in_events"] == res["ttfs"]["input_events"]
    assert 0 <= res["ttfs"]["accuracy"] <= 1
    for enc in res:  # compute and memory apart, adding up to the total
        t = res[enc]["total"]
        assert t["memory_pj"] > 0 and math.isclose(t["energy_pj"], t["compute_pj"] + t["memory_pj"])
        nb = res[enc]["neurobench"]
        assert nb["parameter_count"] > 0 and 0 <= nb["activation_sparsity"] <= 1
        assert nb["classification_accuracy"] == res[enc]["accuracy"]
    nb = res["ttfs"]["neurobench"]["synaptic_operations"]
    assert res["direct"]["neurobench"]["synaptic_operations"]["Effective_MACs"] > 0
    assert nb["Dense"] >= nb["Effective_ACs"] + nb["Effective_MACs"]


def test_cli_audit_table_csv_and_custom_target(checkpoint, capsys, tmp_path):
    ck, mini = checkpoint
    code, out, err = _audit(capsys, ck, "--data", mini, "--samples", 2, "--encoding", "ttfs",
                            "--T", 3)
    assert code == 0, err
    assert "ttfs synops" in out and "ESTIMATES" in out and "T=3" in out
    assert out.count("\ntotal ") == 1
    table = _write(tmp_path, dict(GOOD, name="asic"), "asic.json")
    code, out, err = _audit(capsys, ck, "--data", mini, "--samples", 2, "--format", "csv",
                            "--target", table)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["layer"] for r in rows if r["encoding"] == "direct"] == \
        ["0", "3", "7", "11", "16", "total"]
    d0 = next(r for r in rows if r["encoding"] == "direct" and r["layer"] == "0")
    want = float(d0["macs"]) * 0.5 + (float(d0["acs"]) + float(d0["bias_adds"])) * 0.05
    assert math.isclose(float(d0["energy_pj"]), want, rel_tol=1e-12)
    assert d0["memory_pj"] == "" and math.isclose(float(d0["compute_pj"]), want)


def test_cli_audit_reports_bad_arguments(checkpoint, capsys, tmp_path):
    ck, mini = checkpoint
    code, _, err = _audit(capsys, ck, "--data", mini, "--target", "cmos7_fp64")
    assert code == 2 and "target" in err and "loihi" in err
    bad = _write(tmp_path, dict(GOOD, ac_pj=-1), "bad.json")
    code, _, err = _audit(capsys, ck, "--data", mini, "--target", bad)
    assert code == 2 and "bad.json" in err and "ac_pj" in err
    code, _, err = _audit(capsys, tmp_path / "none.h5", "--data", mini)
    assert code == 2 and "none.h5" in err


def test_cli_audit_require_fit_and_neurobench_format(checkpoint, capsys):
    ck, mini = checkpoint
    code, out, err = _audit(capsys, ck, "--data", mini, "--samples", 2, "--encoding", "ttfs",
                            "--target", "speck", "--require-fit")
    assert code == 4 and "does not fit speck" in err
    assert "weights are floating point" in out and "fit on speck" in out
    code, out, err = _audit(capsys, ck, "--data", mini, "--samples", 2, "--encoding", "ttfs",
                            "--target", "loihi", "--format", "neurobench")
    assert code == 0, err
    nb = json.loads(out)["ttfs"]
    assert set(nb) >= {"footprint", "parameter_count", "connection_sparsity",
                       "activation_sparsity", "synaptic_operations", "membrane_updates",
                       "classification_accuracy"}
    assert set(nb["synaptic_operations"]) == {"Effective_MACs", "Effective_ACs", "Dense"}


def test_cli_targets_lists_sources(capsys):
    assert cli.main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in ("cmos45_fp32", "lemaire2022", "loihi", "speck", "xylo"):
        assert name in out
    assert cli.main(["targets", "loihi", "speck"]) == 0
    out = capsys.readouterr().out
    assert "Davies" in out and "[second-hand]" in out and "sinabs" in out
    assert "DYNAPCNN_WEIGHT_PRECISION_BITS = 8" in out
    assert cli.main(["targets", "nope"]) == 2
