"""Learning, exact resume, checkpoints and the command line, on the real CIFAR-10 subset."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import snnlite
from snnlite import data, encoding, losses, optim
from snnlite.io.checkpoint import _umask, load_checkpoint, load_model, save_checkpoint
from snnlite.io.config import TrainConfig
from snnlite.losses import DivergenceError
from snnlite.train import Trainer, evaluate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def mini(request):
    path = os.path.join(os.environ.get("SNNLITE_DATA", os.path.join(REPO, "..", "shared",
                                                                    "data")),
                        "cifar10-mini.npz")
    if not os.path.exists(path):
        pytest.skip(f"{path} not found (set SNNLITE_DATA)")
    return path, data.load_mini(path)


def _steps(model, train, n_steps, T=2, batch=16, lr=0.05, seed=0):
    loader = data.Loader(train, batch, shuffle=True, augment=False, seed=seed, prefetch=0)
    opt = optim.SGD(model.parameters(), lr=lr)
    out = []
    it = iter(loader.epoch(0))
    for _ in range(n_steps):
        x, y = next(it)
        z = model.forward(encoding.direct(data.normalize(x, train.mean, train.std), T))
        loss, g = losses.cross_entropy(z, y)
        opt.zero_grad()
        model.backward(g)
        opt.step()
        out.append(loss)
    return out


def test_overfits_one_batch(mini):
    _, (train, _) = mini
    x = train.images[:16].astype(np.float32) / 255
    y = train.labels[:16]
    model = snnlite.models.cifarnet_small(seed=0)
    opt = optim.SGD(model.parameters(), lr=0.05)
    inp = encoding.direct(data.normalize(x, train.mean, train.std), 2)
    first = None
    for _ in range(40):
        z = model.forward(inp)
        loss, g = losses.cross_entropy(z, y)
        first = first if first is not None else loss
        opt.zero_grad()
        model.backward(g)
        opt.step()
    assert loss < 0.1 * first
    assert (z.argmax(1) == y).mean() == 1.0


# Provenance: these six losses are snnlite's own output, recorded when this test was added
# (commit e70f325, "Trainer with exact resume, HDF5 checkpoints, CLI ...") and unchanged
# since. They pin snnlite against itself -- a regression guard on the whole training step
# (data order, init, forward, BPTT, SGD), not evidence that it is right. The independent
# check is tests/test_spikingjelly_golden.py: on weights and a batch recorded from
# SpikingJelly 2.0 / PyTorch (examples/benchmarks/make_sj_golden.py), the same spikes per layer,
# logits, loss, every gradient and two Nesterov SGD steps.
GOLDEN_LOSSES = [2.333361, 2.315033, 2.2863835, 2.2843556, 2.2567975, 2.3719901]


def test_golden_loss_curve(mini):
    """Seeded cifarnet_small, 6 SGD steps on fixed batches of the real subset: the loss
    curve is pinned to snnlite's earlier output (see GOLDEN_LOSSES; float32, the tolerance
    covers summation order across thread counts)."""
    _, (train, _) = mini
    got = _steps(snnlite.models.cifarnet_small(seed=0), train, 6)
    np.testing.assert_allclose(got, GOLDEN_LOSSES, rtol=2e-5)


def _quickstart():
    sys.path.insert(0, os.path.join(REPO, "examples"))
    try:
        import quickstart
    finally:
        sys.path.pop(0)
    return quickstart


def test_quickstart_learns(mini, tmp_path):
    path, (_, test) = mini
    hist = _quickstart().run(path, epochs=3, T=2, progress=False, out=tmp_path / "q.h5")
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.1
    assert hist[-1]["train_acc"] > 0.2 and hist[-1]["test_acc"] > 0.15  # chance is 0.1
    model, cfg = load_model(tmp_path / "q.h5")  # the checkpoint it saves, as commands read it
    acc = evaluate(model, test, cfg.T)["acc"]  # batches of 200, not all 500 at once:
    assert cfg.T == 2 and acc == pytest.approx(hist[-1]["test_acc"], abs=0.005)  # 2 images


def _cfg(**kw):
    base = dict(model="cifarnet_small", T=2, epochs=2, batch_size=16, train_limit=64,
                test_limit=32, checkpoint_every=1, warmup_epochs=0.5)
    base.update(kw)
    return TrainConfig(**base)


def _final_weights(out):
    return load_checkpoint(out / "last.h5")["model"]


def test_resume_after_crash_is_exact(mini, tmp_path):
    _, (train, test) = mini
    ref = Trainer(_cfg(), tmp_path / "ref", train, test, progress=False)
    ref.fit()

    class Crash(Trainer):
        def train_step(self, x, y):
            if self.state["step"] == 5:
                raise RuntimeError("simulated crash")
            return super().train_step(x, y)

    with pytest.raises(RuntimeError, match="simulated"):
        Crash(_cfg(), tmp_path / "run", train, test, progress=False).fit()
    assert load_checkpoint(tmp_path / "run" / "last.h5")["state"]["step"] == 5
    with pytest.raises(FileExistsError, match="resume"):
        Trainer(_cfg(), tmp_path / "run", train, test, progress=False)
    Trainer(_cfg(), tmp_path / "run", train, test, resume=True, progress=False).fit()
    a, b = _final_weights(tmp_path / "ref"), _final_weights(tmp_path / "run")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    hist = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    ref_hist = [json.loads(line) for line in (tmp_path / "ref" / "metrics.jsonl").open()]
    assert [h["test_acc"] for h in hist] == [h["test_acc"] for h in ref_hist]
    assert [h["train_loss"] for h in hist] == [h["train_loss"] for h in ref_hist]


def test_resume_refuses_a_different_config(mini, tmp_path):
    _, (train, test) = mini
    Trainer(_cfg(epochs=1), tmp_path, train, test, progress=False).fit()
    with pytest.raises(ValueError, match="T=2"):
        Trainer(_cfg(epochs=1, T=3), tmp_path, train, test, resume=True, progress=False)


def _cli(args, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "snnlite"] + args, env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_sigkill_then_resume_matches_uninterrupted_run_via_cli(mini, tmp_path):
    path, _ = mini
    common = ["train", "--data", path, "--T", "2", "--epochs", "2", "--batch-size", "16",
              "--train-limit", "96", "--test-limit", "32", "--checkpoint-every", "1",
              "--no-progress"]
    ref = _cli(common + ["--out", str(tmp_path / "ref")])
    out, err = ref.communicate(timeout=600)
    assert ref.returncode == 0, err
    assert "best test accuracy" in out
    run = tmp_path / "run"
    proc = _cli(common + ["--out", str(run)])
    deadline = time.time() + 600
    while time.time() < deadline:  # kill once a mid-run checkpoint exists
        if (run / "last.h5").exists():
            try:
                if load_checkpoint(run / "last.h5")["state"]["step"] >= 4:
                    break
            except (ValueError, KeyError):
                pass
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert load_checkpoint(run / "last.h5")["state"]["step"] < 12  # killed mid-run
    res = _cli(common + ["--out", str(run), "--resume"])
    _, err = res.communicate(timeout=600)
    assert res.returncode == 0, err
    a, b = _final_weights(tmp_path / "ref"), _final_weights(run)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    ev = _cli(["eval", str(run / "best.h5"), "--data", path, "--limit", "50", "--encoding",
               "direct", "ttfs", "--format", "json", "--no-progress"])
    out, err = ev.communicate(timeout=600)
    assert ev.returncode == 0, err
    res = json.loads(out)["results"]
    assert set(res) == {"direct", "ttfs"} and 0 <= res["ttfs"]["accuracy"] <= 1


def test_non_finite_logits_stop_with_a_typed_error_and_a_clear_message(mini, tmp_path):
    _, (train, test) = mini
    t = Trainer(_cfg(), tmp_path, train, test, progress=False)
    t.model[16].weight.data[0, 0] = np.nan
    with pytest.raises(DivergenceError, match="diverged at epoch 1, step 0") as e:
        t.fit()
    assert isinstance(e.value, FloatingPointError)  # what the CLI and callers catch
    assert "logits: contains NaN" in str(e.value)
    assert "No checkpoint was written" in str(e.value)  # none is claimed to be good


def test_non_finite_loss_is_divergence_but_other_errors_pass_through(mini, tmp_path):
    _, (train, test) = mini

    class NanLoss(Trainer):
        def loss(self, logits, x, y):
            _, g = super().loss(logits, x, y)
            return float("nan"), g

    with pytest.raises(DivergenceError, match="step 0 .*loss is nan"):
        NanLoss(_cfg(), tmp_path / "nan", train, test, progress=False).fit()

    class BadInput(Trainer):  # a ValueError that merely mentions NaN is not divergence
        def train_step(self, x, y):
            raise ValueError("x: contains NaN or infinity")

    with pytest.raises(ValueError, match="x: contains NaN") as e:
        BadInput(_cfg(), tmp_path / "bad", train, test, progress=False).fit()
    assert not isinstance(e.value, FloatingPointError)


def test_train_step_uses_the_loss_hook(mini, tmp_path):
    """Subclasses change the objective by overriding ``loss(logits, x, y)`` alone."""
    _, (train, test) = mini
    calls = []

    class Half(Trainer):
        def loss(self, logits, x, y):
            calls.append((logits.shape, x.shape, y.shape))
            loss, g = losses.cross_entropy(logits, y)
            return loss / 2, g / 2

    t = Half(_cfg(), tmp_path, train, test, progress=False)
    x, y = t.loader.batch(0, 0)
    ref = snnlite.models.cifarnet_small(seed=0)
    z = ref.forward(encoding.direct(data.normalize(x, train.mean, train.std), 2))
    want, g = losses.cross_entropy(z, y)
    loss, correct = t.train_step(x, y)
    assert calls == [((16, 10), (16, 3, 32, 32), (16,))]
    assert loss == pytest.approx(want / 2, rel=1e-6) and correct == int((z.argmax(1) == y).sum())
    ref.backward(g / 2)
    for (name, p), q in zip(t.model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-5, atol=1e-8, err_msg=name)


MALLOC_PROBE = """
import sys
import snnlite
from snnlite import _memory
assert not _memory._applied, "import snnlite tuned malloc"
import snnlite.cli, snnlite.train, snnlite.transfer
assert not _memory._applied, "importing the CLI or the trainers tuned malloc"
from snnlite import data
from snnlite.io.config import TrainConfig
from snnlite.train import Trainer
rng = __import__("numpy").random.default_rng(0)
ds = data.ArrayDataset(rng.integers(0, 256, (4, 3, 32, 32), dtype="uint8"), [0, 1, 2, 3])
Trainer(TrainConfig(T=1, epochs=1, batch_size=2), sys.argv[1], ds, ds, progress=False)
print(_memory._applied)
"""


def test_import_leaves_malloc_alone_and_trainer_tunes_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SNNLITE_MALLOC_TUNE"}
    run = subprocess.run([sys.executable, "-c", MALLOC_PROBE, str(tmp_path)], cwd=REPO,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    if sys.platform.startswith("linux") and _glibc():
        assert run.stdout.split() == ["True"]
    cli = ("import snnlite.cli, snnlite._memory as m\n"
           "assert snnlite.cli.main(['eval', 'missing.h5']) == 2\n"
           "print(m._applied)\n")
    run = subprocess.run([sys.executable, "-c", cli], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    if sys.platform.startswith("linux") and _glibc():
        assert run.stdout.split() == ["True"]  # the command tunes its own process
    run = subprocess.run([sys.executable, "-c", MALLOC_PROBE, str(tmp_path / "off")],
                         cwd=REPO, env=dict(env, SNNLITE_MALLOC_TUNE="0"),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.split() == ["False"], run.stderr


def _glibc():
    import platform
    return platform.libc_ver()[0] == "glibc"


def test_checkpoint_is_atomic_and_corruption_is_reported(tmp_path):
    path = tmp_path / "ck.h5"
    save_checkpoint(path, {"w": np.ones(3)}, {"model": "x"}, {"step": 1})

    with pytest.raises(TypeError):  # an unserialisable state fails before the rename
        save_checkpoint(path, {"w": np.zeros(3)}, {"model": object()}, {"step": 2})
    assert load_checkpoint(path)["state"]["step"] == 1  # the old file survives intact
    assert path.stat().st_mode & 0o777 == 0o666 & ~_umask()  # ordinary permissions
    assert [p.name for p in tmp_path.iterdir()] == ["ck.h5"]  # no temporary left behind
    raw = path.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="trunc.h5"):
        load_checkpoint(tmp_path / "trunc.h5")
    (tmp_path / "other.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(ValueError, match="other.h5"):
        load_checkpoint(tmp_path / "other.h5")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.h5")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_resume_finishes(mini, tmp_path, sig):
    """Ctrl-C, and SIGTERM (what kill and job schedulers send), end the step, save, exit
    128 + the signal number."""
    path, _ = mini
    args = ["train", "--data", path, "--T", "4", "--epochs", "1", "--batch-size", "32",
            "--train-limit", "960", "--test-limit", "32", "--checkpoint-every", "1000",
            "--no-progress", "--out", str(tmp_path)]
    proc = _cli(args)
    deadline = time.time() + 600
    while time.time() < deadline and not (tmp_path / "config.json").exists():
        time.sleep(0.05)
    time.sleep(1.5)  # into the epoch (30 steps), before any periodic checkpoint
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 128 + sig, err
    assert f"interrupted ({sig.name}); checkpoint saved" in err
    step = load_checkpoint(tmp_path / "last.h5")["state"]["step"]
    assert 0 < step < 30
    res = _cli(args + ["--resume"])
    _, err = res.communicate(timeout=600)
    assert res.returncode == 0, err
    assert load_checkpoint(tmp_path / "last.h5")["state"]["step"] == 30


@pytest.mark.slow
def test_quickstart_default_run_reaches_30_percent(mini):
    """The README's quick start as shipped: 8 epochs, T=4, on the 1,000-image subset."""
    path, _ = mini
    hist = _quickstart().run(path, progress=False)
    assert hist[-1]["test_acc"] >= 0.30


def test_fit_precompiles_the_models_kernels_first(mini, tmp_path, monkeypatch):
    """fit() hands the model's name to precompile (all cores on a cold cache) before the
    first step."""
    import snnlite.train as T
    _, (train, test) = mini
    calls = []
    monkeypatch.setattr(T, "precompile", lambda name, progress: calls.append(name))
    Trainer(_cfg(epochs=1), tmp_path, train, test, progress=False).fit()
    assert calls == ["cifarnet_small"]
