"""The D2E study examples: per-layer collapse (depth_stats) and the seed study (seed_study)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from snnlite import data, encoding, models, nn

SPEC = importlib.util.spec_from_file_location(
    "depth_stats", Path(__file__).resolve().parents[1] / "examples" / "depth_stats.py")
depth_stats = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(depth_stats)


@pytest.mark.parametrize("name", ["cifarnet_small", "wrn20_1"])
def test_layer_stats_match_the_models_own_spike_counts(rng, name):
    """Plain and residual graphs: a LIF fed by an ``add`` (BN output plus shortcut) is
    measured on that sum. BN biases are raised so that every layer of the untrained model
    fires and no row is trivially zero."""
    model = models.build(name, seed=3).eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.bias.data[...] = 1.0  # at threshold
    images = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    mean, std = data.CIFAR10_MEAN, data.CIFAR10_STD
    stats = depth_stats.layer_stats(model, images, [("direct", "direct", 4), ("ttfs", "ttfs", 8)],
                                    mean, std, batch_size=3)
    lifs = nn.trace(model, (3, 32, 32)).of_kind("lif")
    for label, enc, T in (("direct", "direct", 4), ("ttfs", "ttfs", 8)):
        x = images.astype(np.float32) / np.float32(255)
        model.forward(encoding.model_input(x, enc, T, mean, std))  # the fused path
        rows = stats[label]
        assert [r["layer"] for r in rows] == [n.name for n in lifs]
        assert [r["depth"] for r in rows] == list(range(1, len(lifs) + 1))
        assert all(r["firing_rate"] > 0 for r in rows)
        for r, n in zip(rows, lifs):
            assert r["firing_rate"] == n.module.spike_count / (len(images) * T * n.size)
            assert r["preact_pos_mean"] >= max(r["preact_mean"], 0)


SEEDS = importlib.util.spec_from_file_location(
    "seed_study", Path(__file__).resolve().parents[1] / "examples" / "seed_study.py")
seed_study = importlib.util.module_from_spec(SEEDS)
SEEDS.loader.exec_module(seed_study)


def test_seed_study_pools_the_per_seed_paired_tests(tmp_path, rng):
    from scipy import stats

    from snnlite.io.checkpoint import save_checkpoint
    from snnlite.transfer import mcnemar

    images = rng.integers(0, 256, (40, 3, 32, 32), dtype=np.uint8)
    labels = rng.integers(0, 10, 40)
    test = data.ArrayDataset(images, labels)
    folders, correct = [], []
    for s in range(3):
        for m, seed in (("skd", 10 + s), ("tsf", 20 + s)):
            model = models.cifarnet_small(seed=seed)
            save_checkpoint(tmp_path / f"s{s}" / m / "last.h5", model.state_dict(),
                            {"model": "cifarnet_small", "T": 2, "encoding": "ttfs"}, {})
            x = encoding.ttfs(images.astype(np.float32) / np.float32(255), 2)
            correct.append(model.eval().forward(x).argmax(1) == labels)
        folders.append(tmp_path / f"s{s}")
    res = seed_study.seed_study(folders, "skd", "tsf", test, progress=False)
    acc = np.array([c.mean() for c in correct]).reshape(3, 2)
    assert [r["skd"] for r in res["seeds"]] == list(acc[:, 0])
    assert res["skd"]["std"] == np.std(acc[:, 0], ddof=1)
    per_seed = [mcnemar(correct[2 * s], correct[2 * s + 1]) for s in range(3)]
    b, c = sum(p[0] for p in per_seed), sum(p[1] for p in per_seed)
    assert (res["pooled"]["only_skd"], res["pooled"]["only_tsf"]) == (b, c)
    assert res["pooled"]["p"] == min(1.0, 2 * stats.binom.cdf(min(b, c), b + c, 0.5))
    d = acc[:, 0] - acc[:, 1]
    if len(set(d)) > 1:
        assert np.isclose(res["paired_t_p"], stats.ttest_1samp(d, 0.0).pvalue)


SENS = importlib.util.spec_from_file_location(
    "skd_sensitivity", Path(__file__).resolve().parents[1] / "examples" / "skd_sensitivity.py")
skd_sensitivity = importlib.util.module_from_spec(SENS)
SENS.loader.exec_module(skd_sensitivity)


def test_sensitivity_grid_runs_each_cell_once_and_resumes(tmp_path, rng):
    from snnlite.io.checkpoint import save_checkpoint

    teacher = tmp_path / "teacher.h5"
    save_checkpoint(teacher, models.cifarnet_small(seed=1).state_dict(),
                    {"model": "cifarnet_small", "T": 2, "encoding": "direct",
                     "dataset": "cifar10"}, {})
    ds = data.ArrayDataset(rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8),
                           rng.integers(0, 10, 8))
    kw = dict(temperatures=(2.0,), alphas=(0.2, 0.6), epochs=1, T=2, batch_size=4,
              progress=False)
    res = skd_sensitivity.sweep(teacher, tmp_path / "grid", ds, ds, **kw)
    assert [r["cell"] for r in res["rows"]] == ["skd-K2-a0.2", "skd-K2-a0.6", "tsf"]
    for r in res["rows"]:
        cfg = json.loads((tmp_path / "grid" / r["cell"] / "config.json").read_text())
        assert cfg["method"] == r["method"] and cfg["epochs"] == 1
        if r["method"] == "skd":
            assert (cfg["temperature"], cfg["alpha"]) == (r["temperature"], r["alpha"])
    again = skd_sensitivity.sweep(teacher, tmp_path / "grid", ds, ds, **kw)  # all finished
    assert [r["final_acc"] for r in again["rows"]] == [r["final_acc"] for r in res["rows"]]
    text = skd_sensitivity.table(res)
    assert "K \\ alpha" in text and "TSF (reference)" in text
    full = skd_sensitivity.full_test(again, tmp_path / "grid", ds, progress=False)
    assert full["full_test_images"] == len(ds)
    on_disk = json.loads((tmp_path / "grid" / "results.json").read_text())
    for r, d in zip(full["rows"], on_disk["rows"]):
        assert d["full_acc"] == r["full_acc"]
        assert 0 <= r["full_acc"] <= 1 and ("vs_tsf" in r) == (r["method"] == "skd")
        if r["method"] == "skd":
            v = r["vs_tsf"]
            assert v["only_this"] + v["only_tsf"] <= len(ds) and 0 < v["p"] <= 1
    assert "all 8 test images" in skd_sensitivity.table(full)
