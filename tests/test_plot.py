"""``snnlite plot`` and :mod:`snnlite.plot`: figures of a small run, a transfer from it and
an audit of it, all made on the mini subset; each checked by what its axes hold (titles,
labels, legends, bar heights, raster images), and its files by their format, never by
pixels. Without matplotlib only the missing-package message is tested."""
import contextlib
import importlib.util
import io
import json
import re
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import REPO, shared_data_dir

from snnlite import cli, data
from snnlite.io.checkpoint import load_model
from snnlite.plot import HINT, gather, read_audit, read_depth_stats, read_json, read_run

needs_mpl = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                               reason="matplotlib is not installed (pip install -e \".[plot]\")")

PNG = b"\x89PNG\r\n\x1a\n"
DEPTH_JSON = REPO / "examples" / "runs" / "depth" / "cifarnet_small.json"


def _main(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return out.out


@pytest.fixture(scope="module")
def mini_npz():
    path = shared_data_dir() / "cifar10-mini.npz"
    if not path.exists():
        pytest.skip(f"CIFAR-10 mini subset not found at {path} (set SNNLITE_DATA)")
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mini_npz):
    """A 2-epoch training run, a 1-epoch SKD transfer from it and an audit of it."""
    root = tmp_path_factory.mktemp("plot")
    common = ["--data", mini_npz, "--T", 2, "--batch-size", 16, "--test-limit", 32,
              "--no-progress"]
    assert cli.main([str(a) for a in ["train", "--epochs", 2, "--train-limit", 64,
                                      "--out", root / "teacher", *common]]) == 0
    assert cli.main([str(a) for a in ["transfer", "--teacher", root / "teacher" / "last.h5",
                                      "--epochs", 1, "--train-limit", 32,
                                      "--out", root / "study" / "skd", *common]]) == 0
    return root


@pytest.fixture(scope="module")
def audit_json(runs, mini_npz):
    path = runs / "audit.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["audit", str(runs / "teacher" / "last.h5"), "--data", str(mini_npz),
                         "--samples", "4", "--encoding", "direct", "ttfs",
                         "--format", "json"]) == 0
    path.write_text(buf.getvalue())
    return path


def _depth_stats(path, n=3, pos=True, **top):
    """A small depth-statistics file (``examples/depth_stats.py --json``'s schema): ``n``
    layers, TTFS firing at half the direct rate."""
    def rows(scale):
        return [{"layer": f"layer{d}.sn1", "depth": d + 1, "neurons": 10,
                 "firing_rate": 0.1 * scale * (d + 1), "preact_mean": 0.2 * scale - 0.1 * d,
                 **({"preact_pos_mean": 0.4 * scale} if pos else {})} for d in range(n)]
    report = {"checkpoint": "runs/t/last.h5", "model": "toy", "test_images": 10,
              "teacher_T": 4, "ttfs_T": 8, "layers": {"direct": rows(1.0), "ttfs": rows(0.5)},
              **top}
    path.write_text(json.dumps(report))
    return path


def _titles(fig):
    return [ax.get_title() for ax in fig.axes]


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


# ---------------------------------------------------------------- reading sources
def test_sources(runs, audit_json, tmp_path):
    src = gather([runs / "teacher", runs / "study", audit_json, runs / "teacher" / "best.h5"])
    assert [r.name for r in src.runs] == ["teacher", "skd"]  # a study folder: its runs
    assert [r.is_transfer for r in src.runs] == [False, True]
    assert src.runs[1].history[0]["epoch"] == 0 and src.runs[1].checkpoint.name == "last.h5"
    assert [a.name for a in src.audits] == ["audit"]
    assert src.checkpoints == [runs / "teacher" / "best.h5"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="neither a run folder"):
        gather([tmp_path / "empty"])
    (tmp_path / "x.json").write_text('{"rows": []}')
    with pytest.raises(ValueError, match="x.json: not an audit report"):
        read_audit(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        gather([tmp_path / "nothing-here"])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "metrics.jsonl").write_text('{"epoch": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl:2: not a JSON line"):
        read_run(tmp_path / "bad")


def test_depth_stats_are_told_from_audits_by_their_keys(tmp_path):
    src = gather([DEPTH_JSON])
    assert [d.name for d in src.depths] == ["cifarnet_small"] and not src.audits
    assert list(src.depths[0].inputs) == ["direct", "direct T=8", "ttfs"]
    assert isinstance(read_json(_depth_stats(tmp_path / "toy.json")), type(src.depths[0]))
    neither = [{"rows": []}, [1, 2], {"layers": {"direct": []}},
               {"layers": {"direct": [{"layer": "1"}], "ttfs": [{"layer": "1"}]}},
               {"format": "snnlite-audit-v0", "layers": {}}]
    for i, report in enumerate(neither):
        (tmp_path / f"x{i}.json").write_text(json.dumps(report))
        with pytest.raises(ValueError) as e:
            gather([tmp_path / f"x{i}.json"])
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{tmp_path / f'x{i}.json'}: neither an audit "
                                                   "report"), msg
        assert "examples/depth_stats.py" in msg and "snnlite audit" in msg
    # the same layers in the same order under every input, or it is not depth statistics
    report = json.loads(_depth_stats(tmp_path / "y.json").read_text())
    report["layers"]["ttfs"].reverse()
    (tmp_path / "y.json").write_text(json.dumps(report))
    with pytest.raises(ValueError, match="y.json: not depth statistics"):
        read_depth_stats(tmp_path / "y.json")
    with pytest.raises(ValueError, match="not an audit report"):
        read_audit(DEPTH_JSON)


# ---------------------------------------------------------------- figures
@needs_mpl
def test_curves_overlay_runs(runs):
    from snnlite.plot import curves_figure

    src = gather([runs / "teacher", runs / "study" / "skd"])
    fig = curves_figure(src.runs)
    loss, acc, lr = fig.axes
    assert _titles(fig) == ["Loss", "Top-1 accuracy", "Learning rate"]
    assert [ax.get_xlabel() for ax in fig.axes] == ["epoch"] * 3
    assert acc.get_ylabel() == "accuracy (%)"
    assert _legend(acc) == ["teacher", "skd"] and _legend(loss) == ["train", "test"]
    # teacher: train + test curves; transfer: train (epoch 1) + test (epochs 0, 1)
    assert len(acc.get_lines()) == 4
    test_line = acc.get_lines()[1]
    hist = src.runs[0].history
    np.testing.assert_allclose(test_line.get_ydata(), [h["test_acc"] * 100 for h in hist])
    assert "best test" in fig._suptitle.get_text()


@needs_mpl
def test_kl_gap_of_transfer_runs(runs):
    from snnlite.plot import kl_gap_figure

    src = gather([runs / "study"])
    fig = kl_gap_figure(src.runs)
    assert _titles(fig)[:2] == ["KL(teacher ‖ student) per epoch", "Accuracy gap per epoch"]
    assert _titles(fig)[2].startswith("KL against gap")
    hist = src.runs[0].history
    kl_line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(kl_line.get_ydata(), [h["kl"] for h in hist])
    np.testing.assert_allclose(fig.axes[1].get_lines()[0].get_ydata(),
                               [h["gap"] * 100 for h in hist])
    assert fig.axes[1].get_ylabel().endswith("pp")
    with pytest.raises(ValueError, match="not transfer runs: teacher"):
        kl_gap_figure(gather([runs / "teacher"]).runs)


@needs_mpl
def test_firing_from_runs_and_audits(runs, audit_json):
    from snnlite.plot import firing_figure

    src = gather([runs / "study" / "skd", audit_json])
    fig = firing_figure(src.runs, src.audits)
    assert _titles(fig) == ["Firing rate per spiking layer", "Mean firing rate per epoch",
                            "Firing rate per time step"]
    bars = fig.axes[0].patches
    series = 1 + 2  # the transfer run, the audit's two encodings
    assert len(bars) == 4 * series  # cifarnet_small: 4 LIF layers
    last = src.runs[0].history[-1]["firing_rates"]
    np.testing.assert_allclose([b.get_height() for b in bars[:4]],
                               [v * 100 for v in last.values()])
    assert _legend(fig.axes[0])[1:] == ["audit: direct, T=2", "audit: ttfs, T=2"]
    assert len(fig.axes[2].get_lines()[0].get_xdata()) == 2  # T steps
    with pytest.raises(ValueError, match="no per-layer firing rates"):
        firing_figure(gather([runs / "teacher"]).runs)


@needs_mpl
def test_energy_per_layer_and_kind(audit_json):
    from snnlite.plot import energy_figure
    from snnlite.plot.energy import unit

    audit = read_audit(audit_json)
    fig = energy_figure([audit])
    assert _titles(fig) == ["Energy per layer: audit: direct, T=2",
                            "Energy per layer: audit: ttfs, T=2", "Energy per inference"]
    assert "ESTIMATES" in fig._suptitle.get_text()
    total_ax = fig.axes[-1]
    kinds = [t.get_text() for t in fig.legends[0].get_texts()]  # one legend, below
    assert kinds[:2] == ["MAC (dense input)", "AC (spike-driven)"]
    priced = {k for r in audit.results.values() for row in r["layers"]
              for k, v in row["energy_pj_by_op"].items() if v}
    assert len(kinds) == len(priced)
    # the stacked bars of each row add up to the report's total energy, in the axis' unit
    name, scale = unit(max(r["total"]["energy_pj"] for r in audit.results.values()))
    assert total_ax.get_xlabel() == f"estimated energy ({name})"
    widths = {}
    for bar in total_ax.patches:
        row = round(bar.get_y() + bar.get_height() / 2)
        widths[row] = widths.get(row, 0.0) + bar.get_width()
    want = [r["total"]["energy_pj"] / scale for r in audit.results.values()]
    np.testing.assert_allclose([widths[i] for i in range(2)], want, rtol=1e-9)
    # direct input spends MACs in the first layer only; TTFS none at all
    layer_ax = fig.axes[0]
    assert len(layer_ax.get_xticks()) == len(audit.results["direct"]["layers"])


@needs_mpl
def test_raster_of_every_layer(runs, mini_npz):
    import snnlite.plot as plot

    model, _ = load_model(runs / "study" / "skd" / "last.h5")
    _, test = data.load_mini(mini_npz)
    image = test.images[3] / 255.0
    fig = plot.raster_figure(model, image, test.labels[3], "ttfs", 2, test.mean, test.std,
                             test.label_names, name="skd", index=3)
    titles = _titles(fig)
    assert titles[0].startswith("input events (ttfs)")
    assert [t.split(":")[0] for t in titles[1:]] == ["LIF 2", "LIF 5", "LIF 9", "LIF 13"]
    assert fig.axes[-1].get_xlabel() == "time step t"
    x, spikes, _ = plot.record_spikes(model, image, "ttfs", 2, test.mean, test.std)
    for ax, (name, s) in zip(fig.axes[1:], spikes.items()):
        shown = ax.get_images()[0].get_array()
        fired = int(s.any(0).sum())
        assert shown.shape == (min(max(fired, 1), plot.raster.MAX_ROWS), 2)
        assert f"{fired:,} of {s.shape[1]:,} neurons fired" in ax.get_title()
    assert "test image 3: label" in fig._suptitle.get_text()


@needs_mpl
def test_depth_firing_and_preactivation_per_layer():
    from snnlite.plot import depth_figure

    stats = read_depth_stats(DEPTH_JSON)
    fig = depth_figure(stats)
    assert _titles(fig) == ["(a) Firing rate per spiking layer",
                            "(b) Mean pre-activation per spiking layer",
                            "(c) Ratio TTFS (T=8) / direct (T=4)"]
    title = fig._suptitle.get_text()
    assert "cifarnet_small" in title and stats.report["checkpoint"] in title
    assert "1,000 test images" in title
    fire, pre, ratio = fig.axes[:3]
    assert [t.get_text() for t in fire.get_xticklabels()] == ["LIF 2", "LIF 5", "LIF 9",
                                                               "LIF 13"]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["direct, T=4", "direct, T=8",
                                                                  "TTFS, T=8"]
    inputs = stats.inputs
    np.testing.assert_allclose([b.get_height() for b in fire.patches],
                               [r["firing_rate"] * 100 for rows in inputs.values()
                                for r in rows])
    # per input: the positive part's (wide) bars, then the plain mean's (narrow) ones
    np.testing.assert_allclose([b.get_height() for b in pre.patches],
                               [r[k] for rows in inputs.values()
                                for k in ("preact_pos_mean", "preact_mean") for r in rows])
    assert _legend(ratio) == ["firing rate", "positive part"]
    want = [e[k] / d[k] for k in ("firing_rate", "preact_pos_mean")
            for e, d in zip(inputs["ttfs"], inputs["direct"])]
    np.testing.assert_allclose([b.get_height() for b in ratio.patches], want)
    assert all(b.get_height() < 1 for b in ratio.patches[:4])  # TTFS fires less everywhere


@needs_mpl
def test_depth_of_a_deep_model_without_positive_parts_is_stacked(tmp_path):
    from snnlite.plot import depth_figure
    from snnlite.plot.depth import WIDE

    stats = read_depth_stats(_depth_stats(tmp_path / "deep.json", n=WIDE + 1, pos=False))
    fig = depth_figure(stats)
    fire, pre, ratio = fig.axes[:3]
    assert fire.get_position().y0 > pre.get_position().y0 > ratio.get_position().y0
    assert len(pre.patches) == 2 * (WIDE + 1)  # the means only
    assert _legend(ratio) == ["firing rate"] and pre.get_legend() is None
    np.testing.assert_allclose([b.get_height() for b in ratio.patches], 0.5)
    assert [t.get_text() for t in ratio.get_xticklabels()][0] == "layer0.sn1"
    assert "toy" in fig._suptitle.get_text()


# ---------------------------------------------------------------- the command
@needs_mpl
def test_cli_writes_png_and_svg(runs, audit_json, mini_npz, capsys, tmp_path):
    out = tmp_path / "figs"
    text = _main(["plot", runs / "teacher", runs / "study", "--out", out,
                  "--format", "png", "svg"], capsys)
    names = sorted(p.name for p in out.iterdir())
    stem = runs.name  # the folder the two sources share
    assert names == [f"{stem}-{kind}.{fmt}" for kind in ("curves", "firing", "kl-gap")
                     for fmt in ("png", "svg")]
    assert text.count("wrote ") == 6
    for p in out.glob("*.png"):
        assert p.read_bytes()[:8] == PNG
    for p in out.glob("*.svg"):
        assert ET.parse(p).getroot().tag.endswith("svg")
    _main(["plot", audit_json, "--out", out], capsys)
    assert (out / "audit-energy.png").read_bytes()[:8] == PNG
    assert (out / "audit-firing.png").exists()
    _main(["plot", runs / "study" / "skd", "--kind", "raster", "--data", mini_npz,
           "--sample", 1, "--out", out, "--name", "r"], capsys)
    assert (out / "r-raster.png").read_bytes()[:8] == PNG
    assert cli.main(["plot", str(runs / "teacher"), "--kind", "kl-gap", "--out",
                     str(out)]) == 2
    assert "kl-gap: needs transfer runs" in capsys.readouterr().err
    assert cli.main(["plot", str(runs / "teacher"), "--kind", "raster", "--sample", "999",
                     "--data", str(mini_npz), "--out", str(out)]) == 2
    assert "--sample: 999 is not a test image index" in capsys.readouterr().err


@needs_mpl
def test_cli_draws_depth_one_figure_per_file(capsys, tmp_path):
    out = tmp_path / "figs"
    text = _main(["plot", DEPTH_JSON, "--out", out], capsys)  # auto: depth
    assert text == f"wrote {out / 'cifarnet_small-depth.png'}\n"
    assert (out / "cifarnet_small-depth.png").read_bytes()[:8] == PNG
    toy = _depth_stats(tmp_path / "toy.json")
    _main(["plot", DEPTH_JSON, toy, "--kind", "depth", "--out", out, "--name", "m",
           "--format", "svg"], capsys)
    for name in ("m-depth-cifarnet_small.svg", "m-depth-toy.svg"):
        assert ET.parse(out / name).getroot().tag.endswith("svg")
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.jsonl").write_text(json.dumps({"epoch": 1}) + "\n")
    assert cli.main(["plot", str(tmp_path / "r"), "--kind", "depth", "--out", str(out)]) == 2
    assert "depth: needs depth statistics" in capsys.readouterr().err
    (tmp_path / "x.json").write_text('{"rows": []}')
    assert cli.main(["plot", str(tmp_path / "x.json"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "x.json: neither an audit report" in err


def test_cli_without_matplotlib_says_how_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib fails
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "metrics.jsonl").write_text(json.dumps({"epoch": 1}) + "\n")
    assert cli.main(["plot", str(tmp_path / "r"), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"snnlite plot: error: {HINT}\n"
    assert 'pip install -e ".[plot]"' in err


def test_readme_figures_are_committed_with_their_commands():
    """Each picture the README shows is in examples/figures and follows the snnlite plot
    command that writes it (``--out examples/figures --name NAME`` -> ``NAME-KIND.png``)."""
    text = (REPO / "README.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\((examples/figures/[\w.-]+\.png)\)", text)
    assert len(images) >= 5
    for image in images:
        path = REPO / image
        assert path.read_bytes()[:8] == PNG and path.stat().st_size < 200_000, image
        name, kind = re.fullmatch(r"examples/figures/(\w+)-([\w-]+)\.png", image).groups()
        before = text[:text.index(f"]({image})")]
        command = before[before.rindex("snnlite plot"):]
        command = " ".join(command.replace("\\\n", " ").split("```")[0].split())
        assert "--out examples/figures" in command and f"--name {name}" in command, image
        kinds = re.search(r"--kind ([\w -]+?)(?: --|$)", command)
        assert kinds is None or kind in kinds.group(1).split(), image
