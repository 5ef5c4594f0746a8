"""NIR export/import (snnlite.io.nir): files checked with the real ``nir`` package when it
is installed (a test extra), round trips exact in float64, and clear errors."""
import itertools
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from snnlite import cli, models
from snnlite.io.checkpoint import save_checkpoint
from snnlite.io.nir import GraphModule, export_nir, import_nir, read_nir
from snnlite.nn import (
    LIF,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    Module,
    Sequential,
    TimeMean,
)

ROOT = Path(__file__).resolve().parents[1]
T, B = 4, 2


def calibrate(model, x, rng):
    """Batch-norm running statistics from one batch and random affine parameters, so that
    every LIF layer fires in eval mode."""
    bns = [m for m in model.modules() if isinstance(m, BatchNorm2d)]
    for bn in bns:
        bn.momentum = 1.0
    model.train()
    model.forward(x)
    model.eval()
    for bn in bns:
        bn.momentum = 0.1
        bn.weight.data[...] = rng.uniform(1.0, 2.0, bn.num_features)
        bn.bias.data[...] = rng.uniform(0.0, 0.8, bn.num_features)
    return model


def direct(rng, shape=(3, 32, 32), dtype=np.float64):
    x = rng.normal(0, 1, (1, B) + shape).astype(dtype)
    return np.broadcast_to(x, (T, B) + shape)


class SpikeRecorder:
    """Records every LIF output (the spike trains) while active."""

    def __init__(self, monkeypatch):
        self.trains = []
        original = LIF.forward

        def forward(lif, x):
            s = original(lif, x)
            self.trains.append(s.copy())
            return s

        monkeypatch.setattr(LIF, "forward", forward)

    def run(self, model, x):
        """Forward with batch-norm/LIF fusion off (fused passes skip LIF.forward)."""
        self.trains = []
        for m in model.modules():
            if hasattr(m, "fuse"):
                m.fuse = False
        if isinstance(model, models.SpikingResNet):  # its forward always fuses the stem
            for _, m in model.named_children():
                x = m.forward(x)
            return x, self.trains
        return model.forward(x), self.trains


@pytest.fixture(scope="module")
def cifarnet():
    rng = np.random.default_rng(0)
    m = models.cifarnet_small(seed=0).astype(np.float64)
    return calibrate(m, direct(rng), rng)


@pytest.fixture(scope="module")
def resnet():
    rng = np.random.default_rng(1)
    m = models.spiking_resnet(depth=8, width=1, seed=0).astype(np.float64)
    return calibrate(m, direct(rng), rng)


def folded(conv_w, bn, conv_b=None):
    scale = bn.weight.data / np.sqrt(bn.running_var + bn.eps)
    b = np.zeros(len(scale)) if conv_b is None else conv_b
    return conv_w * scale.reshape(-1, 1, 1, 1), (b - bn.running_mean) * scale + bn.bias.data


def incoming(edges, node):
    return sorted(a for a, b in edges if b == node)


# ---------------------------------------------------------------- files read by nir
def test_cifarnet_nodes_parameters_edges(cifarnet, tmp_path):
    nir = pytest.importorskip("nir")
    path = export_nir(cifarnet, tmp_path / "c.nir")
    g = nir.read(path)  # type-checks every edge
    kinds = {k: type(v).__name__ for k, v in g.nodes.items()}
    assert kinds == {"input": "Input", "0": "Conv2d", "2": "LIF", "3": "Conv2d", "5": "LIF",
                     "6": "AvgPool2d", "7": "Conv2d", "9": "LIF", "10": "AvgPool2d",
                     "11": "Conv2d", "13": "LIF", "14": "AvgPool2d", "15": "Flatten",
                     "16": "Affine", "output": "Output"}
    chain = ["input", "0", "2", "3", "5", "6", "7", "9", "10", "11", "13", "14", "15", "16",
             "output"]
    assert sorted(g.edges) == sorted(itertools.pairwise(chain))
    conv, bn = cifarnet[3], cifarnet[4]
    w, b = folded(conv.weight.data, bn)
    np.testing.assert_allclose(g.nodes["3"].weight, w, rtol=1e-14)
    np.testing.assert_allclose(g.nodes["3"].bias, b, rtol=1e-14, atol=1e-15)
    assert g.nodes["3"].weight.dtype == np.float64
    assert list(g.nodes["3"].stride) == [1, 1] and list(g.nodes["3"].padding) == [1, 1]
    assert list(g.nodes["3"].input_shape) == [32, 32] and int(g.nodes["3"].groups) == 1
    assert g.metadata["folded_batch_norm"]["3"] == "4"  # not on the node: nir 1.0.4 refuses it
    lif = g.nodes["5"]
    assert lif.tau.shape == (64, 32, 32)
    want = {"tau": 2e-4, "r": 1.0, "v_leak": 0.0, "v_threshold": 1.0, "v_reset": 0.0}
    for field, value in want.items():
        assert np.all(getattr(lif, field) == value), field
    assert list(g.nodes["6"].kernel_size) == [2, 2] and list(g.nodes["6"].stride) == [2, 2]
    fl = g.nodes["15"]
    assert (int(fl.start_dim), int(fl.end_dim)) == (0, -1)
    assert list(fl.input_type["input"]) == [128, 4, 4] and list(fl.output_type["output"]) == [2048]
    np.testing.assert_array_equal(g.nodes["16"].weight, cifarnet[16].weight.data)
    np.testing.assert_array_equal(g.nodes["16"].bias, cifarnet[16].bias.data)
    assert list(g.nodes["input"].input_type["input"]) == [3, 32, 32]
    assert list(g.nodes["output"].output_type["output"]) == [10]
    meta = g.metadata
    assert meta["dt"] == 1e-4 and meta["threshold"] == ">=" and meta["reset_mode"] == "hard"
    assert meta["readout"] == "mean_over_time" and bool(meta["decay_input"]) is True
    assert meta["snnlite_version"] and nir.serialization.read_version(path) == "1.0.8"


def test_resnet_residual_edges(resnet, tmp_path):
    nir = pytest.importorskip("nir")
    g = nir.read(export_nir(resnet, tmp_path / "r.nir"))
    assert not [k for k in g.nodes if "bn" in k or k.endswith("downsample_1")]
    # identity shortcut: the block input (the stem LIF) feeds the second LIF directly
    assert incoming(g.edges, "layer1_0_sn2") == ["layer1_0_conv2", "sn1"]
    assert incoming(g.edges, "layer1_0_conv1") == ["sn1"]
    # projection shortcut: 1x1 conv (BN folded) from the previous block's output
    assert incoming(g.edges, "layer2_0_sn2") == ["layer2_0_conv2", "layer2_0_downsample_0"]
    assert incoming(g.edges, "layer2_0_downsample_0") == ["layer1_0_sn2"]
    ds = g.nodes["layer2_0_downsample_0"]
    assert ds.weight.shape == (32, 16, 1, 1) and list(ds.stride) == [2, 2]
    w, b = folded(resnet.layer2[0].downsample[0].weight.data, resnet.layer2[0].downsample[1])
    np.testing.assert_allclose(ds.weight, w, rtol=1e-14)
    np.testing.assert_allclose(ds.bias, b, rtol=1e-14, atol=1e-15)
    assert type(g.nodes["avgpool"]).__name__ == "AvgPool2d"
    assert list(g.nodes["output"].output_type["output"]) == [10]
    assert sum(type(n).__name__ == "LIF" for n in g.nodes.values()) == 7


def test_lif_mapping_dt_soft_reset_no_decay(tmp_path):
    nir = pytest.importorskip("nir")
    rng = np.random.default_rng(2)
    m = Sequential(Conv2d(3, 4, 3, 1, 1, rng=rng, dtype=np.float64),
                   LIF(tau=3.0, v_threshold=0.5, v_reset=None, decay_input=False),
                   Flatten(), Linear(4 * 8 * 8, 3, rng=rng, dtype=np.float64),
                   LIF(tau=1.5, v_reset=-0.25), TimeMean())
    path = export_nir(m, tmp_path / "s.nir", dt=0.5, input_shape=(3, 8, 8))
    g = nir.read(path)
    soft, hard = g.nodes["1"], g.nodes["4"]
    assert np.all(soft.tau == 1.5) and np.all(soft.r == 3.0) and np.all(soft.v_leak == 0)
    assert np.all(soft.v_threshold == 0.5) and soft.metadata["reset_mode"] == "soft"
    assert not soft.metadata["decay_input"]
    assert np.all(hard.tau == 0.75) and np.all(hard.r == 1.0)
    assert np.all(hard.v_leak == -0.25) and np.all(hard.v_reset == -0.25)
    assert g.metadata["reset_mode"] == "mixed" and g.metadata["decay_input"] == "mixed"
    assert g.metadata["dt"] == 0.5
    back = import_nir(path)
    lifs = [x for x in back.modules() if isinstance(x, LIF)]
    assert (lifs[0].tau, lifs[0].v_reset, lifs[0].decay_input) == (3.0, None, False)
    assert (lifs[1].tau, lifs[1].v_reset, lifs[1].decay_input) == (1.5, -0.25, True)
    x = direct(rng, (3, 8, 8)) * 3
    np.testing.assert_array_equal(back.forward(x), m.forward(x))
    # another dt rescales tau = tau_nir / dt, but R = tau_snnlite then no longer holds
    with pytest.raises(ValueError, match=r"node '1' \(LIF\): r = 3 is neither 1 "
                                         r"\(decay_input\) nor tau / dt = 6"):
        import_nir(path, dt=0.25)


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize("name", ["cifarnet", "resnet"])
def test_round_trip_identical_outputs(name, request, tmp_path, monkeypatch):
    model = request.getfixturevalue(name)
    back = import_nir(export_nir(model, tmp_path / "m.nir"))
    assert isinstance(back, Sequential if name == "cifarnet" else GraphModule)
    assert not [m for m in back.modules() if isinstance(m, BatchNorm2d)]
    assert back.dtype == np.float64 and not back.training
    rec = SpikeRecorder(monkeypatch)
    x = direct(np.random.default_rng(3))
    y0, s0 = rec.run(model, x)
    y1, s1 = rec.run(back, x)
    assert len(s0) == len(s1) == (4 if name == "cifarnet" else 7)
    for i, (a, b) in enumerate(zip(s0, s1)):
        assert 0 < a.mean() < 0.5, f"LIF {i} fires at rate {a.mean()}"
        np.testing.assert_array_equal(a, b, err_msg=f"LIF layer {i}")
    np.testing.assert_allclose(y1, y0, rtol=1e-12, atol=1e-12)


def test_reexport_of_imported_graph(resnet, tmp_path):
    first = tmp_path / "a.nir"
    back = import_nir(export_nir(resnet, first))
    second = read_nir(export_nir(back, tmp_path / "b.nir"))
    ref = read_nir(first)
    assert sorted(second["edges"]) == sorted(ref["edges"])
    assert {k: v["type"] for k, v in second["nodes"].items()} == \
        {k: v["type"] for k, v in ref["nodes"].items()}
    np.testing.assert_array_equal(second["nodes"]["layer2_0_conv1"]["weight"],
                                  ref["nodes"]["layer2_0_conv1"]["weight"])


def test_float32_model_keeps_float32(tmp_path):
    m = models.cifarnet_small(seed=0)
    path = export_nir(m.eval(), tmp_path / "f.nir")
    g = read_nir(path)
    assert g["nodes"]["0"]["weight"].dtype == np.float32
    assert import_nir(path).dtype == np.float32


def test_graph_module_backward_matches_hand_composition(rng):
    def layers(seed):
        r = np.random.default_rng(seed)
        return (Conv2d(2, 2, 3, 1, 1, rng=r, dtype=np.float64), LIF(),
                Conv2d(2, 2, 3, 1, 1, rng=r, dtype=np.float64), LIF())

    c1, l1, c2, l2 = layers(5)
    g = GraphModule({"c1": layers(5)[0], "l1": LIF(), "c2": layers(5)[2], "l2": LIF()},
                    {"c1": ["input"], "l1": ["c1"], "c2": ["l1"], "l2": ["c2", "input"]},
                    ["l2"], readout=TimeMean())
    x = rng.normal(0, 2, (T, B, 2, 5, 5))
    y = g.forward(x)
    ref = l2.forward(c2.forward(l1.forward(c1.forward(x))) + x).mean(0)
    np.testing.assert_array_equal(y, ref)
    dy = rng.normal(size=y.shape)
    dx = g.backward(dy)
    gs = l2.backward(np.broadcast_to(dy / T, (T,) + dy.shape))
    dref = c1.backward(l1.backward(c2.backward(gs))) + gs
    np.testing.assert_allclose(dx, dref, rtol=1e-12)
    np.testing.assert_allclose(g.layer("c1").weight.grad, c1.weight.grad, rtol=1e-12)
    assert list(g.state_dict()) == ["c1.weight", "c1.bias", "c2.weight", "c2.bias"]


# ---------------------------------------------------------------- export errors
class Custom(Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize("model, match", [
    (Sequential(Conv2d(3, 4, 3), MaxPool2d(2)), r"'1' \(MaxPool2d\): NIR has no max pooling"),
    (Sequential(Conv2d(3, 4, 3), LIF(), BatchNorm2d(4)),
     r"'2' \(BatchNorm2d\): batch norm must directly follow a Conv2d or Linear"),
    (Sequential(Conv2d(3, 4, 3), Custom()), r"'1' \(Custom\): no NIR equivalent"),
    (Sequential(Conv2d(4, 4, 3)), r"'0' \(Conv2d\): expected 4 input channels, got 3"),
    (Sequential(Flatten(), Linear(10, 2)), r"'1' \(Linear\): expected 10 input features"),
    (Sequential(Conv2d(3, 4, 3), TimeMean(), LIF()), "TimeMean must be the last layer"),
])
def test_export_errors_leave_no_file(tmp_path, model, match):
    out = tmp_path / "x.nir"
    with pytest.raises(ValueError, match=match):
        export_nir(model, out, input_shape=(3, 8, 8))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- import errors
@pytest.fixture(scope="module")
def small_file(tmp_path_factory):
    rng = np.random.default_rng(4)
    m = Sequential(Conv2d(3, 4, 3, 1, 1, rng=rng), BatchNorm2d(4), LIF(), AvgPool2d(2),
                   Flatten(), Linear(64, 3, rng=rng), TimeMean())
    return export_nir(m.eval(), tmp_path_factory.mktemp("nir") / "small.nir",
                      input_shape=(3, 8, 8))


def mutated(src, dst, edit):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        edit(f["node"])
    return dst


def replace(group, key, value):
    del group[key]
    if isinstance(value, str):
        group.create_dataset(key, data=value, dtype=h5py.string_dtype())
    else:
        group.create_dataset(key, data=value)


def set_edges(g, edges):
    del g["edges"]
    g.create_dataset("edges", data=np.array(edges, dtype=object), dtype=h5py.string_dtype())


EDGES = [("input", "0"), ("0", "2"), ("2", "3"), ("3", "4"), ("4", "5"), ("5", "output")]
IMPORT_ERRORS = {
    "r": (lambda g: replace(g["nodes/2"], "r", np.full((4, 8, 8), 0.5)),
          r"node '2' \(LIF\): r = 0.5 is neither 1 \(decay_input\) nor tau / dt = 2"),
    "v_leak": (lambda g: replace(g["nodes/2"], "v_leak", np.full((4, 8, 8), 0.3)),
               r"node '2' \(LIF\): v_leak = 0.3 differs from v_reset = 0.0"),
    "per_neuron": (lambda g: replace(g["nodes/2"], "tau", np.linspace(2, 3, 256).reshape(4, 8, 8)),
                   r"node '2' \(LIF\): tau differs between neurons"),
    "lif_shape": (lambda g: replace(g["nodes/2"], "tau", np.full((4, 4, 4), 2.0)),
                  r"node '2' \(LIF\): tau has shape \[4, 4, 4\], the incoming neurons \[4, 8, 8\]"),
    "tau": (lambda g: replace(g["nodes/2"], "tau", np.full((4, 8, 8), 0.5e-4)),
            r"node '2' \(LIF\): tau / dt = 0.5 must be > 1"),
    "unknown": (lambda g: replace(g["nodes/3"], "type", "Foo"),
                r"node '3' \(Foo\): unsupported node type"),
    "delay": (lambda g: replace(g["nodes/3"], "type", "Delay"),
              r"node '3' \(Delay\): unsupported node type \(supported: Input, Output, NIRGraph"),
    "conv_channels": (lambda g: replace(g["nodes/0"], "weight", np.zeros((4, 2, 3, 3), "f4")),
                      r"node '0' \(Conv2d\): expects input \[2, H, W\], gets \[3, 8, 8\]"),
    "affine": (lambda g: replace(g["nodes/5"], "weight", np.zeros((3, 60), "f4")),
               r"node '5' \(Affine\): shape mismatch: input declared \[60\].*carry \[64\]"),
    "output": (lambda g: replace(g["nodes/output"], "shape", np.array([7])),
               r"node 'output' \(Output\): shape mismatch: output declared \[7\]"),
    "dilation": (lambda g: replace(g["nodes/0"], "dilation", np.array([2, 2])),
                 r"node '0' \(Conv2d\): only dilation 1 and groups 1"),
    "pool": (lambda g: replace(g["nodes/3"], "stride", np.array([1, 1])),
             r"node '3' \(AvgPool2d\): only stride = kernel_size"),
    "missing_field": (lambda g: g["nodes/0"].__delitem__("bias"),
                      r"node '0' \(Conv2d\): missing field 'bias'"),
    "edge": (lambda g: set_edges(g, [*EDGES, ("2", "ghost")]),
             r"edge \('2', 'ghost'\) names a missing node 'ghost'"),
    "cycle": (lambda g: set_edges(g, [*EDGES, ("3", "2")]),
              r"\['2', '3'\] form a cycle that is not a recurrent neuron layer"),
    "dead_end": (lambda g: set_edges(g, [*EDGES[:-1], ("4", "output")]),
                 r"nodes \['5'\] do not lead to the Output node"),
    "not_graph": (lambda g: replace(g, "type", "LIF"), r"the root node is 'LIF'"),
    "huge_input": (lambda g: replace(g["nodes/input"], "shape", np.array([3, 10 ** 6, 10 ** 6])),
                   r"node 'input' \(Input\): shape \[3, 1000000, 1000000\] is larger than"),
}


@pytest.mark.parametrize("case", list(IMPORT_ERRORS))
def test_import_errors_name_the_node(small_file, tmp_path, case):
    edit, match = IMPORT_ERRORS[case]
    path = mutated(small_file, tmp_path / f"{case}.nir", edit)
    with pytest.raises(ValueError, match=match) as e:
        import_nir(path)
    assert f"{case}.nir" in str(e.value)


def test_import_small_file_and_sum_pool(small_file, tmp_path):
    m = import_nir(small_file)
    assert [type(x).__name__ for x in m.layers()] == \
        ["Conv2d", "LIF", "AvgPool2d", "Flatten", "Linear", "TimeMean"]
    path = mutated(small_file, tmp_path / "sum.nir",
                   lambda g: replace(g["nodes/3"], "type", "SumPool2d"))
    x = direct(np.random.default_rng(5), (3, 8, 8), np.float32)
    a, b = m[:3], import_nir(path).layers()[:3]
    ya, yb = Sequential(*a).forward(x), Sequential(*b).forward(x)
    np.testing.assert_allclose(yb, ya * 4, rtol=1e-6)


def test_truncated_and_missing_files(small_file, tmp_path):
    data = small_file.read_bytes()
    cut = tmp_path / "cut.nir"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut.nir: unreadable NIR file \(truncated or corrupt"):
        import_nir(cut)
    with pytest.raises(FileNotFoundError, match="nope.nir"):
        import_nir(tmp_path / "nope.nir")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(ValueError, match="other.h5: not a NIR file"):
        import_nir(tmp_path / "other.h5")


# ---------------------------------------------------------------- command line, no deps
def test_cli_export(tmp_path, capsys):
    m = models.cifarnet_small(seed=3)
    ck = tmp_path / "ck.h5"
    save_checkpoint(ck, m.state_dict(), {"model": "cifarnet_small", "T": 4}, {})
    out = tmp_path / "m.nir"
    assert cli.main(["export", str(ck), str(out), "--format", "nir", "--dt", "0.5"]) == 0
    assert "m.nir" in capsys.readouterr().out
    g = read_nir(out)
    assert g["metadata"]["dt"] == 0.5 and np.all(g["nodes"]["2"]["tau"] == 1.0)
    assert [x.tau for x in import_nir(out).modules() if isinstance(x, LIF)] == [2.0] * 4
    assert [x.tau for x in import_nir(out, dt=0.25).modules() if isinstance(x, LIF)] == [4.0] * 4
    np.testing.assert_array_equal(g["nodes"]["16"]["weight"], m[16].weight.data)
    assert cli.main(["export", str(tmp_path / "none.h5"), str(out)]) == 2
    assert "none.h5" in capsys.readouterr().err


def test_no_nir_or_torch_needed(small_file, tmp_path):
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'nir'):\n"
            "            raise ImportError(name + ' must not be imported')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from snnlite.io.nir import import_nir, export_nir\n"
            "import snnlite.io.torch_import, snnlite.cli.import_torch, snnlite.cli.export\n"
            f"m = import_nir({str(small_file)!r})\n"
            f"export_nir(m, {str(tmp_path / 'again.nir')!r}, input_shape=(3, 8, 8))\n")
    env = {**os.environ, "NUMBA_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
