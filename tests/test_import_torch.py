"""Loading PyTorch/SpikingJelly state dicts into snnlite models (snnlite.io.torch_import).

torch is never imported: synthetic ``.pth`` files come from the test-only writer in
test_torch_pth.py; tests/data/torch/cifarnet/ holds files written by SpikingJelly
(make_cifarnet_fixture.py) with the PyTorch model's eval-mode logits.
"""
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from test_torch_pth import Ckpt, write_zip

from snnlite import cli, models
from snnlite.io.checkpoint import load_checkpoint, load_model
from snnlite.io.torch_import import load_torch_state_dict, mismatch_summary
from snnlite.nn import LIF, AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, Sequential, TimeMean

FIXTURES = Path(__file__).resolve().parent / "data" / "torch" / "cifarnet"


def write_state(path, state):
    ck = Ckpt()
    return write_zip(path, OrderedDict((k, ck.tensor(v)) for k, v in state.items()), ck)


def randomized(model, seed):
    """The model's state dict with every entry replaced by random values."""
    rng = np.random.default_rng(seed)
    out = OrderedDict()
    for k, v in model.state_dict().items():
        if k.endswith("num_batches_tracked"):
            out[k] = np.array(7, np.int64)
        elif k.endswith("running_var"):
            out[k] = rng.uniform(0.5, 2.0, v.shape).astype(v.dtype)
        else:
            out[k] = rng.normal(size=v.shape).astype(v.dtype)
    return out


def assert_state_equal(model, state, rename=lambda k: k):
    got = model.state_dict()
    assert sorted(got) == sorted(rename(k) for k in state)
    for k, v in state.items():
        np.testing.assert_array_equal(got[rename(k)], np.asarray(v, got[rename(k)].dtype),
                                      err_msg=k)


def run_fixture(model, name):
    with np.load(FIXTURES / f"{name}.npz") as f:
        x, T, logits, spikes = f["x"], int(f["T"]), f["logits"], f["spikes"]
    model.eval()
    y = model.forward(np.broadcast_to(x, (T,) + x.shape))
    counts = [m.spike_count for m in model.modules() if isinstance(m, LIF)]
    return y, logits, counts, spikes


# ---------------------------------------------------------------- files written by PyTorch
def test_spikingjelly_cifarnet_matches_pytorch():
    model = models.cifarnet_small(seed=123)
    info = load_torch_state_dict(model, FIXTURES / "cifarnet_small.pth")
    assert info["rule"] == "exact" and not info["missing"] and not info["unexpected"]
    assert len(info["mapping"]) == len(model.state_dict()) == 26
    assert model[1].num_batches_tracked == 1 and model[1].num_batches_tracked.dtype == np.int64
    assert not np.allclose(model[12].running_var, 1.0)
    y, want, counts, spikes = run_fixture(model, "cifarnet_small")
    assert y.dtype == np.float32
    assert counts == spikes.tolist() and min(counts) > 0
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def sj_wrapped_equivalent():
    return Sequential(Conv2d(3, 8, 3, 1, 1), BatchNorm2d(8), LIF(),
                      Conv2d(8, 8, 3, 1, 1, bias=False), BatchNorm2d(8), LIF(), AvgPool2d(4),
                      Flatten(), Linear(128, 5), TimeMean())


def test_spikingjelly_seq_to_ann_containers_are_flattened():
    model = sj_wrapped_equivalent()
    info = load_torch_state_dict(model, FIXTURES / "sj_wrapped.pth")
    assert info["rule"] == "flatten"
    assert info["mapping"]["0.bias"] == "0.0.bias"
    assert info["mapping"]["4.running_mean"] == "2.1.running_mean"
    assert info["mapping"]["8.weight"] == "5.1.weight"
    y, want, counts, spikes = run_fixture(model, "sj_wrapped")
    assert counts == spikes.tolist() and min(counts) > 0
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_fixture_files_are_small():
    assert (FIXTURES / "cifarnet_small.pth").stat().st_size < 1_200_000
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 1_300_000


# ---------------------------------------------------------------- naming rules
def test_exact_names_resnet_and_float64_file(tmp_path):
    src = models.spiking_resnet(depth=8, width=1, seed=0)
    state = randomized(src, 1)
    state64 = OrderedDict((k, v.astype(np.float64) if v.dtype == np.float32 else v)
                          for k, v in state.items())
    model = models.spiking_resnet(depth=8, width=1, seed=5)
    info = load_torch_state_dict(model, write_state(tmp_path / "r.pth", state64))
    assert info["rule"] == "exact"
    assert "layer2.0.downsample.1.running_var" in info["mapping"]
    assert model.dtype == np.float32
    assert_state_equal(model, state)


def old_sj_name(k):
    """SpikingJelly < 0.0.0.0.14: SeqToANNContainer(conv) keeps the layer in .module."""
    i, rest = k.split(".", 1)
    return f"{i}.module.{rest}"


def test_old_spikingjelly_module_level(tmp_path):
    state = randomized(models.cifarnet_small(seed=0), 2)
    file_state = OrderedDict((old_sj_name(k), v) for k, v in state.items())
    model = models.cifarnet_small(seed=9)
    info = load_torch_state_dict(model, write_state(tmp_path / "m.pth", file_state))
    assert info["rule"] == "drop_module" and info["mapping"]["16.bias"] == "16.module.bias"
    assert_state_equal(model, state)


def test_old_spikingjelly_module_level_with_containers(tmp_path):
    ref = sj_wrapped_equivalent()
    state = randomized(ref, 3)
    # Sequential(S(conv, bn), LIF, S(conv, bn), LIF, S(pool), S(flatten, linear)),
    # old containers: S(a, b) stores a Sequential in .module, S(a) the layer itself
    where = {"0": "0.module.0", "1": "0.module.1", "3": "2.module.0", "4": "2.module.1",
             "8": "5.module.1"}
    file_state = OrderedDict()
    for k, v in state.items():
        i, rest = k.split(".", 1)
        file_state[f"{where[i]}.{rest}"] = v
    model = sj_wrapped_equivalent()
    info = load_torch_state_dict(model, write_state(tmp_path / "w.pth", file_state))
    assert info["rule"] == "drop_module+flatten"
    assert_state_equal(model, state)


def test_data_parallel_prefix_and_nested_checkpoint(tmp_path):
    state = randomized(models.cifarnet_small(seed=0), 4)
    ck = Ckpt()
    inner = OrderedDict((f"module.{k}", ck.tensor(v)) for k, v in state.items())
    path = write_zip(tmp_path / "dp.pth", {"model": inner, "epoch": 3, "best": 0.5}, ck)
    model = models.cifarnet_small(seed=1)
    assert load_torch_state_dict(model, path)["rule"] == "exact"
    assert_state_equal(model, state)
    model = models.cifarnet_small(seed=1)
    load_torch_state_dict(model, path, key="model")
    assert_state_equal(model, state)


def test_rename_dict_and_function(tmp_path):
    state = randomized(models.cifarnet_small(seed=0), 5)
    file_state = OrderedDict((f"features.{k}", v) for k, v in state.items())
    path = write_state(tmp_path / "f.pth", file_state)
    model = models.cifarnet_small(seed=1)
    load_torch_state_dict(model, path, rename=lambda k: k.removeprefix("features."))
    assert_state_equal(model, state)
    model = models.cifarnet_small(seed=1)
    load_torch_state_dict(model, path, rename={f"features.{k}": k for k in state})
    assert_state_equal(model, state)
    with pytest.raises(ValueError, match="rename maps two keys to 'x'"):
        load_torch_state_dict(model, path, rename=lambda k: "x")


# ---------------------------------------------------------------- errors
def test_missing_unexpected_and_strict_false(tmp_path):
    state = randomized(models.cifarnet_small(seed=0), 6)
    del state["12.running_mean"]
    state["17.weight"] = np.ones(3, np.float32)
    path = write_state(tmp_path / "bad.pth", state)
    model = models.cifarnet_small(seed=1)
    before = model.state_dict()
    msg = (r"bad.pth: names do not match the model \(Sequential, 26 names; the closest "
           r"naming rule 'exact' matches 25\): 1 missing \(in the model, not in the file\): "
           r"'12.running_mean'; "
           r"1 unexpected \(in the file, not in the model\): '17.weight'$")
    with pytest.raises(ValueError, match=msg):
        load_torch_state_dict(model, path)
    for k, v in model.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(v, before[k])
    info = load_torch_state_dict(model, path, strict=False)
    assert info["missing"] == ["12.running_mean"] and info["unexpected"] == ["17.weight"]
    np.testing.assert_array_equal(model[0].weight.data, state["0.weight"])
    np.testing.assert_array_equal(model[12].running_mean, before["12.running_mean"])


def test_shape_mismatch_names_both_keys(tmp_path):
    state = randomized(models.cifarnet_small(seed=0, num_classes=100), 7)
    with pytest.raises(ValueError, match=r"c100.pth: '16.weight': the model expects shape "
                                         r"\(10, 2048\), the file has \(100, 2048\)"):
        load_torch_state_dict(models.cifarnet_small(seed=0),
                              write_state(tmp_path / "c100.pth", state))
    wrapped = OrderedDict((old_sj_name(k), v) for k, v in state.items())
    with pytest.raises(ValueError, match=r"'16.weight' \(file key '16.module.weight'\)"):
        load_torch_state_dict(models.cifarnet_small(seed=0),
                              write_state(tmp_path / "w.pth", wrapped))


def test_wrong_architecture_lists_names(tmp_path):
    state = randomized(models.spiking_resnet(depth=8, width=1), 8)
    with pytest.raises(ValueError, match=r"missing .*'0.weight'.*unexpected .*'conv1.weight'"):
        load_torch_state_dict(models.cifarnet_small(), write_state(tmp_path / "r.pth", state))


def test_mismatch_summary_is_short():
    """A wrong --model gives one line: the counts and the first names of each list."""
    missing = [f"layer{i}.conv.weight" for i in range(100)]
    unexpected = [f"{i}.weight" for i in range(30)]
    assert mismatch_summary(missing, unexpected) == (
        "100 missing (in the model, not in the file): 'layer0.conv.weight', "
        "'layer1.conv.weight', 'layer2.conv.weight', 'layer3.conv.weight' and 96 more; "
        "30 unexpected (in the file, not in the model): '0.weight', '1.weight', "
        "'2.weight', '3.weight' and 26 more")
    assert mismatch_summary([], ["a"]) == "1 unexpected (in the file, not in the model): 'a'"


# ---------------------------------------------------------------- command line
def test_cli_import_torch(tmp_path, capsys):
    out = tmp_path / "ck.h5"
    argv = ["import-torch", str(FIXTURES / "cifarnet_small.pth"), "--model",
            "cifarnet_small", "--T", "4", "--out", str(out)]
    assert cli.main(argv) == 0
    assert "naming rule 'exact'" in capsys.readouterr().out
    model, cfg = load_model(out)
    assert (cfg.model, cfg.T, cfg.num_classes, cfg.dataset) == ("cifarnet_small", 4, 10,
                                                                 "cifar10")
    assert load_checkpoint(out)["state"]["imported_from"]["format"] == "pytorch"
    y, want, _, _ = run_fixture(model, "cifarnet_small")
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)

    bad = ["import-torch", str(FIXTURES / "cifarnet_small.pth"), "--model", "wrn20_1",
           "--out", str(tmp_path / "bad.h5")]
    assert cli.main(bad) == 2
    err = capsys.readouterr().err
    assert "cifarnet_small.pth: names do not match" in err
    assert "128 missing" in err and "and 124 more" in err and "26 unexpected" in err
    assert len(err) < 600 and err.count("\n") == 1
    assert not (tmp_path / "bad.h5").exists()

    before = out.read_bytes()
    assert cli.main(argv) == 2  # an existing checkpoint is kept
    assert "exists: pass --force" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert cli.main(argv + ["--force"]) == 0
