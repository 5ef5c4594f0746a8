"""The command line's own surface: help for every option with its default, ``--version``,
the command list, table rounding, and the first screen of a run (summary block, compile
notice, time estimate and the warning past an hour)."""
import argparse

import numpy as np
import pytest
from conftest import shared_data_dir

from snnlite import _config, cli, data
from snnlite._version import __version__
from snnlite.cli import banner as B
from snnlite.cli.common import number, print_table
from snnlite.io.config import TrainConfig
from snnlite.train import ETA_STEPS, Trainer


def _commands():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub


def test_every_option_has_help_and_shows_its_default():
    parser, sub = _commands()
    assert len(sub.choices) == len(cli.COMMANDS) and "plot" in sub.choices
    bad = []
    for name, p in sub.choices.items():
        fmt = p._get_formatter()
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                continue
            flag = f"snnlite {name} {'/'.join(a.option_strings) or a.dest}"
            if not (a.help or "").strip():
                bad.append(f"{flag}: no help")
                continue
            shown = fmt._expand_help(a) if a.help else ""
            # on/off flags and repeatable options: nothing happens unless given
            flag_only = a.nargs == 0 or (isinstance(a, argparse._AppendAction)
                                         and a.default is None)
            if a.option_strings and not flag_only and not a.required and "default" not in shown:
                bad.append(f"{flag}: the help does not show the default ({shown!r})")
    assert not bad, "\n".join(bad)


def test_defaults_are_shown_as_typed():
    _, sub = _commands()
    text = sub.choices["audit"].format_help()
    assert "(default: direct ttfs)" in " ".join(text.split())
    text = " ".join(sub.choices["train"].format_help().split())
    assert "time steps per image (default: 8)" in text
    assert "(default: 0.1 * batch size / 256)" in text  # a None default says what it means
    assert "(default: None)" not in text and "(default: False)" not in text


def test_top_level_help_lists_every_command_on_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    lines = text[text.index("commands:"):].splitlines()
    _, sub = _commands()
    for action in sub._choices_actions:
        assert [ln for ln in lines if ln.split()[:1] == [action.dest]] == \
            [f"    {action.dest:<12}    {action.help}"], action.dest
    assert "COMMAND\n" not in text and "``" not in text
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"snnlite {__version__}\n"


# ---------------------------------------------------------------- tables
@pytest.mark.parametrize("v, shown", [
    (0.87834, "0.8783"), (49.6852, "49.69"), (7.4, "7.400"), (23937.4, "23,937"),
    (3.1e-06, "3.1e-06"), (0.0, "0"), (781, "781"), (50000, "50,000"), (-0.25, "-0.2500"),
    (float("nan"), "nan"), ("ttfs", "ttfs"), (True, "True")])
def test_number_keeps_four_significant_digits(v, shown):
    assert number(v) == shown


def test_print_table_formats_and_blanks(capsys):
    print_table(["epoch", "train_loss", "wall_s"],
                [{"epoch": 0, "wall_s": 0.0}, {"epoch": 1, "train_loss": 1.23456, "wall_s": 7.4},
                 {"epoch": 2, "train_loss": 0.98765, "wall_s": 23937.44}], {"wall_s": ",.1f"})
    assert capsys.readouterr().out.splitlines() == [
        "epoch  train_loss    wall_s",
        "    0                   0.0",
        "    1       1.235       7.4",
        "    2      0.9877  23,937.4"]


# ---------------------------------------------------------------- the first screen
def _tiny():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    return data.ArrayDataset(images, rng.integers(0, 10, 40)), \
        data.ArrayDataset(images[:10], rng.integers(0, 10, 10))


def test_banner_says_what_the_run_will_do(tmp_path, monkeypatch):
    train, test = _tiny()
    cfg = TrainConfig(T=3, epochs=4, batch_size=16, encoding="ttfs")
    tr = Trainer(cfg, tmp_path / "run", train, test, progress=False)
    try:
        s = tr.summary()
    finally:
        tr.close()
    assert (s["train_images"], s["test_images"], s["steps_per_epoch"], s["total_steps"]) == \
        (40, 10, 2, 8)  # the last, partial batch is dropped
    monkeypatch.setattr(B, "kernel_notice", lambda: None)
    text = B.banner("train", s, "/data/cifar10-mini.npz")
    params = sum(p.data.size for p in tr.model.parameters())
    assert text.splitlines() == [
        f"snnlite train: a new run in {tmp_path / 'run'}",
        f"  model     cifarnet_small, {params:,} parameters",
        "  data      cifar10: 40 training / 10 test images, 3x32x32",
        "  source    /data/cifar10-mini.npz",
        "  input     ttfs coding, T=3 time steps",
        "  steps     4 epochs x 2 steps of 16 images = 8 steps",
        "  lr        0.00625, linear warmup over 1 epoch(s) from lr/10, then cosine to 0",
        f"  time      estimated after the first {ETA_STEPS + 1} steps"]
    resumed = B.banner("transfer", dict(s, step=6, epoch=2, teacher="t.h5", teacher_T=4,
                                        method="skd", alpha=0.4, temperature=4.0))
    assert resumed.splitlines()[0].endswith("at epoch 3 (step 6 of 8)")
    assert "  teacher   t.h5 (frozen, direct coding, T=4)" in resumed
    assert "  method    skd: 0.4 x CE + 0.6 x K^2 x KL(teacher || student), K=4" in resumed


def test_compile_notice_only_for_a_cold_cache(tmp_path, monkeypatch):
    cold = tmp_path / "kernels-0123"
    assert B.kernels_cold(cold)
    line = B.kernel_notice(cold)
    assert "compile before the first step" in line and str(cold) in line and "\n" not in line
    cold.mkdir()
    (cold / "conv.im2col-12.py311.nbi").write_bytes(b"")
    assert B.kernel_notice(cold) is None
    monkeypatch.setattr(_config, "CACHE", False)  # SNNLITE_NO_CACHE=1: always compiles, no notice
    assert B.kernel_notice(tmp_path / "empty") is None


def test_estimate_after_the_first_steps_and_warning_past_an_hour(tmp_path):
    train, test = _tiny()
    tr = Trainer(TrainConfig(T=2, epochs=100, batch_size=8), tmp_path / "r", train, test,
                 progress=False)
    tr.close()
    seen = []
    tr.on_eta = seen.append
    tr._time_step(30.0)  # the first step (compilation) is not timed
    for _ in range(ETA_STEPS + 3):
        tr._time_step(2.0)
    assert len(seen) == 1  # once
    est = seen[0]
    assert est["timed"] == ETA_STEPS and est["step_s"] == 2.0
    assert est["steps"] == 500 and est["train_s"] == 1000.0
    assert est["eval_s"] == pytest.approx(100 * 10 / 8 * 2.0 / 4)
    lines = B.eta_lines(est, 100)
    assert lines == ["  time      about 18 min in all, 18 min left (500 steps x 2 s + 62 s of "
                     "evaluation)"]
    long = B.eta_lines(dict(est, step_s=10.0, train_s=5000.0, total_s=5000.0 + 125), 100)
    text = " ".join(" ".join(long[1:]).split())
    assert text.startswith("warning: about 85 min to go. To shorten the run: fewer --epochs "
                           "(--epochs 70 takes about an hour)")
    assert "--T" in text and "--train-limit" in text and "snnlite train --resume" in text


def test_train_command_prints_the_first_screen(tmp_path, capsys):
    mini = shared_data_dir() / "cifar10-mini.npz"
    if not mini.exists():
        pytest.skip(f"{mini} not found (set SNNLITE_DATA)")
    argv = ["train", "--data", str(mini), "--epochs", "1", "--T", "2", "--batch-size", "8",
            "--train-limit", "64", "--test-limit", "16", "--no-progress", "--log-every", "4",
            "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    status = [line for line in out if line.startswith("epoch 1 batch ")]
    assert [line.split(":")[0] for line in status] == ["epoch 1 batch 4/8 step 4",
                                                       "epoch 1 batch 8/8 step 8"]
    assert out[0] == f"snnlite train: a new run in {tmp_path / 'r'}"
    assert out[1].startswith("  model     cifarnet_small, 2") and "parameters" in out[1]
    assert out[2] == "  data      cifar10: 64 training / 16 test images, 3x32x32"
    assert out[5] == "  steps     1 epochs x 8 steps of 8 images = 8 steps"
    assert any(line.startswith("  time      about") and "left (2 steps x" in line
               for line in out)
    assert "epoch  train_loss  train_acc  test_loss  test_acc  wall_s" in out
