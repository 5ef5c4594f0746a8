"""examples/depth_stats.py: per-layer firing and pre-activation under direct and TTFS."""
import importlib.util
from pathlib import Path

import numpy as np

from snnlite import data, encoding, models, nn

SPEC = importlib.util.spec_from_file_location(
    "depth_stats", Path(__file__).resolve().parents[1] / "examples" / "depth_stats.py")
depth_stats = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(depth_stats)


def test_layer_stats_match_the_models_own_spike_counts(rng):
    model = models.cifarnet_small(seed=3).eval()
    images = rng.integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    mean, std = data.CIFAR10_MEAN, data.CIFAR10_STD
    stats = depth_stats.layer_stats(model, images, [("direct", "direct", 4), ("ttfs", "ttfs", 8)],
                                    mean, std, batch_size=4)
    lifs = nn.trace(model, (3, 32, 32)).of_kind("lif")
    for label, enc, T in (("direct", "direct", 4), ("ttfs", "ttfs", 8)):
        x = images.astype(np.float32) / np.float32(255)
        model.forward(encoding.model_input(x, enc, T, mean, std))  # the fused path
        rows = stats[label]
        assert [r["layer"] for r in rows] == [n.name for n in lifs]
        assert [r["depth"] for r in rows] == [1, 2, 3, 4]
        for r, n in zip(rows, lifs):
            assert r["firing_rate"] == n.module.spike_count / (len(images) * T * n.size)
            assert r["preact_pos_mean"] >= max(r["preact_mean"], 0)
