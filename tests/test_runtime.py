"""The numpy-only runtime: importable and runnable with numba and h5py blocked (in a
subprocess); the same spikes on every layer and step, the same integer readout and logits as
the integer event engine on handmade nets and the quantized teacher; the same inputs as
snnlite.encoding; a bundle of another version or with damaged arrays is a clear error."""
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO
from test_qengine import FORMATS, qnet_for

from snnlite import cli, data, encoding, runtime
from snnlite.event import qengine
from snnlite.io.bundle import write_bundle

MODEL = {"name": "test", "num_classes": 3, "dataset": "none", "T": 3, "encoding": "ttfs",
         "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "label_names": None}


def _bundle(tmp_path, qnet, name="b.npz"):
    return runtime.load_bundle(write_bundle(tmp_path / name, qnet, MODEL,
                                            {"path": "x.h5", "sha256": "0" * 64}))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("name", ["strided", "residual", "if_sumpool"])
@pytest.mark.parametrize("kind", ["events", "dense"])
def test_runtime_equals_the_integer_engine(tmp_path, name, fmt, kind):
    qnet, x = qnet_for(name, FORMATS[fmt], kind)
    eng = qengine.run(qnet, x, record=True)
    rt = runtime.run(_bundle(tmp_path, qnet), x, record=True)
    assert set(rt.spikes) == set(eng.spikes)
    for k, s in rt.spikes.items():
        np.testing.assert_array_equal(s, eng.spikes[k], err_msg=k)
        np.testing.assert_array_equal(rt.saturated.get(k, 0), eng.saturated.get(k, 0))
    np.testing.assert_array_equal(rt.acc, eng.acc)
    np.testing.assert_array_equal(rt.logits, eng.logits)


@pytest.mark.parametrize("enc", ["direct", "ttfs", "latency"])
def test_prepare_gives_snnlites_model_input(tmp_path, enc):
    qnet, _ = qnet_for("strided", FORMATS["w8s16"], "events")
    b = _bundle(tmp_path, qnet)
    imgs = np.random.default_rng(0).integers(0, 256, (4, 3, 6, 6), dtype=np.uint8)
    x = imgs.astype(np.float32) / np.float32(255)
    ref = encoding.model_input(x, enc, 5, np.array(MODEL["mean"], np.float32),
                               np.array(MODEL["std"], np.float32))
    got = runtime.prepare(b, imgs, enc, 5)
    assert got.dtype == ref.dtype
    np.testing.assert_array_equal(got, ref)


@pytest.fixture(scope="module")
def teacher_bundle(tmp_path_factory):
    from conftest import shared_data_dir
    mini = shared_data_dir() / "cifar10-mini.npz"
    teacher = REPO / "examples" / "runs" / "teacher-cifarnet_small-T4" / "last.h5"
    if not mini.exists() or not teacher.exists():
        pytest.skip("needs the mini subset and the committed teacher")
    d = tmp_path_factory.mktemp("bundle")
    assert cli.main(["quantize", str(teacher), "--bits", "8", "--data", str(mini),
                     "--calibration", "32", "--out", str(d / "q8.h5")]) == 0
    assert cli.main(["export", str(d / "q8.h5"), "--format", "bundle", str(d / "q8.npz")]) == 0
    return d / "q8.h5", d / "q8.npz", mini


def test_teacher_bundle_runs_without_numba_or_h5py(teacher_bundle):
    """In a fresh interpreter: with numba and h5py unimportable, load the bundle, encode
    test images and run them; neither module gets imported. The logits equal the
    integer engine's on the same images."""
    q8, npz, mini = teacher_bundle
    code = (
        "import sys, json\n"
        "sys.modules['numba'] = None; sys.modules['h5py'] = None  # importing them fails\n"
        "import numpy as np\n"
        "from snnlite import runtime\n"
        f"b = runtime.load_bundle({str(npz)!r})\n"
        f"d = np.load({str(mini)!r})\n"
        "x = runtime.prepare(b, d['x_test'][:6].transpose(0, 3, 1, 2))\n"
        "r = runtime.run(b, x)\n"
        "loaded = [m for m in ('numba', 'h5py', 'llvmlite', 'scipy') if sys.modules.get(m)]\n"
        "print(json.dumps({'acc': r.acc.tolist(), 'loaded': loaded}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["loaded"] == []
    from snnlite.quant.checkpoint import load_quantized
    qnet, _, _ = load_quantized(q8)
    train, test = data.load_mini(mini)
    x = encoding.model_input(test.images[:6].astype(np.float32) / np.float32(255), "direct",
                             4, train.mean, train.std)
    np.testing.assert_array_equal(np.array(res["acc"]), qengine.run(qnet, x).acc)


def test_bad_bundles_are_clear_errors(tmp_path, teacher_bundle, capsys):
    q8, npz, mini = teacher_bundle
    with np.load(npz) as z:
        files = {k: z[k] for k in z.files}
    doc = json.loads(str(files["__bundle__"]))

    def save(name, doc=doc, **changes):
        f = dict(files, **changes)
        f["__bundle__"] = np.array(json.dumps(doc))
        np.savez(tmp_path / name, **f)
        return tmp_path / name

    with pytest.raises(ValueError, match="bundle format version 2.*this runtime reads "
                                         "version 1"):
        runtime.load_bundle(save("v2.npz", dict(doc, version=2)))
    with pytest.raises(ValueError, match="not a snnlite-bundle"):
        runtime.load_bundle(save("other.npz", dict(doc, format="something")))
    w = files["p1.q0.w"].astype(np.int16)
    w[0, 0, 0, 0] = 300  # beyond 8-bit weights
    with pytest.raises(ValueError, match=r"'p1.q0.w' holds values outside \[-127, 127\]"):
        runtime.load_bundle(save("range.npz", **{"p1.q0.w": w}))
    with pytest.raises(ValueError, match="'p0.bias' has shape"):
        runtime.load_bundle(save("shape.npz", **{"p0.bias": files["p0.bias"][:3]}))
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="no '__bundle__' description"):
        runtime.load_bundle(tmp_path / "plain.npz")
    teacher = REPO / "examples" / "runs" / "teacher-cifarnet_small-T4" / "last.h5"
    assert cli.main(["export", str(teacher), str(tmp_path / "f.npz"), "--format",
                     "bundle"]) == 2
    assert "a float checkpoint" in capsys.readouterr().err
    b = runtime.load_bundle(npz)
    with pytest.raises(ValueError, match="expected shape"):
        runtime.run(b, np.zeros((2, 1, 3, 8, 8)))
