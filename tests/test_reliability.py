"""Reliability of training runs: finite checkpoints, divergence, one run per folder, resume
checks and overrides, stale temporary files, and the command line's errors.

Each test names the row of the hostile-user table it covers. Runs are tiny (T=1, 32 images,
2 steps an epoch) and mostly in-process; the command line is called through
``snnlite.cli.main`` so no interpreter has to start.
"""
import dataclasses
import errno
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

import snnlite
from snnlite import cli, data, optim
from snnlite.io.checkpoint import NonFiniteError, load_checkpoint, load_model
from snnlite.io.config import TrainConfig
from snnlite.io.run_folder import FolderBusy, RunFolder
from snnlite.losses import DivergenceError
from snnlite.nn import Parameter
from snnlite.train import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def mini():
    from conftest import shared_data_dir
    path = shared_data_dir() / "cifar10-mini.npz"
    if not path.exists():
        pytest.skip(f"{path} not found (set SNNLITE_DATA)")
    return str(path), data.load_mini(path)


def _cfg(**kw):
    base = dict(model="cifarnet_small", T=1, epochs=2, batch_size=16, train_limit=32,
                test_limit=16, checkpoint_every=1, warmup_epochs=0.5)
    base.update(kw)
    return TrainConfig(**base)


CLI_RUN = ["--T", "1", "--epochs", "2", "--batch-size", "16", "--train-limit", "32",
           "--test-limit", "16", "--checkpoint-every", "1", "--warmup-epochs", "0.5",
           "--no-progress"]


def _main(capsys, args):
    """(exit status, stdout, stderr) of ``snnlite ARGS`` run in this process."""
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err, *needles):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "error:" in lines[0], err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


class CrashAt(Trainer):
    crash_step = None

    def train_step(self, x, y):
        if self.state["step"] == self.crash_step:
            raise RuntimeError("simulated crash")
        return super().train_step(x, y)


def _crashed_run(folder, train, test, step=1, **kw):
    t = CrashAt(_cfg(**kw), folder, train, test, progress=False)
    t.crash_step = step
    with pytest.raises(RuntimeError, match="simulated"):
        t.fit()


# ------------------------------------------------------------------ row 1: lr 1e30 / 1e5
def test_lr_1e30_stops_nonzero_and_the_named_checkpoint_is_finite(mini, tmp_path, capsys):
    path, _ = mini
    out = tmp_path / "run"
    rc, _, err = _main(capsys, ["train", "--data", path, *CLI_RUN, "--lr", "1e30",
                                "--out", out])
    line = _one_line_error(err, "diverged", "last finite checkpoint", "--override lr=")
    assert rc == 2
    ck = load_checkpoint(out / "last.h5")  # finite, or load_checkpoint would refuse it
    assert f"(step {ck['state']['step']}," in line
    assert not list(out.glob(".*.tmp"))


def test_bn_statistics_turning_infinite_stop_the_run(mini, tmp_path):
    """The --lr 1e5 row: logits stay finite (batch statistics) while running variances
    overflow; the checkpoint that would hold them is refused, the previous one stays."""
    _, (train, test) = mini

    class Overflow(Trainer):
        def train_step(self, x, y):
            r = super().train_step(x, y)
            if self.state["step"] == 2:
                self.model[1].running_var[:] = np.inf
            return r

    with pytest.raises(DivergenceError) as e:
        Overflow(_cfg(), tmp_path, train, test, progress=False).fit()
    msg = str(e.value)
    assert "1.running_var" in msg and "step 2" in msg
    assert load_checkpoint(tmp_path / "last.h5")["state"]["step"] == 2  # before the step


def test_nan_gradient_stops_the_step_before_any_update(mini, tmp_path):
    p, q = Parameter(np.ones(3)), Parameter(np.ones(2))
    opt = optim.SGD([p, q], lr=0.1, names=["a.weight", "b.bias"])
    p.grad[:] = 1.0
    q.grad[1] = np.nan
    with pytest.raises(DivergenceError, match="gradient holds NaN or infinity in b.bias"):
        opt.step()
    assert (p.data == 1).all() and opt.momenta == [None, None]
    _, (train, test) = mini

    class NanGrad(Trainer):
        def loss(self, logits, x, y):
            loss, g = super().loss(logits, x, y)
            return loss, np.full_like(g, np.nan)

    with pytest.raises(DivergenceError, match=r"step 0 .*gradient holds NaN or infinity in "
                                              r"0.weight, .*\(14 in all\); no parameter"):
        NanGrad(_cfg(), tmp_path, train, test, progress=False).fit()


def test_resume_with_a_lower_lr_is_an_override_recorded_in_the_run(mini, tmp_path, capsys):
    path, (train, test) = mini
    _crashed_run(tmp_path, train, test, step=3)
    with pytest.raises(ValueError, match=r"lr=0.00625.*lr=0.0001.*--override"):
        Trainer(_cfg(lr=1e-4), tmp_path, train, test, resume=True, progress=False)
    rc, out, err = _main(capsys, ["train", "--data", path, *CLI_RUN, "--out", tmp_path,
                                  "--resume", "--override", "lr=1e-4"])
    assert rc == 0, err
    assert "lr changes from 0.00625 to 0.0001 at step 3" in out
    change = {"epoch": 2, "step": 3, "setting": "lr", "old": 0.00625, "new": 0.0001}
    assert load_checkpoint(tmp_path / "last.h5")["state"]["changes"] == [change]
    assert json.loads((tmp_path / "config.json").read_text())["changes"] == [change]
    assert json.loads((tmp_path / "config.json").read_text())["lr"] == 1e-4
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "changes" not in rows[0] and rows[1]["changes"] == [change]
    # a later resume of the changed run needs no override; the flag's own value also works
    Trainer(_cfg(lr=1e-4), tmp_path, train, test, resume=True, progress=False).close()
    rc, out, err = _main(capsys, ["train", "--data", path, *CLI_RUN, "--out", tmp_path,
                                  "--resume", "--lr", "1e-4", "--epochs", "3", "--override",
                                  "epochs"])
    assert rc == 0, err
    assert "epochs changes from 2 to 3 at step 4" in out
    assert load_checkpoint(tmp_path / "last.h5")["state"]["step"] == 6


# ------------------------------------------------------------------ row 5: resume checks
@pytest.fixture(scope="module")
def stopped_run(mini, tmp_path_factory):
    """A run stopped at step 1 (last.h5 written), shared by the resume checks."""
    _, (train, test) = mini
    folder = tmp_path_factory.mktemp("stopped")
    _crashed_run(folder, train, test, step=1)
    return folder


@pytest.mark.parametrize("change", [
    {"weight_decay": 1e-3}, {"augment": False}, {"warmup_epochs": 1.0}, {"test_limit": 8},
    {"seed": 1}, {"momentum": 0.8}, {"lr_floor": 1e-5}, {"T": 2}, {"epochs": 3},
    {"encoding": "ttfs"}])
def test_resume_refuses_each_result_changing_setting(mini, stopped_run, change):
    _, (train, test) = mini
    (name, value), = change.items()
    with pytest.raises(ValueError, match=rf"resume: .*{name}=.*--override"):
        Trainer(_cfg(**change), stopped_run, train, test, resume=True, progress=False)
    t = Trainer(_cfg(**change), stopped_run, train, test, resume=True, progress=False,
                override={name})
    t.close()
    assert t.changes == [(name, getattr(_cfg(), name), value)]


@pytest.mark.parametrize("change", [{"train_limit": 48}, {"batch_size": 8}, {"model": "wrn20_1"}])
def test_resume_never_changes_what_defines_a_step(mini, stopped_run, change):
    _, (train, test) = mini
    (name, _), = change.items()
    with pytest.raises(ValueError, match=rf"{name}=.*cannot change when resuming"):
        Trainer(_cfg(**change), stopped_run, train, test, resume=True, progress=False,
                override={name})


def test_resume_accepts_settings_that_change_no_result_and_refuses_other_data(
        mini, stopped_run):
    _, (train, test) = mini
    Trainer(_cfg(checkpoint_every=7, eval_batch_size=50), stopped_run, train, test,
            resume=True, progress=False).close()
    other = data.ArrayDataset(train.images[:24], train.labels[:24], train.label_names)
    with pytest.raises(ValueError, match="trained on 32 images, this training set has 24"):
        Trainer(_cfg(), stopped_run, other, test, resume=True, progress=False)


# ------------------------------------------------------------------ rows 3-4: one run per folder
def test_a_second_trainer_on_a_held_folder_is_refused_until_the_first_ends(mini, tmp_path):
    _, (train, test) = mini
    first = Trainer(_cfg(), tmp_path, train, test, progress=False)
    with pytest.raises(FolderBusy, match=rf"{tmp_path} is in use by another run \(pid "
                                         rf"{os.getpid()}\)"):
        Trainer(_cfg(), tmp_path, train, test, progress=False)
    first.close()
    Trainer(_cfg(), tmp_path, train, test, progress=False).close()


HOLD = ("import sys, time\n"
        "from snnlite.io.run_folder import RunFolder\n"
        "held = RunFolder(sys.argv[1]).acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(600)\n")


def test_a_run_in_another_process_blocks_the_folder_until_it_dies(mini, tmp_path, capsys):
    path, _ = mini
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        rc, _, err = _main(capsys, ["train", "--data", path, *CLI_RUN, "--out", tmp_path])
        assert rc == 2
        _one_line_error(err, "in use by another run", f"pid {holder.pid}")
        assert not (tmp_path / "config.json").exists()
    finally:
        holder.kill()  # SIGKILL: the kernel drops the lock with the process
        holder.wait()
    RunFolder(tmp_path).acquire().release()


def _foreign_run(folder):
    folder.mkdir(parents=True, exist_ok=True)
    files = {"best.h5": b"another run's best model",
             "config.json": json.dumps(dataclasses.asdict(_cfg(seed=7))).encode(),
             "metrics.jsonl": b'{"epoch": 1}\n'}
    for k, v in files.items():
        (folder / k).write_bytes(v)
    return files


@pytest.mark.parametrize("resume", [False, True])
def test_another_runs_files_are_never_overwritten(mini, tmp_path, resume):
    _, (train, test) = mini
    files = _foreign_run(tmp_path)
    err = ValueError if resume else FileExistsError
    with pytest.raises(err, match="seed=7" if resume else "holds another run"):
        Trainer(_cfg(), tmp_path, train, test, resume=resume, progress=False)
    (tmp_path / "config.json").unlink()
    del files["config.json"]
    with pytest.raises(FileExistsError, match="best.h5"):
        Trainer(_cfg(), tmp_path, train, test, resume=resume, progress=False)
    for k, v in files.items():
        assert (tmp_path / k).read_bytes() == v


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_over(mini, tmp_path):
    _, (train, test) = mini
    _crashed_run(tmp_path, train, test, step=0)  # config.json, no last.h5
    assert not (tmp_path / "last.h5").exists()
    t = Trainer(_cfg(), tmp_path, train, test, resume=True, progress=False)
    assert t.state["step"] == 0
    t.close()


# ------------------------------------------------------------------ row 2: NaN teacher
def test_a_checkpoint_with_nan_weights_is_refused_by_every_command(mini, tmp_path, capsys):
    path, (train, test) = mini
    _crashed_run(tmp_path, train, test, step=1)
    ck = tmp_path / "last.h5"
    with h5py.File(ck, "r+") as f:
        for k in ("0.weight", "3.weight"):
            f["model"][k][...] = np.nan
    with pytest.raises(NonFiniteError, match=r"NaN or infinity in 2 tensor\(s\): 0.weight, "
                                             r"3.weight") as e:
        load_model(ck)
    assert e.value.names == ["0.weight", "3.weight"]
    for cmd in (["eval", ck, "--data", path, "--limit", "4"],
                ["export", ck, tmp_path / "m.nir"], ["audit", ck, "--data", path]):
        rc, _, err = _main(capsys, cmd)
        assert rc == 2, cmd
        _one_line_error(err, "0.weight, 3.weight")
    assert not (tmp_path / "m.nir").exists()


def test_model_forward_refuses_non_finite_input_and_empty_batches():
    model = snnlite.models.cifarnet_small(seed=0)
    x = np.zeros((2, 1, 3, 32, 32), np.float32)
    for bad in (np.nan, np.inf, -np.inf):
        y = x.copy()
        y[1, 0, 2, 5, 7] = bad
        with pytest.raises(ValueError, match=r"input x holds NaN or infinity \(at \[1, 0, 2, "
                                             r"5, 7\]\)"):
            model.forward(y)
    direct = np.broadcast_to(np.full((1, 1, 3, 32, 32), np.nan, np.float32), (4, 1, 3, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        model.forward(direct)
    for shape in ((0, 1, 3, 32, 32), (2, 0, 3, 32, 32)):
        with pytest.raises(ValueError, match="at least one time step and one sample"):
            model.forward(np.zeros(shape, np.float32))
    model.check_input = False  # the switch for inputs known to be finite
    assert model.forward(np.full((1, 1, 3, 32, 32), np.nan, np.float32)).shape == (1, 10)


def test_backward_before_forward_says_what_to_do():
    model = snnlite.models.cifarnet_small(seed=0)
    with pytest.raises(RuntimeError, match="call forward first"):
        model.backward(np.zeros((1, 10), np.float32))
    for layer in (snnlite.nn.Conv2d(3, 4, 3), snnlite.nn.Linear(3, 4), snnlite.nn.LIF(),
                  snnlite.nn.BatchNorm2d(3), snnlite.nn.TimeMean(), snnlite.nn.Flatten()):
        with pytest.raises(RuntimeError, match="call forward"):
            layer.backward(np.zeros((1, 1, 4), np.float32))


# ------------------------------------------------------------------ rows 8-10: the command line
@pytest.mark.parametrize("args,needle", [
    (["train", "--train-limit", "-5"], "--train-limit: expected a positive integer, got -5"),
    (["train", "--test-limit", "0"], "--test-limit: expected a positive integer, got 0"),
    (["train", "--lr", "nan"], "--lr: expected a finite number > 0, got nan"),
    (["train", "--lr", "0"], "--lr: expected a finite number > 0"),
    (["train", "--weight-decay", "-1"], "--weight-decay: expected a finite number >= 0"),
    (["train", "--epochs", "0"], "--epochs: expected a positive integer"),
    (["train", "--override", "speed"], "--override: unknown setting 'speed'"),
    (["train", "--override", "=3"], "expected NAME=VALUE"),
    (["train", "--override", "speed=3"], "unknown setting 'speed'"),
    (["train", "--override", "lr=fast"], "lr: expected float or NoneType, got 'fast'"),
    (["eval", "x.h5", "--limit", "0"], "--limit: expected a positive integer, got 0"),
    (["eval", "x.h5", "--limit", "-1"], "--limit: expected a positive integer, got -1"),
    (["eval", "x.h5", "--T", "0"], "--T: expected a positive integer"),
    (["audit", "x.h5", "--samples", "0"], "--samples: expected a positive integer"),
    (["transfer", "--teacher", "x.h5", "--epochs", "1", "--alpha", "2"],
     "--alpha: expected a number in [0, 1], got 2.0"),
    (["bench", "--T", "4", "0"], "--T: expected a positive integer, got 0"),
    (["export", "x.h5", "y.nir", "--dt", "-1"], "--dt: expected a finite number > 0"),
    (["train", "--T", "x"], "invalid int value: 'x'"),
])
def test_number_flags_are_range_checked_in_one_line(capsys, args, needle):
    rc = None
    try:
        rc, _, err = _main(capsys, args)
    except SystemExit as e:  # argparse's own errors
        rc, err = e.code, capsys.readouterr().err
    assert rc == 2
    _one_line_error(err, needle)


def test_an_internal_error_is_one_line_unless_debug(monkeypatch, capsys):
    from snnlite.cli import eval as eval_cmd

    def broken(args):
        raise AttributeError("'NoneType' object has no attribute 'shape'")

    monkeypatch.setattr(eval_cmd, "run", broken)
    monkeypatch.setattr(cli, "build_parser", _parser_with(eval_cmd, broken))
    rc, _, err = _main(capsys, ["eval", "x.h5"])
    assert rc == 1
    _one_line_error(err, "AttributeError", "internal error", "--debug")
    with pytest.raises(AttributeError):
        cli.main(["eval", "x.h5", "--debug"])


def _parser_with(module, func):
    build = cli.build_parser

    def patched():
        p = build()
        sub = next(a for a in p._actions if a.dest == "command")
        sub.choices["eval"].set_defaults(func=func)
        return p
    return patched


def test_unwritable_out_is_one_clear_line(mini, tmp_path, capsys):
    path, _ = mini
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rc, _, err = _main(capsys, ["train", "--data", path, *CLI_RUN, "--out", blocker / "run"])
    assert rc == 2
    _one_line_error(err, "cannot create or write the run folder", "choose another")
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        rc, _, err = _main(capsys, ["train", "--data", path, *CLI_RUN, "--out", ro / "run"])
        assert rc == 2
        _one_line_error(err, "ro/run")


def test_disk_full_keeps_the_last_checkpoint_and_says_so(mini, tmp_path, monkeypatch, capsys):
    path, (train, test) = mini
    _crashed_run(tmp_path, train, test, step=1)
    before = (tmp_path / "last.h5").read_bytes()
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    rc, _, err = _main(capsys, ["train", "--data", path, *CLI_RUN, "--out", tmp_path,
                                "--resume"])
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert rc == 2
    _one_line_error(err, f"cannot write {tmp_path}", "No space left on device",
                    "free some disk space")
    assert (tmp_path / "last.h5").read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("arrays,needle", [
    ({"x_train": np.zeros((4, 32, 32, 3), np.float32)}, "missing array(s) y_train, x_test"),
    ({"images": np.zeros((4, 32, 32, 3), np.uint8)}, "missing array(s) x_train"),
    ({k: np.zeros((4, 32, 32, 3), np.float32) if k[0] == "x" else np.zeros(4, np.int64)
      for k in ("x_train", "y_train", "x_test", "y_test")},
     "x_train must be uint8 images, got float32 (floats in [0, 1]: store"),
    ({k: np.zeros((4, 3, 32, 32), np.uint8) if k[0] == "x" else np.zeros(4, np.int64)
      for k in ("x_train", "y_train", "x_test", "y_test")}, "x_train must be HWC"),
    ({k: np.zeros((4, 32, 32, 3), np.uint8) if k[0] == "x" else np.zeros(4, np.float32)
      for k in ("x_train", "y_train", "x_test", "y_test")}, "y_train must be 4 integer labels"),
])
def test_bad_npz_files_are_clear_errors(tmp_path, capsys, arrays, needle):
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="bad.npz: ") as e:
        data.load_mini(bad)
    assert needle in str(e.value)
    rc, _, err = _main(capsys, ["train", "--data", bad, *CLI_RUN, "--out", tmp_path / "r"])
    assert rc == 2
    _one_line_error(err, needle)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="junk.npz: not a readable .npz"):
        data.load_mini(tmp_path / "junk.npz")


# ------------------------------------------------------------------ row 11: stale temporaries
def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temporaries_of_killed_writes_are_removed_when_the_folder_is_used(mini, tmp_path):
    _, (train, test) = mini
    dead, live = _dead_pid(), os.getppid()
    stale = [f".last.h5.{dead}.0a1b2c3d.tmp", ".last.h5.k3j2h1g0.tmp",  # pid-less: older
             f".metrics.jsonl.{dead}.ffffffff.tmp"]
    kept = [f".last.h5.{live}.0a1b2c3d.tmp", ".notes.txt.k3j2h1g0.tmp", "keep.tmp"]
    for n in stale + kept:
        (tmp_path / n).write_bytes(b"x" * 100)
    t = Trainer(_cfg(), tmp_path, train, test, progress=False)
    t.close()
    assert sorted(t.folder.removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept + [".lock"])

    from data_tools import prepare
    from data_tools._io import atomic_target
    target = tmp_path / "cifar10.h5"
    part = tmp_path / f".cifar10.h5.{dead}.deadbeef.part"
    download = tmp_path / f".cifar-10-python.tar.gz.{dead}.0badc0de.part"
    mine = tmp_path / f".cifar10.h5.{live}.deadbeef.part"  # a live writer's
    for p in (part, download, mine):
        p.write_bytes(b"half a conversion")
    with atomic_target(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and mine.exists()
    assert not part.exists() and not download.exists()
    part.write_bytes(b"half a conversion")
    said = []
    with pytest.raises(FileNotFoundError):  # no archive: but the cache is tidied first
        prepare("cifar10", src=tmp_path / "missing.tar.gz", cache_dir=tmp_path, log=said.append)
    assert not part.exists() and mine.exists() and "killed download" in said[0]


# ------------------------------------------------------------------ kill and resume
def test_random_crashes_and_resumes_end_like_an_uninterrupted_run(mini, tmp_path):
    """Crash at random steps (and leave what a killed write leaves), resume each time: the
    final weights and metrics equal an uninterrupted run's."""
    _, (train, test) = mini
    cfg = _cfg(epochs=3, checkpoint_every=2)
    ref = Trainer(cfg, tmp_path / "ref", train, test, progress=False)
    ref.fit()
    rng = np.random.default_rng(16)
    run, dead, resumed, rounds = tmp_path / "run", _dead_pid(), False, 0
    while True:
        run.mkdir(exist_ok=True)  # what a write killed in the previous round left
        (run / f".last.h5.{dead}.{rounds:08x}.tmp").write_bytes(b"\x89HDF torn")
        t = CrashAt(cfg, run, train, test, resume=resumed, progress=False)
        t.crash_step = t.state["step"] + int(rng.integers(1, 4))
        try:
            t.fit()
            break
        except RuntimeError:
            rounds, resumed = rounds + 1, True
    assert rounds >= 2
    assert not list(run.glob(".*.tmp"))
    a, b = load_checkpoint(tmp_path / "ref" / "last.h5"), load_checkpoint(run / "last.h5")
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k], b["model"][k], err_msg=k)
    assert [h["train_loss"] for h in a["state"]["history"]] == \
        [h["train_loss"] for h in b["state"]["history"]]


KILL_LOOP = """
import sys
from snnlite import data
from snnlite.io.config import TrainConfig
from snnlite.train import Trainer
train, test = data.load_mini(sys.argv[1])
cfg = TrainConfig(model="cifarnet_small", T=1, epochs=3, batch_size=16, train_limit=32,
                  test_limit=16, checkpoint_every=1, warmup_epochs=0.5)
Trainer(cfg, sys.argv[2], train, test, resume=True, progress=False).fit()
print("done")
"""


@pytest.mark.slow
def test_random_sigkills_then_resume_match_an_uninterrupted_run(mini, tmp_path):
    """SIGKILL a real training process at random moments (mid-step, mid-write), resume,
    repeat: never a torn last.h5, and the end equals an uninterrupted run."""
    path, (train, test) = mini
    cfg = TrainConfig(model="cifarnet_small", T=1, epochs=3, batch_size=16, train_limit=32,
                      test_limit=16, checkpoint_every=1, warmup_epochs=0.5)
    Trainer(cfg, tmp_path / "ref", train, test, progress=False).fit()
    rng = np.random.default_rng(7)
    run, kills = tmp_path / "run", 0
    for attempt in range(30):  # the first kills come early, then later and later
        proc = subprocess.Popen([sys.executable, "-c", KILL_LOOP, path, str(run)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = proc.communicate(timeout=float(rng.uniform(2, 4) + attempt))
            assert proc.returncode == 0, err
            break
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            kills += 1
            if (run / "last.h5").exists():
                load_checkpoint(run / "last.h5")  # whole and finite after every kill
    else:
        pytest.fail("the run never finished")
    assert kills >= 2, kills
    a, b = load_checkpoint(tmp_path / "ref" / "last.h5"), load_checkpoint(run / "last.h5")
    for k in a["model"]:
        np.testing.assert_array_equal(a["model"][k], b["model"][k], err_msg=k)
