"""The throughput harness: FLOP counts and the `snnlite bench` command."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import snnlite
from snnlite.bench import dense_flops

_REPO = Path(__file__).resolve().parents[1]

# cifarnet_small, MACs per image and step: conv 3-32, 32-64 at 32x32, 64-128 at 16x16,
# 128-128 at 8x8 (3x3 kernels), linear 2048-10
FWD_MACS = 32 * 3 * 9 * 1024 + 64 * 32 * 9 * 1024 + 128 * 64 * 9 * 256 + 128 * 128 * 9 * 64 \
    + 2048 * 10


def test_dense_flops_of_cifarnet_small():
    m = snnlite.models.cifarnet_small()
    assert dense_flops(m, 1, train=False) == 2 * FWD_MACS
    first = 32 * 3 * 9 * 1024  # the first layer computes no input gradient
    assert dense_flops(m, 4, train=True) == 4 * 2 * (3 * FWD_MACS - first)
    assert m.training  # restored


def test_bench_command_reports_throughput():
    out = subprocess.run([sys.executable, "-m", "snnlite", "bench", "--T", "2", "--batch-size",
                          "4", "--steps", "1", "--warmup", "1", "--format", "json"],
                         capture_output=True, text=True, check=True)
    (row,) = json.loads(out.stdout)
    assert row["T"] == 2 and row["train_img_s"] > 0 and row["infer_img_s"] > 0
    assert 0 < row["train_peak_fraction"] and row["sgemm_gflops"] > 0


def test_bench_with_trained_weights_reports_their_spike_rate(tmp_path):
    """--weights measures at a checkpoint's firing rates: with every batch-norm scale
    multiplied by 4 more neurons cross the threshold, so the rate must rise."""
    import dataclasses

    from snnlite.bench import bench_images, measure
    from snnlite.io.checkpoint import save_checkpoint
    from snnlite.io.config import TrainConfig

    m = snnlite.models.cifarnet_small()
    state = m.state_dict()
    for k in state:
        if k.endswith(".weight") and state[k].ndim == 1:  # batch-norm scales
            state[k] = state[k] * 4
    ck = tmp_path / "m.h5"
    save_checkpoint(ck, state, dataclasses.asdict(TrainConfig(T=2)), {"epoch": 0, "step": 0})
    images = bench_images(4)
    fresh = measure("cifarnet_small", 2, 4, 1, 1, images)
    hot = measure("cifarnet_small", 2, 4, 1, 1, images, weights=ck)
    assert hot["weights"] == str(ck) and fresh["weights"] is None
    assert 0 <= fresh["spike_rate"] < hot["spike_rate"] <= 1
    out = subprocess.run([sys.executable, "-m", "snnlite", "bench", "--T", "2", "--batch-size",
                          "4", "--steps", "1", "--warmup", "1", "--format", "json",
                          "--weights", str(ck)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0]["spike_rate"] == hot["spike_rate"]


def test_kernel_profile_accounts_for_the_step():
    """The per-kernel breakdown splits a training step into classes that add up to it, the
    convolution classes with the FLOPs their paths execute; the functional layer is left as
    it was."""
    from snnlite import bench
    from snnlite.nn import functional as F

    before = F.conv2d_forward
    r = bench.profile("cifarnet_small", 2, 4, 1, bench.bench_images(4))
    assert F.conv2d_forward is before and F.PROFILE is None
    train = r["train"]
    assert {"conv dx", "conv dw", "bn+lif forward", "lif+bn backward", "linear", "rest",
            "total"} <= set(train)
    assert any(k.startswith("conv fwd") for k in train) and "conv dx" not in r["infer"]
    # inference at a fresh model's firing: spikes feed the fused event convolutions
    assert r["infer"]["conv+bn+lif forward (inference, event)"]["ms"] > 0
    parts = sum(v["ms"] for k, v in train.items() if k != "total")
    assert abs(parts - train["total"]["ms"]) < 1e-6 * train["total"]["ms"] + 1e-9
    # the input gradient is dense: Winograd's 2.25x fewer multiply-adds than the 3 dense
    # 3x3 convolutions that need it (conv 32-64 at 32x32, 64-128 at 16x16, 128-128 at 8x8)
    dense = 2 * 9 * (64 * 32 * 1024 + 128 * 64 * 256 + 128 * 128 * 64) * 2 * 4
    assert train["conv dx"]["gflop"] * 1e9 == dense * 16 / 36
    assert train["bn+lif forward"]["gb"] > 0 and 0 <= r["spike_rate"] <= 1
    assert bench.memory_gbs(mb=8, reps=1) > 0


def test_bench_train_script_help():
    out = subprocess.run([sys.executable, "examples/benchmarks/bench_train.py", "--help"],
                         capture_output=True, text=True, check=True, cwd=_REPO)
    for flag in ("--torch-python", "--no-compile", "--threads", "--weights", "--no-profile"):
        assert flag in out.stdout


@pytest.mark.slow
def test_bench_train_script_runs_without_torch(tmp_path):
    """End to end at a tiny size: throughput of trained and fresh weights, the per-kernel
    breakdown, thread scaling, and the torch reference skipped with a note."""
    out = tmp_path / "r.json"
    env = dict(os.environ)
    env.pop("SNNLITE_TORCH_PYTHON", None)
    subprocess.run([sys.executable, "examples/benchmarks/bench_train.py", "--configs", "2x4",
                    "--repeats", "1", "--steps", "1", "--warmup", "1", "--threads", "1",
                    "--no-jit", "--json", str(out)], check=True, cwd=_REPO, env=env,
                   capture_output=True, text=True)
    r = json.loads(out.read_text())
    assert [c["weights"] for c in r["configs"]] == [
        "examples/runs/teacher-cifarnet_small-T4/last.h5", "fresh"]  # repository-relative
    assert r["configs"][0]["spike_rate"] > r["configs"][1]["spike_rate"]
    assert "eager_train_img_s" not in r["configs"][0]
    assert any("PyTorch reference skipped" in n for n in r["notes"])
    assert len(r["profiles"]) == 2 and r["scaling"][0]["workers"] == 1
