"""Compiling a model's kernels ahead of their first call (snnlite._precompile)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from numba.core import types

from snnlite import _config
from snnlite import _precompile as P

RECORDER = Path(__file__).resolve().parents[1] / "examples" / "benchmarks" / "kernel_signatures.py"
pytestmark = pytest.mark.skipif(not _config.CACHE, reason="kernel cache off")


def _env(cache):
    return dict(os.environ, NUMBA_CACHE_DIR=str(cache))


def test_types_round_trip():
    for t in (types.Array(types.float32, 3, "C"), types.Array(types.int64, 1, "A"),
              types.Array(types.uint8, 2, "C", readonly=True), types.int64, types.float64,
              types.float32, types.boolean):
        assert P._decode(json.loads(json.dumps(P._encode(t)))) == t
    assert P._encode(types.literal(3)) is None  # not from a Python call: never recorded
    assert P._encode(types.UniTuple(types.int64, 2)) is None


def test_shares_balance_the_longest_first():
    jobs = [(f"k{i}", [], s) for i, s in enumerate([9, 7, 5, 3, 2, 2, 1])]
    shares = P._shares(jobs, 2)
    totals = sorted(sum(j[2] for j in s) for s in shares)
    assert totals == [14, 15] and sum(map(len, shares)) == len(jobs)
    assert P._shares(jobs[:1], 3)[1:] == [[], []]


def test_signatures_cover_every_builtin_model():
    from snnlite.models import MODELS
    table = P.load()
    assert set(table) == set(MODELS)
    for phases in table.values():
        assert phases["train"] and set(phases) <= {"train", "eval"}
        for name, sig, seconds in phases["train"] + phases.get("eval", []):
            assert hasattr(P._kernel(name), "compile") and seconds > 0
            [P._decode(a) for a in sig]


def test_signatures_are_current():
    """What a training step and an evaluation of cifarnet_small call from Python now is what
    signatures.json holds (else: python examples/benchmarks/kernel_signatures.py)."""
    out = subprocess.run([sys.executable, str(RECORDER), "--workload", "cifarnet_small"],
                         capture_output=True, text=True, check=True)
    now = {(ph, n, json.dumps(s)) for ph, n, s, _ in json.loads(out.stdout.splitlines()[-1])}
    table = P.load()["cifarnet_small"]
    recorded = {(ph, n, json.dumps(s)) for ph, jobs in table.items() for n, s, _ in jobs}
    assert now == recorded


def test_precompile_fills_the_cache_on_several_processes(tmp_path):
    """Two processes compile a (small) recorded table into an empty cache, the helper going
    on with the evaluation's kernel; afterwards nothing is missing, a second call returns at
    once, and an unknown kernel or model is skipped."""
    f32 = ["array", "float32", 1, "C", False]
    table = {"numba": "x", "kernels": [["util.fill", [f32, "float64"], 0.3],
                                       ["util.copy", [f32, f32], 0.3],
                                       ["util.nonexistent", [f32], 0.1],
                                       ["lif.reciprocal", ["float32"], 0.2]],
             "models": {"m": {"train": [0, 1, 2], "eval": [3]}}}
    path = tmp_path / "signatures.json"
    path.write_text(json.dumps(table))
    code = ("import sys, json; from snnlite import _precompile as P; "
            "n = P.precompile('m', processes=2, progress=False, path=sys.argv[1]); P.wait(); "
            "print(json.dumps([n, P.precompile('unknown', path=sys.argv[1])]))")
    cache = tmp_path / "cache"
    run = lambda: json.loads(subprocess.run(  # noqa: E731
        [sys.executable, "-c", code, str(path)], env=_env(cache), capture_output=True,
        text=True, check=True).stdout.splitlines()[-1])
    assert run() == [2, 0]
    check = ("import sys, json; from snnlite import _precompile as P; "
             "print(json.dumps(P.missing('m', sys.argv[1])))")
    left = json.loads(subprocess.run([sys.executable, "-c", check, str(path)], env=_env(cache),
                                     capture_output=True, text=True,
                                     check=True).stdout.splitlines()[-1])
    assert left == {"train": [], "eval": []}  # the evaluation's kernel too, by the helper
    assert run() == [0, 0]


def test_an_unreadable_record_compiles_nothing(tmp_path):
    bad_entry = '{"kernels": [["util.fill", [["array", "nonsense", 1, "C", false]], 0.1]], ' \
        '"models": {"m": {"train": [0]}}}'
    for text in ("{not json", '{"kernels": [], "models": {"m": {"train": [3]}}}', "[]"):
        path = tmp_path / "signatures.json"
        path.write_text(text)
        assert P.missing("m", path) == {} and P.precompile("m", path=path) == 0
    assert P.precompile("m", path=tmp_path / "absent.json") == 0
    path.write_text(bad_entry)
    assert P.missing("m", path) == {"train": []}


def test_without_helper_processes_this_process_compiles_all(tmp_path):
    f32 = ["array", "float32", 1, "C", False]
    table = {"numba": "x", "kernels": [["util.fill", [f32, "float64"], 0.3],
                                       ["util.copy", [f32, f32], 0.3]],
             "models": {"m": {"train": [0, 1]}}}
    path = tmp_path / "signatures.json"
    path.write_text(json.dumps(table))
    code = ("import sys, subprocess; from snnlite import _precompile as P\n"
            "def refuse(*a, **k): raise OSError('no processes left')\n"
            "subprocess.Popen = refuse\n"
            "n = P.precompile('m', processes=2, progress=False, path=sys.argv[1])\n"
            "print(n, P.missing('m', sys.argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], env=_env(tmp_path / "c"),
                         capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[-2] == "2 {'train': []}"
