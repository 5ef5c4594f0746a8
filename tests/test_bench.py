"""The throughput harness: FLOP counts and the `snnlite bench` command."""
import json
import subprocess
import sys

import snnlite
from snnlite.bench import dense_flops

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
