"""D2E transfer: the student copy, the frozen teacher, the loss wiring, per-epoch metrics,
results.json through the command line, and exact resume; on the real CIFAR-10 subset."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import special, stats

from snnlite import data, encoding, losses
from snnlite.io.checkpoint import load_checkpoint, load_model
from snnlite.io.config import TrainConfig
from snnlite.nn import LIF
from snnlite.nn.graph import trace
from snnlite.train import Trainer, evaluate, subset
from snnlite.transfer import Transfer, TransferConfig, mcnemar, pearson, state_digest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIF_NAMES = ["2", "5", "9", "13"]  # the spiking layers of cifarnet_small
# its neurons per 3x32x32 image, by hand: conv 3-32 and 32-64 at 32x32, avgpool, conv 64-128
# at 16x16, avgpool, conv 128-128 at 8x8
NEURONS = {"2": 32 * 32 * 32, "5": 64 * 32 * 32, "9": 128 * 16 * 16, "13": 128 * 8 * 8}


def _kl_ref(student_logits, teacher_logits, K=1.0):
    """Mean KL(softmax(t / K) || softmax(s / K)) by scipy (no K^2 factor)."""
    pt = special.softmax(np.asarray(teacher_logits, np.float64) / K, axis=1)
    ps = special.softmax(np.asarray(student_logits, np.float64) / K, axis=1)
    return float(stats.entropy(pt, ps, axis=1).mean())


def _pearson_ref(x, y):
    """scipy's Pearson r, or None where it is undefined (< 3 points, a constant side)."""
    if len(x) < 3 or len(set(x)) == 1 or len(set(y)) == 1:
        return None
    return float(stats.pearsonr(x, y)[0])


def _accuracy(model, labels, inputs):
    """Accuracy of one eval-mode forward of the whole set, written out here."""
    model.eval()
    return float((model.forward(inputs).argmax(1) == labels).mean())


@pytest.fixture(scope="module")
def mini():
    path = os.path.join(os.environ.get("SNNLITE_DATA", os.path.join(REPO, "..", "shared",
                                                                    "data")),
                        "cifar10-mini.npz")
    if not os.path.exists(path):
        pytest.skip(f"{path} not found (set SNNLITE_DATA)")
    return path, data.load_mini(path)


@pytest.fixture(scope="module")
def teacher(mini, tmp_path_factory):
    """A direct-coded checkpoint from a one-epoch run."""
    _, (train, test) = mini
    out = tmp_path_factory.mktemp("teacher")
    cfg = TrainConfig(T=2, epochs=1, batch_size=16, train_limit=48, test_limit=32)
    Trainer(cfg, out, train, test, progress=False).fit()
    return out / "best.h5"


def _cfg(teacher, **kw):
    base = {"teacher": str(teacher), "T": 2, "epochs": 2, "batch_size": 16,
            "train_limit": 32, "test_limit": 32, "checkpoint_every": 1, "warmup_epochs": 0.5}
    base.update(kw)
    return TransferConfig(**base)


def test_student_starts_as_a_bit_identical_copy(mini, teacher, tmp_path):
    _, (train, test) = mini
    tr = Transfer(_cfg(teacher), tmp_path, train, test, progress=False)
    saved = load_checkpoint(teacher)["model"]
    student, frozen = tr.model.state_dict(), tr.teacher.state_dict()
    assert list(student) == list(frozen) and set(student) == set(saved)
    for k in saved:
        assert student[k].dtype == saved[k].dtype == frozen[k].dtype, k
        np.testing.assert_array_equal(student[k], saved[k], err_msg=k)
        np.testing.assert_array_equal(frozen[k], saved[k], err_msg=k)
    # separate arrays: training the student cannot touch the teacher
    assert not any(np.shares_memory(a.data, b.data) for a, b in
                   zip(tr.model.parameters(), tr.teacher.parameters()))
    assert (tr.cfg.model, tr.cfg.num_classes, tr.cfg.teacher_T) == ("cifarnet_small", 10, 2)
    assert tr.model.training and not any(m.training for m in tr.teacher.modules())
    arrays = {k: np.atleast_1d(saved[k]) for k in frozen}  # the model's own name order
    assert tr.teacher_sha256 == hashlib.sha256(b"".join(
        f"{k}:{v.dtype.str}:{v.shape};".encode() + v.tobytes()
        for k, v in arrays.items())).hexdigest()


def test_transfer_changes_the_loss_not_the_step():
    assert "train_step" not in vars(Transfer) and "loss" in vars(Transfer)
    assert Transfer.train_step is Trainer.train_step


def test_config_is_checked(teacher, mini, tmp_path):
    _, (train, test) = mini
    for bad in ({"method": "kd"}, {"alpha": 1.5}, {"temperature": 0.0},
                {"encoding": "direct"}, {"teacher": ""}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _cfg(**{"teacher": teacher, **bad})
    with pytest.raises(ValueError, match="copy of the teacher"):
        Transfer(_cfg(teacher, model="wrn20_1"), tmp_path, train, test, progress=False)


CASES = [("skd", 0.4, 4.0), ("skd", 0.4, 1.0), ("skd", 0.0, 4.0), ("skd", 1.0, 1.0),
         ("reverse_kl", 0.4, 4.0), ("mse", 0.4, 4.0), ("tsf", 0.4, 4.0)]


@pytest.mark.parametrize("method,alpha,K", CASES)
def test_step_loss_and_gradient_are_the_methods(mini, teacher, tmp_path, method, alpha, K):
    """One step of Transfer against the loss functions on independently computed logits:
    teacher (eval, direct, normalised) and student copy (train mode, TTFS of the raw x)."""
    _, (train, test) = mini
    tr = Transfer(_cfg(teacher, method=method, alpha=alpha, temperature=K), tmp_path, train,
                  test, progress=False)
    x, y = tr.loader.batch(0, 0)
    ref_t, _ = load_model(teacher)
    zt = ref_t.eval().forward(encoding.direct(data.normalize(x, train.mean, train.std), 2))
    ref_s, _ = load_model(teacher)
    zs = ref_s.forward(encoding.ttfs(x, 2))
    if method == "tsf":  # CE alone: the teacher is not even run
        tr.teacher_logits = lambda x: pytest.fail("TSF ran the teacher")
        want, g = losses.cross_entropy(zs, y)
    elif method == "skd":
        want, g = losses.skd_loss(zs, zt, y, alpha, K)
        if alpha == 1.0:
            np.testing.assert_allclose(want, losses.cross_entropy(zs, y)[0], rtol=1e-12)
        if alpha == 0.0:
            np.testing.assert_allclose(want, losses.kl_forward(zs, zt, K)[0], rtol=1e-12)
    else:
        want, g = losses.distillation_loss(zs, zt, y, alpha, K, method)
    loss, correct = tr.train_step(x, y)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    assert correct == int((zs.argmax(1) == y).sum())
    ref_s.backward(g)
    for (name, p), q in zip(tr.model.named_parameters(), ref_s.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-5, atol=1e-7, err_msg=name)
    assert all(not p.grad.any() for p in tr.teacher.parameters())


def test_teacher_stays_frozen_and_epoch_rows_are_complete(mini, teacher, tmp_path):
    _, (train, test) = mini
    tr = Transfer(_cfg(teacher), tmp_path, train, test, progress=False)
    before = tr.model.state_dict()
    res = tr.fit()
    saved = load_checkpoint(teacher)["model"]
    for k, v in tr.teacher.state_dict().items():
        np.testing.assert_array_equal(v, saved[k], err_msg=k)
    assert all(not p.grad.any() for p in tr.teacher.parameters())
    assert not any(m.training for m in tr.teacher.modules())
    assert any(not np.array_equal(before[k], v) for k, v in tr.model.state_dict().items())

    hist = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    ts = subset(test, 32)
    x = ts.images.astype(np.float32) / np.float32(255)
    direct_in = encoding.direct(data.normalize(x, ts.mean, ts.std), 2)
    zt = load_model(teacher)[0].eval().forward(direct_in)
    z0 = load_model(teacher)[0].eval().forward(encoding.ttfs(x, 2))  # the unchanged copy
    zf = load_model(tmp_path / "last.h5")[0].eval().forward(encoding.ttfs(x, 2))  # final
    teacher_acc = float((zt.argmax(1) == ts.labels).mean())
    for h, z in ((hist[0], z0), (hist[-1], zf)):  # the rows whose weights exist on disk
        acc = float((z.argmax(1) == ts.labels).mean())
        assert h["test_acc"] == acc and h["teacher_acc"] == teacher_acc
        assert h["gap"] == pytest.approx(teacher_acc - acc, abs=1e-12)
        assert h["kl"] == pytest.approx(_kl_ref(z, zt), rel=1e-5)
        assert h["kl_temp"] == pytest.approx(_kl_ref(z, zt, 4.0), rel=1e-5)
    for h in hist:
        assert h["teacher_acc"] == teacher_acc
        assert list(h["firing_rates"]) == LIF_NAMES
        assert all(0 <= r <= 1 for r in h["firing_rates"].values())
    assert res == json.loads((tmp_path / "results.json").read_text())
    assert res["baseline_acc"] == hist[0]["test_acc"] and res["final_acc"] == hist[-1]["test_acc"]
    assert res["pearson_kl_gap"] == _pearson_ref([h["kl"] for h in hist],
                                                 [h["gap"] for h in hist])


def test_firing_rates_count_spikes_per_neuron_and_step(mini, teacher, tmp_path):
    _, (train, test) = mini
    tr = Transfer(_cfg(teacher, eval_batch_size=10), tmp_path, train, test, progress=False)
    assert trace(tr.model, (3, 32, 32)).neurons() == NEURONS
    lifs = [m for m in tr.model.modules() if isinstance(m, LIF)]
    for m in lifs:  # make every layer active
        m.v_threshold = 0.05
    ev = tr.evaluate_test()  # 32 images in batches of 10, 10, 10, 2
    x = subset(test, 32).images.astype(np.float32) / np.float32(255)
    tr.model.eval().forward(encoding.ttfs(x, 2))  # all at once
    for name, m in zip(LIF_NAMES, lifs):
        assert m.spike_count > 0
        assert ev["firing_rates"][name] == pytest.approx(m.spike_count / (NEURONS[name] * 2 * 32))
    total = sum(m.spike_count for m in lifs) / (sum(NEURONS.values()) * 2 * 32)
    assert ev["firing_rate"] == pytest.approx(total)


def test_cli_end_to_end_writes_results(mini, teacher, tmp_path):
    path, _ = mini
    out = tmp_path / "skd"
    cmd = [sys.executable, "-m", "snnlite", "transfer", "--teacher", str(teacher), "--method",
           "skd", "--T", "2", "--epochs", "2", "--batch-size", "16", "--train-limit", "32",
           "--test-limit", "32", "--data", path, "--out", str(out), "--no-progress",
           "--log-every", "1"]
    run = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert [line.split(":")[0] for line in run.stdout.splitlines() if " batch " in line] == [
        f"epoch {e} batch {b}/2 step {2 * e - 2 + b}" for e in (1, 2) for b in (1, 2)]
    assert "r(KL, gap)" in run.stdout and "teacher_acc" in run.stdout
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "skd" and res["encoding"] == "ttfs" and res["epochs"] == 2
    assert (res["T"], res["teacher_T"], res["test_images"], res["points"]) == (2, 2, 32, 3)
    assert res["config"]["alpha"] == 0.4 and res["config"]["temperature"] == 4.0
    _, test = data.load_mini(path)
    ts = subset(test, 32)
    x = ts.images.astype(np.float32) / np.float32(255)
    want = {"teacher_acc": _accuracy(load_model(teacher)[0], ts.labels, encoding.direct(
                data.normalize(x, ts.mean, ts.std), 2)),
            "baseline_acc": _accuracy(load_model(teacher)[0], ts.labels,
                                      encoding.ttfs(x, 2)),
            "final_acc": _accuracy(load_model(out / "last.h5")[0], ts.labels,
                                   encoding.ttfs(x, 2))}
    assert {k: res[k] for k in want} == want
    assert res["final_gap"] == pytest.approx(want["teacher_acc"] - want["final_acc"], abs=1e-12)
    assert list(res["final_firing_rates"]) == LIF_NAMES and res["wall_s"] >= 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert res["best_acc"] == max(r["test_acc"] for r in rows[1:])
    assert res["pearson_kl_gap"] == _pearson_ref([r["kl"] for r in rows],
                                                 [r["gap"] for r in rows])
    again = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2 and "--resume" in again.stderr


def test_resume_after_crash_is_exact(mini, teacher, tmp_path):
    _, (train, test) = mini
    ref = Transfer(_cfg(teacher), tmp_path / "ref", train, test, progress=False)
    ref.fit()

    class Crash(Transfer):
        def train_step(self, x, y):
            if self.state["step"] == 3:
                raise RuntimeError("simulated crash")
            return super().train_step(x, y)

    with pytest.raises(RuntimeError, match="simulated"):
        Crash(_cfg(teacher), tmp_path / "run", train, test, progress=False).fit()
    assert load_checkpoint(tmp_path / "run" / "last.h5")["state"]["step"] == 3
    with pytest.raises(ValueError, match="method"):
        Transfer(_cfg(teacher, method="tsf"), tmp_path / "run", train, test, resume=True)
    Transfer(_cfg(teacher), tmp_path / "run", train, test, resume=True, progress=False).fit()
    a = load_checkpoint(tmp_path / "ref" / "last.h5")["model"]
    b = load_checkpoint(tmp_path / "run" / "last.h5")["model"]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)

    def rows(d):
        return [{k: v for k, v in json.loads(line).items() if k != "wall_s"}
                for line in (tmp_path / d / "metrics.jsonl").open()]
    assert rows("run") == rows("ref")


def test_example_study_writes_results_and_table(mini, teacher, tmp_path):
    _, (train, test) = mini
    sys.path.insert(0, os.path.join(REPO, "examples"))
    try:
        import d2e_cifar10
    finally:
        sys.path.pop(0)
    res = d2e_cifar10.run(teacher, tmp_path, train, test, epochs=1, T=2, batch_size=16,
                          methods=["tsf", "skd"], train_limit=32, test_limit=32,
                          progress=False)
    assert [r["row"] for r in res["rows"]] == ["direct", "TTFS baseline", "TSF", "SKD"]
    assert res == json.loads((tmp_path / "results.json").read_text())
    assert res["rows"][1]["acc"] == res["runs"]["skd"]["baseline_acc"]
    res3 = d2e_cifar10.run(teacher, tmp_path / "T3", train, test, epochs=1, T=3,
                           batch_size=16, methods=["tsf"], train_limit=16, test_limit=16,
                           progress=False, energy_samples=0)
    assert [(r["row"], r["T"]) for r in res3["rows"]] == [
        ("direct", 2), ("direct", 3), ("TTFS baseline", 3), ("TSF", 3)]
    assert res3["energy"] is None and "synops" not in res3["rows"][0]
    assert res["rows"][1]["kl"] == pytest.approx(res["runs"]["skd"]["baseline_kl"])
    md = (tmp_path / "results.md").read_text()
    assert md.count("\n| ") == 5 and "r(KL, gap)" in md
    assert res["energy"]["samples"] == 32 and "synops / image" in md
    direct, baseline, tsf, _ = res["rows"]
    assert direct["macs"] > 0 and baseline["macs"] == 0 == tsf["macs"]  # events: ACs only
    assert all(r["energy_uj"] > 0 and r["synops"] > 0 for r in res["rows"])
    curves = [res["runs"][m]["curve"] for m in ("tsf", "skd")]
    assert [h["epoch"] for h in curves[1]] == [0, 1]
    kl, gap = zip(*[(h["kl"], h["gap"]) for h in curves[0] + curves[1][1:]])
    assert res["pooled_points"] == 3
    assert res["pearson_kl_gap_pooled"] == _pearson_ref(kl, gap)


def test_example_study_stops_in_one_line(mini_npz, tmp_path, monkeypatch, capsys):
    """Ctrl-C or SIGTERM during the example (its checkpoints saved by the trainer) ends it
    with one line, not a traceback."""
    import runpy
    import signal

    from snnlite import train

    def stop(self):
        raise train.Interrupted(signal.SIGTERM, "interrupted (SIGTERM)")
    monkeypatch.setattr(train.Trainer, "fit", stop)
    monkeypatch.setattr(sys, "argv", ["d2e_cifar10.py", "--quick", "--data", str(mini_npz),
                                      "--out", str(tmp_path), "--no-progress"])
    with pytest.raises(BaseException) as exit_:  # unhandled, Interrupted is a KeyboardInterrupt
        runpy.run_path(os.path.join(REPO, "examples", "d2e_cifar10.py"), run_name="__main__")
    assert exit_.type is SystemExit
    assert exit_.value.code == ("d2e_cifar10: stopped by SIGTERM; its checkpoints are saved, "
                                "and the same command continues it")


def test_mcnemar_is_the_exact_binomial_test():
    from math import comb
    a = np.array([1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 1, 1], bool)
    b = np.array([0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0], bool)
    only_a, only_b, p = mcnemar(a, b)
    assert (only_a, only_b) == (6, 1)  # the 4 agreeing samples do not count
    tail = sum(comb(7, k) for k in range(2)) / 2 ** 7
    assert p == pytest.approx(2 * tail, rel=1e-12)
    assert mcnemar(b, a) == (1, 6, p)  # symmetric
    assert mcnemar(a, a) == (0, 0, 1.0)
    assert mcnemar([1, 0, 1, 0], [0, 1, 0, 1])[2] == 1.0  # an even split: capped at 1
    with pytest.raises(ValueError, match="shapes"):
        mcnemar(a, b[:5])
    rng = np.random.default_rng(0)
    for n in (5, 40, 301):  # against scipy's exact binomial test
        ra, rb = rng.random(n) < 0.7, rng.random(n) < 0.6
        k, m, p = mcnemar(ra, rb)
        if k + m:
            assert p == pytest.approx(stats.binomtest(k, k + m, 0.5).pvalue, rel=1e-10)


def test_pearson_against_hand_values_and_scipy():
    # x = 1, 2, 3; y = 2, 4, 7: deviations (-1, 0, 1) and (-7/3, -1/3, 8/3), so
    # r = 5 / sqrt(2 * 114 / 9) = 15 / sqrt(228)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(15 / np.sqrt(228), rel=1e-14)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0, rel=1e-14)
    assert pearson([1, 2, 3], [5, 5, 5]) is None  # constant: undefined
    assert pearson([1, 2], [1, 2]) is None  # two points always fit a line
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(50), rng.standard_normal(50)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0], rel=1e-12)


def test_state_digest_is_a_sha256_of_names_dtypes_shapes_and_bytes():
    a = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(2)}
    ref = hashlib.sha256(b"w:<f4:(2, 3);" + a["w"].tobytes() + b"b:<f8:(2,);"
                         + a["b"].tobytes()).hexdigest()
    assert state_digest(a) == ref
    assert state_digest({"w": a["w"].T.copy().T, "b": a["b"]}) == ref  # layout-free
    assert state_digest({"w": a["w"].reshape(3, 2), "b": a["b"]}) != ref
    assert state_digest({"w": a["w"].astype(np.float64), "b": a["b"]}) != ref
    step = np.int64(7)  # 0-d arrays hash as shape (1,): digests already recorded still match
    assert state_digest({"n": np.array(step)}) == hashlib.sha256(
        b"n:<i8:(1,);" + step.tobytes()).hexdigest()


def test_example_paired_test(mini, teacher, tmp_path, capsys):
    path, (_, test) = mini
    sys.path.insert(0, os.path.join(REPO, "examples"))
    try:
        import paired_test
    finally:
        sys.path.pop(0)
    out = tmp_path / "paired.json"
    res = paired_test.main([str(teacher), str(teacher), "--data", path, "--encoding",
                            "direct", "ttfs", "--T", "2", "4", "--test-limit", "40",
                            "--json", str(out), "--no-progress"])
    assert res == json.loads(out.read_text())
    model, _ = load_model(teacher)
    small = subset(test, 40)
    da, db = (evaluate(model, small, T, enc) for enc, T in (("direct", 2), ("ttfs", 4)))
    assert [r["acc"] for r in res["rows"]] == [da["acc"], db["acc"]]
    ca, cb = (d["logits"].argmax(1) == small.labels for d in (da, db))
    assert (res["only_a"], res["only_b"], res["p_value"]) == mcnemar(ca, cb)
    assert res["diff_pp"] == pytest.approx(100 * (da["acc"] - db["acc"]))
    assert "exact McNemar p" in capsys.readouterr().out
