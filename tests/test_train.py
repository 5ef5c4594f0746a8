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
from snnlite.io.checkpoint import _umask, load_checkpoint, save_checkpoint
from snnlite.train import TrainConfig, Trainer

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


GOLDEN_LOSSES = [2.333361, 2.315033, 2.2863835, 2.2843556, 2.2567975, 2.3719901]


def test_golden_loss_curve(mini):
    """Seeded cifarnet_small, 6 SGD steps on fixed batches of the real subset: the loss
    curve is pinned (float32; tolerance covers summation order across thread counts)."""
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


def test_quickstart_learns(mini):
    path, _ = mini
    hist = _quickstart().run(path, epochs=3, T=2, progress=False)
    assert hist[-1]["train_loss"] < hist[0]["train_loss"] - 0.1
    assert hist[-1]["train_acc"] > 0.2 and hist[-1]["test_acc"] > 0.15  # chance is 0.1


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


def test_non_finite_loss_stops_with_a_clear_message(mini, tmp_path):
    _, (train, test) = mini
    t = Trainer(_cfg(), tmp_path, train, test, progress=False)
    t.model[16].weight.data[0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="diverged at epoch 1, step 0"):
        t.fit()


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


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes(mini, tmp_path):
    path, _ = mini
    args = ["train", "--data", path, "--T", "4", "--epochs", "1", "--batch-size", "32",
            "--train-limit", "960", "--test-limit", "32", "--checkpoint-every", "1000",
            "--no-progress", "--out", str(tmp_path)]
    proc = _cli(args)
    deadline = time.time() + 600
    while time.time() < deadline and not (tmp_path / "config.json").exists():
        time.sleep(0.05)
    time.sleep(1.5)  # into the epoch (30 steps), before any periodic checkpoint
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err
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
