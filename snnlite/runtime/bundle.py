"""Reading a deploy bundle: one ``.npz`` of integer arrays and a JSON description, written by
``snnlite export Q.h5 OUT.npz --format bundle`` (:mod:`snnlite.io.bundle`). numpy only.

Layout (format ``snnlite-bundle``, version :data:`BUNDLE_VERSION`)::

    "__bundle__"   a 0-d string array: JSON {"format", "version", "snnlite_version",
                   "model": {"name", "num_classes", "dataset", "T", "encoding", "mean",
                             "std", "label_names"},
                   "source": {"path", "sha256"},   # the float checkpoint's SHA-256
                   "net": the integer net's record meta (snnlite.quant.qnet: input shape,
                          formats, input step, populations and projections)}
    "p<i>.step", "p<i>.v_th", "p<i>.v_reset", "p<i>.bias", "p<i>.q<j>.w"   the arrays

The arithmetic is the one stated in ``snnlite.quant.formats``; :func:`load_bundle` checks
every array against the description and the formats (shapes, integer types, ranges, and that
no neuron's current can leave int32) before anything runs.
"""
import json
import math

import numpy as np

BUNDLE_FORMAT = "snnlite-bundle"
BUNDLE_VERSION = 1
ACC_MAX = 2 ** 31 - 1


class Bundle:
    """A loaded bundle: ``doc`` (the JSON description), ``input_shape``, ``input_kind``,
    ``input_step``, format ``fmt`` (dict) and ``pops``, one dict per population with its
    arrays (``step``, ``v_th``, ``v_reset``, ``bias``; projections with ``w``)."""

    def __init__(self, doc, pops, path=None):
        self.doc, self.pops, self.path = doc, pops, path
        net = doc["net"]
        self.fmt = net["format"]
        self.input_shape = tuple(int(d) for d in net["input_shape"])
        self.input_kind = net["input"]["kind"]
        self.input_step = net["input"]["step"]
        self.model = doc.get("model", {})

    @property
    def T(self):
        return int(self.model.get("T", 1))

    @property
    def encoding(self):
        return self.model.get("encoding", "direct")

    def __repr__(self):
        f = self.fmt
        return (f"Bundle({self.model.get('name')}, {len(self.pops)} layers, input "
                f"{self.input_shape} {self.input_kind}, w{f['weight_bits']}/s{f['state_bits']})")


def _fail(where, msg):
    raise ValueError(f"{where}: {msg}")


def load_bundle(path):
    """The :class:`Bundle` in ``path``; ValueError naming the file for another format or
    version, or an array that does not match its description."""
    where = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise FileNotFoundError(f"bundle not found: {path}") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{where}: not a readable .npz bundle ({e})") from None
    if "__bundle__" not in files:
        _fail(where, f"not a {BUNDLE_FORMAT} (no '__bundle__' description)")
    try:
        doc = json.loads(str(files.pop("__bundle__")))
    except ValueError as e:
        _fail(where, f"the description is not valid JSON ({e})")
    if not isinstance(doc, dict) or doc.get("format") != BUNDLE_FORMAT:
        _fail(where, f"not a {BUNDLE_FORMAT}")
    if doc.get("version") != BUNDLE_VERSION:
        _fail(where, f"bundle format version {doc.get('version')!r}, written by snnlite "
                     f"{doc.get('snnlite_version', '?')}; this runtime reads version "
                     f"{BUNDLE_VERSION}: export the model again with this snnlite "
                     "(snnlite export Q.h5 OUT.npz --format bundle)")
    try:
        pops = _populations(doc["net"], files, where)
    except (KeyError, TypeError, IndexError) as e:
        _fail(where, f"malformed description ({type(e).__name__}: {e})")
    return Bundle(doc, pops, where)


def from_record(net, arrays, model=None, where="integer model"):
    """A :class:`Bundle` from an integer net's record (``QNet.to_record()``: the meta dict
    and its arrays) without a file, checked as :func:`load_bundle` checks one."""
    doc = {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "model": model or {},
           "net": net}
    return Bundle(doc, _populations(net, dict(arrays), where), where)


def _int_array(files, key, where, shape, lo, hi):
    if key not in files:
        _fail(where, f"missing array {key!r}")
    a = files[key]
    if a.dtype.kind not in "iu":
        _fail(where, f"{key!r} must hold integers, not {a.dtype}")
    if tuple(a.shape) != tuple(shape):
        _fail(where, f"{key!r} has shape {a.shape}, expected {tuple(shape)}")
    a = a.astype(np.int64)
    if a.size and (a.min() < lo or a.max() > hi):
        _fail(where, f"{key!r} holds values outside [{lo}, {hi}]")
    return a


def _populations(net, files, where):
    fmt = net["format"]
    wb, sb, xb = int(fmt["weight_bits"]), int(fmt["state_bits"]), int(fmt["input_bits"])
    if fmt.get("rounding") != "half_even" or int(fmt.get("acc_bits", 32)) != 32:
        _fail(where, "unsupported rounding or accumulator width")
    w_max, s_min, s_max, x_max = 2 ** (wb - 1) - 1, -2 ** (sb - 1), 2 ** (sb - 1) - 1, \
        2 ** (xb - 1) - 1
    kind = net["input"]["kind"]
    if kind not in ("dense", "events"):
        _fail(where, f"input kind {kind!r}")
    if kind == "dense" and not (isinstance(net["input"]["step"], (int, float))
                                and net["input"]["step"] > 0):
        _fail(where, "dense input needs a positive input step")
    pops = []
    for i, d in enumerate(net["populations"]):
        C = int(d["shape"][0])
        p = {"name": d["name"], "kind": d["kind"], "shape": tuple(int(s) for s in d["shape"]),
             "source": int(d["source"]), "pool": int(d["pool"]),
             "decay_input": bool(d["decay_input"]), "hard_reset": bool(d["hard_reset"]),
             "leak": (int(d["leak"][0]), int(d["leak"][1])), "projections": []}
        if p["kind"] not in ("lif", "readout", "maxpool"):
            _fail(where, f"layer {p['name']!r}: {p['kind']} is not a kind this runtime runs")
        if p["kind"] == "maxpool":
            pops.append(p)
            continue
        step = files.get(f"p{i}.step")
        if step is None or step.dtype.kind != "f" or step.shape != (C,) or \
                not np.all(np.isfinite(step)) or not np.all(step > 0):
            _fail(where, f"layer {p['name']!r}: expected {C} positive float steps 'p{i}.step'")
        p["step"] = step.astype(np.float64)
        p["bias"] = _int_array(files, f"p{i}.bias", where, (C,), s_min, s_max) \
            if d["bias"] else None
        if p["kind"] == "lif":
            p["v_th"] = _int_array(files, f"p{i}.v_th", where, (C,), 1, s_max)
            p["v_reset"] = _int_array(files, f"p{i}.v_reset", where, (C,), s_min, s_max) \
                if p["hard_reset"] else np.zeros(C, np.int64)
        bound = np.zeros(C, dtype=object) if p["bias"] is None else \
            np.abs(p["bias"]).astype(object)
        for j, e in enumerate(d["projections"]):
            q = {"name": e["name"], "kind": e["kind"], "source": int(e["source"]),
                 "src_shape": tuple(int(s) for s in e["src_shape"]),
                 "out_shape": tuple(int(s) for s in e["out_shape"]),
                 "stride": int(e["stride"]), "padding": int(e["padding"]),
                 "pool": int(e["pool"])}
            Cs, H, W = q["src_shape"]
            O = q["out_shape"][0]
            key = f"p{i}.q{j}.w"
            if q["kind"] == "conv":
                w = files.get(key)
                k = w.shape[-1] if w is not None and w.ndim == 4 else 0
                q["w"] = _int_array(files, key, where, (O, Cs, k, k), -w_max, w_max)
            elif q["kind"] == "linear":
                n = Cs * (H // q["pool"]) * (W // q["pool"])
                q["w"] = _int_array(files, key, where, (O, n), -w_max, w_max)
            elif q["kind"] == "identity":
                q["w"] = _int_array(files, key, where, (O,), s_min, s_max)
            else:
                _fail(where, f"projection {q['name']!r} of unknown kind {q['kind']!r}")
            reach = np.abs(q["w"]).reshape(O, -1).sum(1).astype(object)
            if q["kind"] != "identity":
                reach = reach * q["pool"] ** 2 * (x_max if q["source"] < 0 and kind == "dense"
                                                  else 1)
            bound = bound + reach
            p["projections"].append(q)
        if C and max(bound) > ACC_MAX:
            _fail(where, f"layer {p['name']!r}: a current could reach {max(bound)}, beyond "
                         "int32")
        pops.append(p)
    if not pops or pops[-1]["kind"] != "readout":
        _fail(where, "the last layer must be the readout")
    if math.prod(int(s) for s in net["input_shape"]) < 1:
        _fail(where, "empty input shape")
    return pops
