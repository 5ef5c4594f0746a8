"""End to end on the mini subset, from the committed teacher checkpoint: ``snnlite
quantize`` writes a quantized checkpoint (formats, steps, the source's SHA-256) that
``snnlite eval`` runs through the integer engine; targets set or refuse formats; bad input
is a one-line error; ``snnlite train --quantize`` finetunes resumably (an interrupted run
ends with the weights of an uninterrupted one) and quantizing its checkpoint gives exactly
the integers it trained through."""
import json

import numpy as np
import pytest
from conftest import REPO, shared_data_dir

from snnlite import cli, data
from snnlite.io.checkpoint import load_checkpoint, read_config
from snnlite.io.config import TrainConfig
from snnlite.quant import QFormat, quantize
from snnlite.quant.checkpoint import is_quantized, load_quantized, sha256_file
from snnlite.quant.evaluate import evaluate_quantized
from snnlite.quant.qat import QATModel
from snnlite.train import Trainer, subset

TEACHER = REPO / "examples" / "runs" / "teacher-cifarnet_small-T4" / "last.h5"


@pytest.fixture(scope="module")
def mini():
    path = shared_data_dir() / "cifar10-mini.npz"
    if not path.exists():
        pytest.skip(f"{path} not found (set SNNLITE_DATA)")
    if not TEACHER.exists():
        pytest.skip(f"{TEACHER} not found")
    return path


def _cli(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def q8(mini, tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "q8.h5"
    assert cli.main(["quantize", str(TEACHER), "--bits", "8", "--data", str(mini),
                     "--calibration", "48", "--out", str(out)]) == 0
    return out


def test_quantize_writes_an_integer_checkpoint(q8, mini):
    assert is_quantized(q8) and not is_quantized(TEACHER)
    qnet, cfg, rec = load_quantized(q8)
    assert rec["source"]["sha256"] == sha256_file(TEACHER)
    assert (rec["weight_bits"], rec["state_bits"], rec["rounding"], rec["acc_bits"]) == \
        (8, 16, "half_even", 32)
    assert rec["input"]["kind"] == "dense" and rec["input"]["step"] == qnet.input_step
    assert rec["calibration"]["images"] == 48 and rec["calibration"]["encoding"] == "direct"
    assert cfg.model == "cifarnet_small" and cfg.T == 4
    # the same as quantizing in Python, and the float weights are the source's
    from snnlite.io.checkpoint import load_model
    model, _ = load_model(TEACHER)
    train, _ = data.load_mini(mini)
    ref, _ = quantize(model, QFormat(), train.images[:48] / np.float32(255), train.mean,
                      train.std, "direct", 4)
    for a, b in zip(qnet.populations, ref.populations):
        for qa, qb in zip(a.projections, b.projections):
            np.testing.assert_array_equal(qa.weight, qb.weight)
        if a.step is not None:
            np.testing.assert_array_equal(a.step, b.step)
    src, dst = load_checkpoint(TEACHER)["model"], load_checkpoint(q8)["model"]
    assert all(np.array_equal(src[k], dst[k]) for k in src)


def test_eval_runs_the_integer_engine(q8, mini, capsys):
    code, out, err = _cli(capsys, "eval", q8, "--data", mini, "--limit", 40, "--format", "json",
                          "--no-progress")
    assert code == 0, err
    res = json.loads(out)["results"]["direct"]
    qnet, cfg, _ = load_quantized(q8)
    _, test = data.load_mini(mini)
    ref = evaluate_quantized(qnet, subset(test, 40), 4, "direct")
    assert res["integer"] is True and res["accuracy"] == ref["acc"] and res["images"] == 40
    assert ref["acc"] > 0.5  # the teacher keeps its accuracy at 8/16 bits


def test_targets_set_or_refuse_the_formats(mini, tmp_path, capsys):
    out = tmp_path / "loihi.h5"
    code, text, err = _cli(capsys, "quantize", TEACHER, "--target", "loihi", "--data", mini,
                           "--calibration", 16, "--out", out)
    assert code == 0, err
    rec = read_config(out)["quant"]
    assert (rec["weight_bits"], rec["state_bits"], rec["leak"]) == (8, 24, "multiply")
    assert "target loihi: formats fit" in text
    code, _, err = _cli(capsys, "quantize", TEACHER, "--target", "loihi", "--bits", 16,
                        "--data", mini, "--out", tmp_path / "x.h5")
    assert code == 2 and "target loihi holds at most 8-bit weights" in err
    code, _, err = _cli(capsys, "quantize", TEACHER, "--target", "speck", "--data", mini,
                        "--calibration", 8, "--out", tmp_path / "y.h5")
    assert code == 2 and "speck" in err and len(err.strip().splitlines()) == 1
    code, _, err = _cli(capsys, "quantize", TEACHER, "--target", "no_such_chip", "--data",
                        mini, "--out", tmp_path / "z.h5")
    assert code == 2 and "no_such_chip" in err
    assert not (tmp_path / "x.h5").exists() and not (tmp_path / "y.h5").exists()


def test_bad_input_is_a_clear_error(q8, mini, tmp_path, capsys):
    code, _, err = _cli(capsys, "quantize", q8, "--data", mini, "--out", tmp_path / "qq.h5")
    assert code == 2 and "already a quantized checkpoint" in err
    code, _, err = _cli(capsys, "quantize", TEACHER, "--bits", 1, "--data", mini, "--out",
                        tmp_path / "b.h5")
    assert code == 2 and "weight_bits" in err
    code, _, err = _cli(capsys, "eval", q8, "--data", mini, "--limit", 4, "--encoding", "ttfs",
                        "--no-progress")
    assert code == 0, err  # a dense-input model takes spikes as input values of 1
    with pytest.raises(ValueError, match="a float checkpoint; loading an integer model needs"):
        load_quantized(TEACHER)
    import shutil

    import h5py
    newer = tmp_path / "newer.h5"
    shutil.copy(q8, newer)
    with h5py.File(newer, "a") as f:
        f["quant"].attrs["version"] = 2
    with pytest.raises(ValueError, match="quantized model format version 2; this snnlite "
                                         "reads version 1"):
        load_quantized(newer)
    code, _, err = _cli(capsys, "train", "--quantize", 8, "--data", mini, "--out",
                        tmp_path / "v")
    assert code == 2 and "give the checkpoint to start from with --init" in err


# ------------------------------------------------------------------------ QAT


def _qat_config(**kw):
    return TrainConfig(model="cifarnet_small", T=2, epochs=2, batch_size=16, lr=0.002,
                       warmup_epochs=0.0, train_limit=32, test_limit=16, init=str(TEACHER),
                       quantize=QFormat(weight_bits=4).as_dict(), **kw)


def test_qat_resumes_exactly_and_quantizes_to_its_integers(mini, tmp_path):
    train, test = data.load_mini(mini)
    full = Trainer(_qat_config(), tmp_path / "full", train, test, progress=False)
    assert isinstance(full.model, QATModel)
    full.fit()
    rec = read_config(tmp_path / "full" / "last.h5")["quantize"]
    assert rec["weight_bits"] == 4 and rec["encoding"] == "direct" and rec["input_step"] > 0

    part = Trainer(_qat_config(), tmp_path / "part", train, test, progress=False)
    step = part.train_step

    def stop_after_three(x, y):
        out = step(x, y)
        if part.state["step"] == 2:  # the third step: then Ctrl-C
            part._stop = True
        return out
    part.train_step = stop_after_three
    with pytest.raises(KeyboardInterrupt):
        part.fit()
    part.close()
    again = Trainer(_qat_config(), tmp_path / "part", train, test, resume=True, progress=False)
    again.fit()
    a, b = full.model.state_dict(), again.model.state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["0.weight"], load_checkpoint(TEACHER)["model"]["0.weight"])

    # snnlite quantize on the QAT checkpoint: its format and input step, the same integers
    out = tmp_path / "q4.h5"
    assert cli.main(["quantize", str(tmp_path / "full" / "last.h5"), "--data", str(mini),
                     "--calibration", "8", "--out", str(out)]) == 0
    qnet, _, qrec = load_quantized(out)
    assert qrec["weight_bits"] == 4 and qnet.input_step == rec["input_step"]
    trained = full.model.quantized()
    lifs = [p for p in qnet.populations if p.kind != "maxpool"]
    for (p, _, vals), qp in zip(trained, lifs):
        for wi, proj in zip(vals.weights, qp.projections):
            np.testing.assert_array_equal(wi, proj.weight, err_msg=proj.name)


def test_train_and_transfer_quantize_flags(mini, tmp_path, capsys):
    code, out, err = _cli(capsys, "train", "--quantize", 8, "--init", TEACHER, "--data", mini,
                          "--epochs", 1, "--T", 2, "--batch-size", 16, "--train-limit", 32,
                          "--test-limit", 16, "--no-progress", "--out", tmp_path / "t")
    assert code == 0, err
    assert read_config(tmp_path / "t" / "last.h5")["quantize"]["weight_bits"] == 8
    code, out, err = _cli(capsys, "transfer", "--teacher", TEACHER, "--quantize", 8,
                          "--per-channel", "--epochs", 1, "--T", 2, "--batch-size", 16,
                          "--train-limit", 32, "--test-limit", 16, "--data", mini,
                          "--no-progress", "--out", tmp_path / "s")
    assert code == 0, err
    rec = read_config(tmp_path / "s" / "last.h5")["quantize"]
    assert rec["per_channel"] is True and rec["encoding"] == "ttfs" and rec["input_step"] is None
    code, _, err = _cli(capsys, "train", "--state-bits", 12, "--data", mini, "--out",
                        tmp_path / "u")
    assert code == 2 and "--state-bits needs --quantize BITS" in err


def test_audit_runs_the_integer_engine_and_checks_it_against_the_runtime(q8, mini, capsys):
    code, out, err = _cli(capsys, "audit", q8, "--data", mini, "--samples", 4, "--batch-size",
                          2, "--format", "json", "--check", "--target", "loihi")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc["results"]) == {"direct"} and doc["checked"] is True
    res = doc["results"]["direct"]
    assert [lay["name"] for lay in res["layers"]] == ["0", "3", "7", "11", "16"]
    assert res["saturated"] == 0 and "neurobench" not in res
    assert doc["fit"]["formats"] == {"weight_bits": 8, "state_bits": 16}
    qnet, _, _ = load_quantized(q8)
    from snnlite.quant.evaluate import audit_quantized
    _, test = data.load_mini(mini)
    imgs = test.images[:4].astype(np.float32) / np.float32(255)
    ref = audit_quantized(qnet, imgs, test.labels[:4], test.mean, test.std, ["direct"], 4,
                          "loihi")
    assert ref["results"]["direct"]["total"]["synops"] == res["total"]["synops"]
    code, _, err = _cli(capsys, "audit", q8, "--data", mini, "--samples", 2, "--format",
                        "neurobench")
    assert code == 2 and "NeuroBench" in err
    code, text, err = _cli(capsys, "audit", q8, "--data", mini, "--samples", 2, "--check")
    assert code == 0 and "every spike and the readout match the numpy runtime" in text
