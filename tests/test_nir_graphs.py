"""NIR graphs as other tools publish them, built with the ``nir`` package's own API (a test
extra): IF conv nets with sum pooling (sinabs, snnTorch), LIF graphs without ``v_reset``,
CubaLIF networks with recurrent edges and nested subgraphs (the braille networks), Scale and
Threshold. Each is imported and compared spike for spike with a plain-NumPy simulation of
NIR's semantics (tests/nir_reference.py); snnlite's own exports of the new layers round
trip and simulate the same; files that are not HDF5, or that declare more than they hold,
are refused with clear messages."""
import os
import pickle
import subprocess
import sys
import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest
from nir_reference import simulate

from snnlite.io import nir as snir
from snnlite.io.nir import export_nir, import_nir, read_nir
from snnlite.nn import (
    IF,
    LIF,
    Conv2d,
    CubaLIF,
    Flatten,
    Linear,
    Recurrent,
    Sequential,
    SumPool2d,
    TimeMean,
)

nir = pytest.importorskip("nir")
T, B = 12, 3


def spikes_in(rng, shape, p=0.3):
    return (rng.random((T, B) + shape) < p).astype(np.float64)


def write(graph, path):
    nir.write(path, graph)
    return path


def run(model, x):
    return model.forward(x.astype(model.dtype))


# ---------------------------------------------------------------- IF conv net, sum pooling
def if_cnn(rng):
    """The sinabs / snnTorch N-MNIST CNN in miniature: conv (stride 2, no bias), IF,
    conv, IF, SumPool2d, Flatten, Linear (no bias), IF; IF nodes with r = 1, no v_reset."""
    def conv(o, c, k, s, p, hw):
        return nir.Conv2d(input_shape=hw, weight=rng.normal(0, 0.6, (o, c, k, k)),
                          stride=s, padding=p, dilation=1, groups=1, bias=np.zeros(o))

    def iff(shape):
        return nir.IF(r=np.ones(shape), v_threshold=np.ones(shape))

    nodes = {"input": nir.Input(input_type=np.array([2, 14, 14])),
             "0": conv(4, 2, 5, 2, 1, (14, 14)), "1": iff((4, 6, 6)),
             "2": conv(4, 4, 3, 1, 1, (6, 6)), "3": iff((4, 6, 6)),
             "4": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                padding=np.array([0, 0])),
             "5": nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0,
                              end_dim=-1),
             "6": nir.Linear(weight=rng.normal(0, 0.8, (5, 36))), "7": iff((5,)),
             "output": nir.Output(output_type=np.array([5]))}
    names = list(nodes)
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)
    return g


def test_if_conv_net_with_sum_pooling(rng, tmp_path):
    g = if_cnn(rng)
    path = write(g, tmp_path / "cnn.nir")
    with h5py.File(path, "r+") as f:  # as nir 1.0.4 and sinabs write it: no v_reset
        for n in ("1", "3", "7"):
            del f[f"node/nodes/{n}/v_reset"]
    with pytest.raises(ValueError, match=r"records no time step .* pass import_nir\(path, "
                                         r"dt=\.\.\.\).*imply dt=1 \(IF writes r = 1/dt"):
        import_nir(path)
    m = import_nir(path, dt=1.0)
    kinds = [type(x).__name__ for x in m.layers()]
    assert kinds == ["Conv2d", "IF", "Conv2d", "IF", "SumPool2d", "Flatten", "Linear", "IF"]
    x = spikes_in(rng, (2, 14, 14))
    ref, trace = simulate(g, x, dt=1.0)
    y = run(m, x)
    assert 0.02 < trace["3"].mean() < 0.9 and y.any()
    np.testing.assert_array_equal(y, ref)
    with pytest.raises(ValueError, match=r"node '1' \(IF\): r \* dt = 0.0001, not 1.*needs "
                                         r"dt = 1 / r = 1"):
        import_nir(path, dt=1e-4)
    # sinabs's IAF subtracts the threshold: soft_reset reads every neuron that way
    soft = import_nir(path, dt=1.0, soft_reset=True)
    assert all(x.v_reset is None for x in soft.layers() if isinstance(x, IF))
    ref_soft, _ = simulate(g, x, dt=1.0, soft={"1", "3", "7"})
    y_soft = run(soft, x)
    np.testing.assert_array_equal(y_soft, ref_soft)
    assert not np.array_equal(y_soft, y)


# ---------------------------------------------------------------- LIF without v_reset
def test_lif_graph_without_v_reset_takes_nir_default(rng, tmp_path):
    """Norse / Rockpool / snnTorch LIF examples: v_reset is optional (0), dt from the caller."""
    g = nir.NIRGraph.from_list(nir.Affine(weight=rng.normal(0, 1, (6, 4)), bias=np.zeros(6)),
                               nir.LIF(tau=np.full(6, 2e-3), r=np.ones(6),
                                       v_leak=np.zeros(6), v_threshold=np.full(6, 0.5)))
    path = write(g, tmp_path / "lif.nir")
    with h5py.File(path, "r+") as f:
        lif = next(k for k in f["node/nodes"] if k.startswith("lif"))
        del f[f"node/nodes/{lif}/v_reset"]
    with pytest.raises(ValueError, match=r"records no time step.*usual values: 1e-4 .*"
                                         r"SpikingJelly or snnTorch"):
        import_nir(path)
    m = import_nir(path, dt=1e-3)
    lifm = m.layers()[1]
    assert (type(lifm), lifm.tau, lifm.v_reset, lifm.decay_input) == (LIF, 2.0, 0.0, True)
    x = np.random.default_rng(1).normal(0.5, 1, (T, B, 4))
    np.testing.assert_array_equal(run(m, x), simulate(g, x, dt=1e-3)[0])


# ---------------------------------------------------------------- CubaLIF, recurrence
def braille(rng, nested, bias_rec=True, dt=1e-4):
    """The braille network's shape (snnTorch's RSynaptic export): Affine -> a CubaLIF with
    a recurrent Affine (a nested subgraph ``lif1`` or flat edges) -> Affine -> CubaLIF.
    Parameters in snnTorch's convention: w_in = tau_syn / dt, r = tau_mem / dt."""
    H, O = 10, 4

    def cuba(n, a, b):
        tau_syn, tau_mem = dt / (1 - a), dt / (1 - b)
        return nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem),
                           r=np.full(n, tau_mem / dt), v_leak=np.zeros(n),
                           v_threshold=np.ones(n), w_in=np.full(n, tau_syn / dt))

    rec = nir.Affine(weight=rng.normal(0, 0.5, (H, H)), bias=rng.normal(0, 0.2, H)) \
        if bias_rec else nir.Linear(weight=rng.normal(0, 0.5, (H, H)))
    fc1 = nir.Affine(weight=rng.normal(0.2, 0.6, (H, 6)), bias=np.zeros(H))
    fc2 = nir.Affine(weight=rng.normal(0.2, 0.6, (O, H)), bias=np.zeros(O))
    lif1, lif2 = cuba(H, 0.5, 0.85), cuba(O, 0.2, 0.95)
    top = {"input": nir.Input(input_type=np.array([6])), "fc1": fc1, "fc2": fc2,
           "lif2": lif2, "output": nir.Output(output_type=np.array([O]))}
    edges = [("input", "fc1"), ("fc2", "lif2"), ("lif2", "output")]
    flat = nir.NIRGraph(nodes={**top, "lif1.lif": lif1, "lif1.w_rec": rec},
                        edges=edges + [("fc1", "lif1.lif"), ("lif1.lif", "lif1.w_rec"),
                                       ("lif1.w_rec", "lif1.lif"), ("lif1.lif", "fc2")],
                        type_check=False)
    if not nested:
        return flat, flat
    # snnTorch's export names the inner nodes "input", "lif", ...; the paper's files
    # "lif1.input", "lif1.lif", ...: both flatten to "lif1.lif"
    pre = "lif1." if nested == "prefixed" else ""
    sub = nir.NIRGraph(nodes={f"{pre}input": nir.Input(input_type=np.array([H])),
                              f"{pre}lif": lif1, f"{pre}w_rec": rec,
                              f"{pre}output": nir.Output(output_type=np.array([H]))},
                       edges=[(f"{pre}input", f"{pre}lif"), (f"{pre}lif", f"{pre}w_rec"),
                              (f"{pre}w_rec", f"{pre}lif"), (f"{pre}lif", f"{pre}output")],
                       type_check=False)
    g = nir.NIRGraph(nodes={**top, "lif1": sub},
                     edges=edges + [("fc1", "lif1"), ("lif1", "fc2")], type_check=False)
    return g, flat


@pytest.mark.parametrize("nested", ["prefixed", "plain", False])
@pytest.mark.parametrize("bias_rec", [True, False])
def test_braille_cuba_recurrent_nested(rng, tmp_path, nested, bias_rec):
    g, flat = braille(rng, nested, bias_rec)
    path = write(g, tmp_path / "braille.nir")
    with pytest.raises(ValueError, match=r"imply dt=0.0001"):
        import_nir(path)
    m = import_nir(path, dt=1e-4)
    cell = m[1]  # a chain: a Sequential
    assert isinstance(cell, Recurrent) and isinstance(cell.neuron, CubaLIF)
    assert (cell.neuron.tau_syn, cell.neuron.tau_mem, cell.neuron.w_in, cell.neuron.r) == \
        (2.0, pytest.approx(1 / 0.15), 1.0, 1.0)
    assert (cell.recurrent.bias is not None) == bias_rec
    x = spikes_in(rng, (6,), 0.5)
    ref, trace = simulate(flat, x, dt=1e-4)
    y = run(m, x)
    assert 0.05 < trace["lif1.lif"].mean() < 0.9 and y.any()
    np.testing.assert_array_equal(y, ref)
    if nested:  # the same network written flat imports the same
        np.testing.assert_array_equal(run(import_nir(write(flat, tmp_path / "f.nir"),
                                                     dt=1e-4), x), y)


def test_cycle_through_other_nodes_is_refused(rng, tmp_path):
    g, _ = braille(rng, nested=False)
    g.edges.append(("lif2", "fc1"))  # a second neuron in the loop
    with pytest.raises(ValueError, match=r"form a cycle that is not a recurrent neuron layer"):
        import_nir(write(g, tmp_path / "bad.nir"), dt=1e-4)


# ---------------------------------------------------------------- Scale, Threshold
def test_scale_and_threshold_nodes(rng, tmp_path):
    g = nir.NIRGraph.from_list(nir.Affine(weight=rng.normal(0, 1, (5, 3)), bias=np.zeros(5)),
                               nir.Scale(scale=rng.uniform(0.5, 2, 5)),
                               nir.Threshold(threshold=np.full(5, 0.3)))
    m = import_nir(write(g, tmp_path / "st.nir"))  # no neuron: no dt needed
    x = rng.normal(0, 1, (T, B, 3))
    np.testing.assert_array_equal(run(m, x), simulate(g, x, dt=1.0)[0])
    assert [type(v).__name__ for v in m.layers()] == ["Linear", "Scale", "Threshold"]


# ---------------------------------------------------------------- round trips
def snnlite_net(rng, v_reset=-0.2):
    """Every new kind: IF behind a conv, sum pooling, a recurrent CubaLIF, CubaLIF, IF."""
    d = np.float64
    return Sequential(Conv2d(2, 3, 3, 1, 1, rng=rng, dtype=d), IF(v_threshold=0.8),
                      SumPool2d(2), Flatten(), Linear(3 * 16, 10, rng=rng, dtype=d),
                      Recurrent(CubaLIF(3.0, 4.0, v_threshold=0.7),
                                Linear(10, 10, rng=rng, dtype=d)),
                      Linear(10, 6, rng=rng, dtype=d), CubaLIF(2.0, 5.0, v_reset=None),
                      Linear(6, 4, rng=rng, dtype=d), IF(v_reset=v_reset), TimeMean()).eval()


def test_round_trip_and_nir_semantics_of_new_layers(rng, tmp_path):
    m = snnlite_net(rng)
    m[4].weight.data *= 2
    path = export_nir(m, tmp_path / "m.nir", input_shape=(2, 8, 8))
    g = nir.read(path)
    assert {type(v).__name__ for v in g.nodes.values()} >= {"IF", "CubaLIF", "SumPool2d"}
    assert ("5", "5_recurrent") in g.edges and ("5_recurrent", "5") in g.edges
    assert np.all(g.nodes["1"].r == 1e4) and g.metadata["dt"] == 1e-4
    back = import_nir(path)
    assert isinstance(back[5], Recurrent) and back[7].v_reset is None
    x = spikes_in(rng, (2, 8, 8), 0.4)
    y = m.forward(x)
    np.testing.assert_array_equal(back.forward(x), y)
    ref, trace = simulate(g, x, dt=1e-4, soft={"7"})  # node 7 is marked soft in metadata
    assert 0.02 < trace["5"].mean() < 0.9
    np.testing.assert_allclose(ref.mean(0), y, rtol=1e-12)


def test_readable_by_nir_1_0_4(tmp_path):
    """nir 1.0.4 (the newest sinabs allows) reads snnlite's exports: no node metadata on
    Conv2d, no v_reset field where it is 0 (a nonzero v_reset has no field there). Runs
    where SNNLITE_NIR104_PYTHON names a Python with nir==1.0.4."""
    py = os.environ.get("SNNLITE_NIR104_PYTHON")
    if not py:
        pytest.skip("set SNNLITE_NIR104_PYTHON to a Python with nir==1.0.4")
    from snnlite import models
    rng = np.random.default_rng(0)
    paths = [export_nir(models.cifarnet_small(seed=0).eval(), tmp_path / "c.nir"),
             export_nir(snnlite_net(rng, 0.0), tmp_path / "n.nir", input_shape=(2, 8, 8))]
    code = ("import sys, nir\nassert nir.__version__ == '1.0.4' if hasattr(nir, '__version__')"
            " else True\nfor p in sys.argv[1:]:\n    g = nir.read(p)\n    print(len(g.nodes))")
    out = subprocess.run([py, "-c", code, *map(str, paths)], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["15", "13"]


# ---------------------------------------------------------------- files that are not NIR
def test_torch_zip_and_other_files_are_named(tmp_path):
    z = tmp_path / "graph.pt"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
    with pytest.raises(ValueError, match=r"graph.pt: is a zip archive \(a PyTorch file saved "
                                         r"with torch.save\?\), not a NIR file.*nir.write"):
        import_nir(z)
    p = tmp_path / "graph.pkl"
    p.write_bytes(pickle.dumps({"nodes": {}}))
    with pytest.raises(ValueError, match=r"graph.pkl: is a Python pickle"):
        read_nir(p)
    t = tmp_path / "notes.nir"
    t.write_text("hello")
    with pytest.raises(ValueError, match=r"notes.nir: is not an HDF5 file \(it starts with "
                                         r"b'hello'\)"):
        read_nir(t)


# ---------------------------------------------------------------- bounded reads
def nir_skeleton(path, make_weight):
    with h5py.File(path, "w") as f:
        f.create_dataset("version", data="1.0.8", dtype=h5py.string_dtype())
        g = f.create_group("node")
        g.create_dataset("type", data="NIRGraph", dtype=h5py.string_dtype())
        n = g.create_group("nodes/fc")
        n.create_dataset("type", data="Linear", dtype=h5py.string_dtype())
        make_weight(n)
        g.create_dataset("edges", data=np.array([["input", "fc"]], dtype=object),
                         dtype=h5py.string_dtype())
    return path


def test_sparse_dataset_is_refused_before_allocating(tmp_path):
    """A small file declaring a 16384 x 16384 float32 weight it never wrote (1 GiB)."""
    path = nir_skeleton(tmp_path / "sparse.nir", lambda n: n.create_dataset(
        "weight", shape=(16384, 16384), dtype="f4", chunks=(256, 256)))
    assert path.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"sparse.nir: NIR dataset '/node/nodes/fc/weight' "
                                             r"declares shape \(16384, 16384\) \(1,073,741,824 "
                                             r"bytes\) but the file stores 0 bytes"):
            read_nir(path)
        assert tracemalloc.get_traced_memory()[1] < 50 << 20
    finally:
        tracemalloc.stop()


def test_tensor_and_total_caps(tmp_path, monkeypatch):
    monkeypatch.setattr(snir.h5, "MAX_TENSOR_BYTES", 4000)
    path = nir_skeleton(tmp_path / "big.nir",
                        lambda n: n.create_dataset("weight", data=np.ones((30, 30))))
    with pytest.raises(ValueError, match=r"declares shape \(30, 30\) \(7,200 bytes\), over the "
                                         r"4,000-byte cap per tensor"):
        read_nir(path)
    monkeypatch.setattr(snir.h5, "MAX_TENSOR_BYTES", 1 << 30)
    monkeypatch.setattr(snir.h5, "MAX_TOTAL_BYTES", 5000)
    with pytest.raises(ValueError, match=r"declare more than 5,000 bytes in all"):
        read_nir(path)


def test_compressed_data_within_the_expansion_bound_reads(tmp_path):
    path = nir_skeleton(tmp_path / "z.nir", lambda n: n.create_dataset(
        "weight", data=np.zeros((512, 512)), compression="gzip", compression_opts=9))
    assert read_nir(path)["nodes"]["fc"]["weight"].shape == (512, 512)


def test_cli_import_needs_no_nir_for_new_layers(tmp_path):
    """Export and import of the new layers with numpy + h5py only."""
    rng = np.random.default_rng(0)
    out = tmp_path / "n.nir"
    export_nir(snnlite_net(rng), out, input_shape=(2, 8, 8))
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('torch', 'nir'):\n"
            "            raise ImportError(name)\n"
            "sys.meta_path.insert(0, Block())\n"
            "from snnlite.io.nir import import_nir\n"
            f"m = import_nir({str(out)!r})\n"
            "print(type(m[5]).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "Recurrent"


def test_flatten_subgraph_with_a_pass_through():
    """A subgraph whose Input also reaches its Output directly (a residual inside): the
    outer edges join across it."""
    from snnlite.io.nir.graphs import flatten
    sub = {"type": "NIRGraph", "nodes": {"i": {"type": "Input"}, "a": {"type": "Affine"},
                                         "o": {"type": "Output"}},
           "edges": [("i", "a"), ("a", "o"), ("i", "o")]}
    nodes = {"input": {"type": "Input"}, "g": sub, "output": {"type": "Output"}}
    got_nodes, got = flatten(nodes, [("input", "g"), ("g", "output")], "f.nir")
    assert sorted(got_nodes) == ["g.a", "input", "output"]
    assert sorted(got) == [("g.a", "output"), ("input", "g.a"), ("input", "output")]


def test_fuzzed_files_fail_with_one_clear_error(tmp_path):
    """Random byte changes to a NIR file: it loads, or import_nir raises a ValueError that
    names the file; no other exception escapes (the fuzz found dangling links, corrupt
    datatypes and undecodable strings)."""
    rng = np.random.default_rng(7)
    m = Sequential(Conv2d(2, 3, 3, 1, 1, rng=rng), LIF(), Flatten(), Linear(3 * 16, 4, rng=rng),
                   Recurrent(CubaLIF(2.0, 3.0), Linear(4, 4, rng=rng)), TimeMean())
    src = export_nir(m.eval(), tmp_path / "a.nir", input_shape=(2, 4, 4)).read_bytes()
    bad = tmp_path / "fuzz.nir"
    refused = 0
    for _ in range(60):
        b = bytearray(src)
        for i in rng.integers(0, len(b), rng.integers(1, 8)):
            b[i] = rng.integers(0, 256)
        bad.write_bytes(bytes(b))
        try:
            import_nir(bad)
        except ValueError as e:
            assert str(e).startswith(f"{bad}: "), e
            refused += 1
    assert refused > 15
