"""The README's five-minute tour runs as written (with the data folder of this machine), and
the scripts and files its commands name are where it says."""
import json
import os
import pathlib
import re
import runpy
import sys

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs(mini_npz):
    text = README.read_text()
    code = re.search(r"## A five-minute tour\n\n```python\n(.*?)```", text, re.S).group(1)
    assert '"../shared/data/cifar10-mini.npz"' in code
    code = code.replace('"../shared/data/cifar10-mini.npz"', repr(os.fspath(mini_npz)))
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["logits"].shape == (32, 10)
    with pytest.raises(KeyError):
        namespace["torch"]


REPO = README.parent
# a repository path as the README names it: a script in a command, a result file, a folder
_REPO_PATH = re.compile(r"(?<![\w./~-])((?:examples|tests|snnlite|data_tools)/[\w./-]*\w)")
_SCRIPT = re.compile(r"(?<![\w/])python3? ([\w./-]+\.py)\b")


def test_readme_paths_exist():
    """Every repository path the README names exists, so its commands run as written from
    the repository root (``runs/...`` alone is a user's run folder, made by the command)."""
    paths = set(_REPO_PATH.findall(README.read_text()))
    assert "examples/benchmarks/bench_train.py" in paths
    assert "examples/runs/teacher-cifarnet_small-T4/last.h5" in paths
    assert not [p for p in paths if not (REPO / p).exists()]


def test_readme_scripts_start(capsys, monkeypatch):
    """Each script the README runs with ``python`` parses its arguments (``--help``)."""
    scripts = sorted(set(_SCRIPT.findall(README.read_text())))
    assert "examples/benchmarks/bench_event.py" in scripts
    for script in scripts:
        monkeypatch.setattr(sys, "argv", [script, "--help"])
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(REPO / script), run_name="__main__")
        assert exit_.value.code == 0, script
        assert "usage:" in capsys.readouterr().out, script


@pytest.mark.parametrize("model", ["cifarnet_small", "wrn20_1"])
def test_readme_depth_tables_are_the_committed_results(model):
    """Each row of the README's spike-collapse tables is the committed ``depth_stats.py``
    result, to the printed digits."""
    res = json.loads((REPO / "examples" / "runs" / "depth" / f"{model}.json").read_text())
    text = README.read_text()
    direct, ttfs = res["layers"]["direct"], res["layers"]["ttfs"]
    assert len(direct) == len(ttfs) > 0
    for d, t in zip(direct, ttfs):
        f, g = d["firing_rate"], t["firing_rate"]
        p, q = d["preact_pos_mean"], t["preact_pos_mean"]
        name = f"LIF {d['layer']}" if d["layer"].isdigit() else d["layer"]  # index or path
        row = (f"| {name} ({d['depth']}) | {100 * f:.2f}% | {100 * g:.2f}% | {g / f:.2f} "
               f"| {p:.3f} | {q:.3f} | {q / p:.2f} |")
        assert row in text, row
