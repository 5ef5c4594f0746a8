"""What ``snnlite plot`` reads: run folders (``metrics.jsonl``, ``config.json``, the
checkpoints), folders of run folders (a study such as ``examples/runs/d2e``), audit JSON
files (``snnlite audit --format json``) and checkpoints (``.h5``, for the spike raster).
Nothing here needs matplotlib."""
import json
from dataclasses import dataclass, field
from pathlib import Path

METRICS = "metrics.jsonl"
CHECKPOINTS = ("last.h5", "best.h5")


@dataclass
class Run:
    """A training or transfer run folder: ``history`` is its ``metrics.jsonl``, one dict per
    epoch (a transfer's starts with epoch 0, the model before any step)."""

    path: Path
    name: str
    config: dict
    history: list

    @property
    def is_transfer(self):
        return any("kl" in h for h in self.history)

    @property
    def checkpoint(self):
        """``last.h5`` (else ``best.h5``) of the folder, or None."""
        for c in CHECKPOINTS:
            if (self.path / c).exists():
                return self.path / c
        return None


@dataclass
class Audit:
    """An audit report (:mod:`snnlite.cli.audit`'s JSON): ``results`` {encoding: RESULT}."""

    path: Path
    name: str
    report: dict = field(repr=False)

    @property
    def results(self):
        return self.report["results"]


@dataclass
class DepthStats:
    """Per spiking layer statistics of one model under several inputs
    (``examples/depth_stats.py --json``): ``inputs`` {input name: [row per LIF layer, in
    depth order, with ``layer``, ``firing_rate``, ``preact_mean`` and, in newer files,
    ``preact_pos_mean``]}, always with a ``"direct"`` and a ``"ttfs"`` entry."""

    path: Path
    name: str
    report: dict = field(repr=False)

    @property
    def inputs(self):
        return self.report["layers"]


DEPTH_KEYS = ("layer", "firing_rate", "preact_mean")
"""What every per-layer row of depth statistics holds."""


@dataclass
class Sources:
    runs: list = field(default_factory=list)
    audits: list = field(default_factory=list)
    depths: list = field(default_factory=list)  # DepthStats
    checkpoints: list = field(default_factory=list)  # Paths of .h5 files given directly

    def __bool__(self):
        return bool(self.runs or self.audits or self.depths or self.checkpoints)


def read_run(path):
    """The :class:`Run` in folder ``path`` (ValueError naming the file if it is unreadable)."""
    path = Path(path)
    metrics = path / METRICS
    history = []
    for i, line in enumerate(metrics.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            history.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{metrics}:{i}: not a JSON line ({e.msg})") from None
    if not history:
        raise ValueError(f"{metrics}: no epochs logged yet")
    config = {}
    if (path / "config.json").exists():
        config = json.loads((path / "config.json").read_text())
    return Run(path, path.resolve().name, config, history)


AUDIT_HINT = "snnlite audit CKPT --format json > FILE.json"
DEPTH_HINT = "python examples/depth_stats.py CKPT --json FILE.json"


def _load_json(path):
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None


def is_audit(report):
    return isinstance(report, dict) and report.get("format") == "snnlite-audit"


def is_depth_stats(report):
    """Whether ``report`` (parsed JSON) is depth statistics: ``layers`` maps at least
    ``direct`` and ``ttfs`` to equally long, non-empty lists of rows with
    :data:`DEPTH_KEYS`, the same layers in the same order."""
    if not isinstance(report, dict) or is_audit(report):
        return False
    inputs = report.get("layers")
    if not isinstance(inputs, dict) or not {"direct", "ttfs"} <= inputs.keys():
        return False
    rows = list(inputs.values())
    if not all(isinstance(r, list) and r for r in rows):
        return False
    if not all(isinstance(x, dict) and all(k in x for k in DEPTH_KEYS) for r in rows for x in r):
        return False
    order = [x["layer"] for x in rows[0]]
    return all([x["layer"] for x in r] == order for r in rows)


def read_audit(path):
    """The :class:`Audit` in JSON file ``path``."""
    path = Path(path)
    report = _load_json(path)
    if not is_audit(report):
        raise ValueError(f"{path}: not an audit report (make one with {AUDIT_HINT})")
    return Audit(path, path.stem, report)


def read_depth_stats(path):
    """The :class:`DepthStats` in JSON file ``path``."""
    path = Path(path)
    report = _load_json(path)
    if not is_depth_stats(report):
        raise ValueError(f"{path}: not depth statistics (make them with {DEPTH_HINT})")
    return DepthStats(path, path.stem, report)


def read_json(path):
    """An :class:`Audit` or :class:`DepthStats`, as the keys of JSON file ``path`` say."""
    path = Path(path)
    report = _load_json(path)
    if is_audit(report):
        return Audit(path, path.stem, report)
    if is_depth_stats(report):
        return DepthStats(path, path.stem, report)
    raise ValueError(f"{path}: neither an audit report ({AUDIT_HINT}) nor depth statistics "
                     f"({DEPTH_HINT})")


def gather(paths):
    """:class:`Sources` from command-line paths: a run folder, a folder whose sub-folders
    are run folders (each becomes a run), an audit or depth-statistics ``.json`` or a
    checkpoint ``.h5``."""
    out = Sources()
    for p in map(Path, paths):
        if p.is_dir():
            if (p / METRICS).exists():
                out.runs.append(read_run(p))
                continue
            subs = sorted(q for q in p.iterdir() if (q / METRICS).exists())
            if not subs:
                raise ValueError(f"{p}: neither a run folder (no {METRICS}) nor a folder of "
                                 "run folders")
            out.runs.extend(read_run(q) for q in subs)
        elif p.suffix == ".json" and p.is_file():
            item = read_json(p)
            (out.audits if isinstance(item, Audit) else out.depths).append(item)
        elif p.suffix == ".h5" and p.is_file():
            out.checkpoints.append(p)
        elif not p.exists():
            raise FileNotFoundError(f"{p}: no such file or folder")
        else:
            raise ValueError(f"{p}: expected a run folder, an audit or depth-statistics .json "
                             "or a checkpoint .h5")
    _unique_names(out.runs)
    _unique_names(out.audits)
    _unique_names(out.depths)
    return out


def _unique_names(items):
    """Runs of the same folder name in different studies are told apart by their parent."""
    seen = {}
    for it in items:
        seen.setdefault(it.name, []).append(it)
    for same in seen.values():
        if len(same) > 1:
            for it in same:
                it.name = f"{it.path.resolve().parent.name}/{it.name}"


def stem(paths):
    """A file-name stem for figures of ``paths``: the one source's name, or the folder they
    share."""
    ps = [Path(p).resolve() for p in paths]
    ps = [p.parent if p.name in CHECKPOINTS else p for p in ps]  # run/last.h5: the run
    if len(ps) == 1:
        return ps[0].stem if ps[0].is_file() else ps[0].name
    parents = {p.parent for p in ps}
    if len(parents) == 1:
        return parents.pop().name
    return "+".join(p.stem for p in ps[:3]) + ("+more" if len(ps) > 3 else "")
