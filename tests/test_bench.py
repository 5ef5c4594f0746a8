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
