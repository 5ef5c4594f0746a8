"""Tests for snnlite.io.torch_pth; torch is never imported here.

Synthetic checkpoints are written by a small pickler that emits the GLOBAL opcodes and
persistent ids torch.save uses, in both the zip and the legacy layout. The files in
tests/data/torch were written by real PyTorch (make_fixtures.py) with .npz expectations.
"""

import io
import os
import pickle
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from snnlite.io.torch_pth import extract_state_dict, load_pth, read_pth

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "torch"
MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_TYPES = {"f4": "FloatStorage", "f8": "DoubleStorage", "f2": "HalfStorage",
                 "i8": "LongStorage", "i4": "IntStorage", "i2": "ShortStorage",
                 "i1": "CharStorage", "u1": "ByteStorage", "b1": "BoolStorage",
                 "c8": "ComplexFloatStorage", "c16": "ComplexDoubleStorage"}


# ---------------------------------------------------------------- checkpoint writer
class G:
    """A global written as ``GLOBAL module name``; the module need not be importable."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle only requires reduce functions to be callable
        raise AssertionError("never called")


class Call:
    """Pickles as ``func(*args)`` (a REDUCE of a G global)."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class StorageRef:
    def __init__(self, pid):
        self.pid = pid


class TorchPickler(pickle._Pickler):
    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_g(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[G] = save_g

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, StorageRef) else None


def dumps(obj):
    buf = io.BytesIO()
    TorchPickler(buf, protocol=2, fix_imports=False).dump(obj)
    return buf.getvalue()


def rebuild_v2(storage, offset, size, stride, *extra):
    return Call(G("torch._utils", "_rebuild_tensor_v2"), storage, offset, tuple(size),
                tuple(stride), False, Call(G("collections", "OrderedDict")), *extra)


class Ckpt:
    """Storages of one checkpoint; ``tensor`` returns objects that pickle as torch tensors."""

    def __init__(self, legacy=False):
        self.legacy, self.storages = legacy, {}

    def storage(self, flat, typ=None, key=None, view=None):
        flat = np.ascontiguousarray(flat).reshape(-1)
        key = key if key is not None else str(len(self.storages))
        self.storages[key] = flat
        typ = typ or STORAGE_TYPES[f"{flat.dtype.kind}{flat.dtype.itemsize}"]
        pid = ("storage", G("torch", typ), key, "cpu", flat.size)
        return StorageRef(pid + (view,) if self.legacy else pid)

    def tensor(self, arr, typ=None):
        arr = np.array(arr, order="C")
        strides = tuple(s // arr.itemsize for s in arr.strides)
        return rebuild_v2(self.storage(arr, typ), 0, arr.shape, strides)


def write_zip(path, obj, ck, byteorder="little", prefix="archive", cut=None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", dumps(obj))
        z.writestr(f"{prefix}/byteorder", byteorder)
        for key, flat in ck.storages.items():
            data = flat.astype(flat.dtype.newbyteorder("<" if byteorder == "little" else ">"))
            z.writestr(f"{prefix}/data/{key}", data.tobytes()[:cut])
        z.writestr(f"{prefix}/version", "3\n")
        z.writestr(f"{prefix}/.data/serialization_id", "0123456789")
    return path


def write_legacy(path, obj, ck, sys_info=None):
    out = io.BytesIO()
    info = sys_info or {"protocol_version": 1001, "little_endian": True,
                        "type_sizes": {"short": 2, "int": 4, "long": 4}}
    for head in (MAGIC, 1001):
        pickle.dump(head, out, protocol=2)
    out.write(dumps(info) + dumps(obj))
    keys = sorted(ck.storages)
    pickle.dump(keys, out, protocol=2)
    for key in keys:
        flat = ck.storages[key]
        out.write(np.int64(flat.size).astype("<i8").tobytes())
        out.write(flat.astype(flat.dtype.newbyteorder("<")).tobytes())
    Path(path).write_bytes(out.getvalue())
    return path


@pytest.fixture(params=["zip", "legacy"])
def layout(request):
    legacy = request.param == "legacy"

    def write(path, obj, ck):
        return write_legacy(path, obj, ck) if legacy else write_zip(path, obj, ck)

    return Ckpt(legacy=legacy), write


# ---------------------------------------------------------------- synthetic checkpoints
def test_dtypes_order_and_leaves(tmp_path, layout):
    ck, write = layout
    rng = np.random.default_rng(0)
    expected = OrderedDict([
        ("conv.weight", rng.standard_normal((4, 3, 3, 3)).astype(np.float32)),
        ("fc.weight", rng.standard_normal((2, 5))),
        ("half", rng.standard_normal(7).astype(np.float16)),
        ("bn.num_batches_tracked", np.array(12, dtype=np.int64)),
        ("i32", np.arange(-3, 3, dtype=np.int32).reshape(2, 3)),
        ("i16", np.array([-300, 300], dtype=np.int16)),
        ("i8", np.array([-128, 127], dtype=np.int8)),
        ("u8", np.array([0, 255], dtype=np.uint8)),
        ("mask", np.array([True, False, True])),
        ("c64", np.array([1 + 2j, -3j], dtype=np.complex64)),
        ("c128", np.array([[0.5 - 1j]], dtype=np.complex128)),
    ])
    obj = OrderedDict((k, ck.tensor(v)) for k, v in expected.items())
    obj["epoch"], obj["note"], obj["lr"] = 3, "text", 0.1
    sd = load_pth(write(tmp_path / "m.pth", obj, ck))
    assert list(sd) == [*expected, "epoch", "note", "lr"]
    for k, want in expected.items():
        got = sd[k]
        assert got.dtype == want.dtype.newbyteorder("=") and got.shape == want.shape, k
        assert got.flags.c_contiguous and got.flags.writeable
        np.testing.assert_array_equal(got, want)
    assert (sd["epoch"], sd["note"], sd["lr"]) == (3, "text", 0.1)


def test_views_offsets_strides_and_shared_storage(tmp_path, layout):
    ck, write = layout
    base = np.arange(24, dtype=np.float32) * 1.5
    s = ck.storage(base)
    specs = {  # name: (offset, size, stride)
        "flat": (0, (24,), (1,)), "mat": (0, (4, 6), (6, 1)), "matT": (0, (6, 4), (1, 6)),
        "block": (5, (3, 2), (6, 2)), "scalar": (7, (), ()), "empty": (24, (0, 3), (3, 1)),
        "expanded": (2, (2, 3), (0, 1)),
    }
    obj = {k: rebuild_v2(s, *spec) for k, spec in specs.items()}
    sd = load_pth(write(tmp_path / "v.pth", obj, ck))
    for k, (off, size, stride) in specs.items():
        want = np.zeros(size, np.float32)
        for idx in np.ndindex(*size):
            want[idx] = base[off + sum(i * st for i, st in zip(idx, stride))]
        assert sd[k].shape == size and sd[k].flags.c_contiguous, k
        np.testing.assert_array_equal(sd[k], want)
    assert sd["scalar"].ndim == 0 and sd["scalar"] == 10.5
    sd["mat"][0, 0] = -1  # arrays are independent copies of the shared storage
    assert sd["flat"][0] == 0 and sd["matT"][0, 0] == 0


def test_legacy_storage_view_metadata(tmp_path):
    ck = Ckpt(legacy=True)
    base = np.arange(10, dtype=np.int64)
    root = ck.storage(base, key="root")
    view = StorageRef(("storage", G("torch", "LongStorage"), "root", "cpu", 10, ("v", 4, 3)))
    obj = {"whole": rebuild_v2(root, 0, (10,), (1,)), "part": rebuild_v2(view, 1, (2,), (1,))}
    sd = load_pth(write_legacy(tmp_path / "l.pth", obj, ck))
    np.testing.assert_array_equal(sd["part"], [5, 6])
    np.testing.assert_array_equal(sd["whole"], base)


BF16_VALUES = np.array([0.0, 1.0, -2.5, 3.140625, 65280.0, 2.0**-10, -np.inf], np.float32)


@pytest.mark.parametrize("byteorder", ["little", "big"])
def test_half_bfloat16_and_byteorder(tmp_path, byteorder):
    ck = Ckpt()
    bf16_bits = (BF16_VALUES.view(np.uint32) >> 16).astype(np.uint16)
    half = np.array([0.5, -1.25, 65504.0, 6e-5], np.float16)
    plain = {"f32": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), "half": half,
           "i64": np.array([-(2**40), 7]), "mask": np.array([False, True])}
    obj = {"bf16": ck.tensor(bf16_bits, "BFloat16Storage")}
    obj.update((k, ck.tensor(v)) for k, v in plain.items())
    sd = load_pth(write_zip(tmp_path / "h.pth", obj, ck, byteorder=byteorder))
    assert sd["bf16"].dtype == np.float32
    np.testing.assert_array_equal(sd["bf16"], BF16_VALUES)
    for k, want in plain.items():
        assert sd[k].dtype == want.dtype and sd[k].dtype.isnative
        np.testing.assert_array_equal(sd[k], want)


def test_bfloat16_legacy(tmp_path):
    ck = Ckpt(legacy=True)
    bits = (BF16_VALUES.view(np.uint32) >> 16).astype(np.uint16)
    sd = load_pth(write_legacy(tmp_path / "b.pth", {"w": ck.tensor(bits, "BFloat16Storage")}, ck))
    np.testing.assert_array_equal(sd["w"], BF16_VALUES)


def test_rebuild_variants(tmp_path):
    ck = Ckpt()
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    hooks = Call(G("collections", "OrderedDict"))
    u16 = np.array([1, 60000, 7], np.uint16)
    raw = ck.storage(np.frombuffer(u16.tobytes(), np.uint8), "UntypedStorage")
    obj = {
        "old": Call(G("torch._utils", "_rebuild_tensor"), ck.storage(w), 0, (3, 2), (1, 3)),
        "param": Call(G("torch._utils", "_rebuild_parameter"), ck.tensor(w), True, hooks),
        "param_state": Call(G("torch._utils", "_rebuild_parameter_with_state"),
                            ck.tensor(w), True, hooks, {"tag": 1}),
        "subclass": Call(G("torch._tensor", "_rebuild_from_type_v2"),
                         G("torch._utils", "_rebuild_tensor_v2"), G("torch", "Tensor"),
                         (ck.storage(w), 1, (2,), (2,), False, hooks), {}),
        "v3": Call(G("torch._utils", "_rebuild_tensor_v3"), raw, 1, (2,), (1,), False, hooks,
                   G("torch", "uint16")),
        "neg": rebuild_v2(ck.storage(w), 0, (3,), (1,), {"neg": True}),
        "size": Call(G("torch", "Size"), [2, 3]),
        "py2_set": Call(G("__builtin__", "set"), [1, 2]),
    }
    ck2 = read_pth(write_zip(tmp_path / "r.pth", obj, ck))
    np.testing.assert_array_equal(ck2["old"], w.T)
    np.testing.assert_array_equal(ck2["param"], w)
    np.testing.assert_array_equal(ck2["param_state"], w)
    np.testing.assert_array_equal(ck2["subclass"], [1, 3])
    assert ck2["v3"].dtype == np.uint16
    np.testing.assert_array_equal(ck2["v3"], [60000, 7])
    np.testing.assert_array_equal(ck2["neg"], [0, -1, -2])
    assert ck2["size"] == (2, 3) and type(ck2["size"]) is tuple and ck2["py2_set"] == {1, 2}


def test_zip_prefix_is_free(tmp_path):
    ck = Ckpt()
    path = write_zip(tmp_path / "p.pth", {"a": ck.tensor(np.ones(2))}, ck, prefix="my_model")
    np.testing.assert_array_equal(load_pth(path)["a"], [1, 1])


# ---------------------------------------------------------------- nested checkpoints
def test_nested_checkpoint_files(tmp_path, layout):
    ck, write = layout
    inner = {"module.fc.weight": ck.tensor(np.eye(2, dtype=np.float32)),
             "module.fc.bias": ck.tensor(np.zeros(2, np.float32))}
    path = write(tmp_path / "n.pth", {"model": inner, "optimizer": {"lr": 0.1}, "epoch": 3}, ck)
    assert list(load_pth(path)) == ["fc.weight", "fc.bias"]
    assert list(load_pth(path, strip_prefix=None)) == list(inner)
    assert read_pth(path)["epoch"] == 3
    with pytest.raises(KeyError, match="n.pth.*'ema'"):
        load_pth(path, key="ema")
    with pytest.raises(ValueError, match="n.pth.*no mapping of names to arrays"):
        load_pth(path, key="optimizer")


def test_extract_state_dict_search_order():
    a = np.zeros(2)
    sd = {"fc.weight": a, "fc.bias": a, "version": 2}
    assert extract_state_dict(sd) == sd
    assert extract_state_dict({"state_dict": sd, "epoch": 3}) == sd
    assert extract_state_dict({"net": sd, "best": 0.5}) == sd
    assert extract_state_dict({"checkpoint": {"model": sd}}) == sd
    assert extract_state_dict({"weights_only_here": sd, "epoch": 1}) == sd
    other = {"x": a}
    assert extract_state_dict({"model": sd, "ema": other}) == sd
    assert extract_state_dict({"model": sd, "ema": other}, key="ema") == other
    with pytest.raises(ValueError, match="no mapping"):
        extract_state_dict({"a": sd, "b": other})  # ambiguous without key
    with pytest.raises(ValueError, match="no mapping"):
        extract_state_dict([a])


def test_strip_prefix_only_when_every_key_has_it(tmp_path):
    ck = Ckpt()
    obj = {"module.a": ck.tensor(np.ones(1)), "b": ck.tensor(np.ones(1))}
    assert list(load_pth(write_zip(tmp_path / "s.pth", obj, ck))) == ["module.a", "b"]


# ---------------------------------------------------------------- safety
EVIL = {
    "posix.system": lambda m: (os.system, (f"touch {m}",)),
    "builtins.eval": lambda m: (eval, (f"open({str(m)!r}, 'w')",)),
    "subprocess.call": lambda m: (subprocess.call, (["touch", str(m)],)),
    "builtins.getattr": lambda m: (getattr, ("text", "upper")),
}


class Evil:
    def __init__(self, reduce):
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


@pytest.mark.parametrize("name", list(EVIL))
def test_malicious_pickle_is_refused(tmp_path, layout, name):
    ck, write = layout
    marker = tmp_path / "pwned"
    evil = Evil(EVIL[name](marker))
    obj = {"w": ck.tensor(np.ones(3, np.float32)), "payload": evil}
    path = write(tmp_path / "evil.pth", obj, ck)
    with pytest.raises(pickle.UnpicklingError, match=rf"evil\.pth.*'{name}'"):
        load_pth(path)
    assert not marker.exists()


@pytest.mark.parametrize("where", ["sys_info", "magic"])
def test_malicious_legacy_header_is_refused(tmp_path, where):
    marker = tmp_path / "pwned"
    evil = Evil(EVIL["posix.system"](marker))
    path = tmp_path / "evil.pth"
    if where == "sys_info":
        write_legacy(path, {}, Ckpt(legacy=True), sys_info={"x": evil})
    else:
        path.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="posix.system"):
        load_pth(path)
    assert not marker.exists()


def test_rebuild_from_type_accepts_only_tensor_rebuilds(tmp_path):
    ck = Ckpt()
    obj = {"x": Call(G("torch._tensor", "_rebuild_from_type_v2"), G("builtins", "dict"),
                     G("torch", "Tensor"), (), {})}
    with pytest.raises(pickle.UnpicklingError, match="tensor rebuild function"):
        load_pth(write_zip(tmp_path / "f.pth", obj, ck))


def test_import_does_not_pull_torch():
    code = ("import sys\n"
            "class Block:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'torch' or name.startswith('torch.'):\n"
            "            raise ImportError('torch must not be imported')\n"
            "sys.meta_path.insert(0, Block())\n"
            "import snnlite.io.torch_pth\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'torch']\n")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- errors
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_pth(tmp_path / "nope.pth")


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 10, pickle.dumps({"a": 1}),
                                     pickle.dumps(12345, protocol=2)])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / "junk.pth"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="junk.pth.*neither a zip archive nor a legacy"):
        load_pth(path)


def test_zip_errors(tmp_path):
    ck = Ckpt()
    obj = {"w": ck.tensor(np.arange(6, dtype=np.float32))}
    good = write_zip(tmp_path / "good.pth", obj, ck).read_bytes()
    (tmp_path / "half.pth").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="half.pth: truncated or corrupt zip"):
        load_pth(tmp_path / "half.pth")
    write_zip(tmp_path / "short.pth", obj, ck, cut=20)
    msg = r"short.pth: storage 'archive/data/0' is truncated: expected 24 bytes, found 20"
    with pytest.raises(ValueError, match=msg):
        load_pth(tmp_path / "short.pth")
    with zipfile.ZipFile(tmp_path / "nopkl.pth", "w") as z:
        z.writestr("archive/other.txt", "x")
    with pytest.raises(ValueError, match="nopkl.pth: zip archive without"):
        load_pth(tmp_path / "nopkl.pth")
    with zipfile.ZipFile(tmp_path / "nodata.pth", "w") as z:
        z.writestr("archive/data.pkl", dumps(obj))
    with pytest.raises(ValueError, match="nodata.pth.*no record 'archive/data/0'"):
        load_pth(tmp_path / "nodata.pth")
    write_zip(tmp_path / "bo.pth", obj, ck, byteorder="middle")
    with pytest.raises(ValueError, match="bo.pth: unknown byteorder 'middle'"):
        load_pth(tmp_path / "bo.pth")


def test_legacy_truncation(tmp_path):
    ck = Ckpt(legacy=True)
    obj = {"w": ck.tensor(np.arange(6, dtype=np.float32))}
    good = write_legacy(tmp_path / "good.pth", obj, ck).read_bytes()
    (tmp_path / "cut.pth").write_bytes(good[:-4])
    msg = "cut.pth: storage '0' is truncated: expected 24 bytes, found 20"
    with pytest.raises(ValueError, match=msg):
        load_pth(tmp_path / "cut.pth")
    (tmp_path / "nodata.pth").write_bytes(good[:-24 - 8 + 3])
    with pytest.raises(ValueError, match="nodata.pth: storage '0' is truncated"):
        load_pth(tmp_path / "nodata.pth")
    (tmp_path / "pkl.pth").write_bytes(good[:60])
    with pytest.raises(ValueError, match="pkl.pth: corrupt"):
        load_pth(tmp_path / "pkl.pth")


@pytest.mark.parametrize("dtype_global", ["QInt8Storage", "float8_e4m3fn"])
def test_unsupported_dtype(tmp_path, dtype_global):
    ck = Ckpt()
    if dtype_global.endswith("Storage"):
        t = rebuild_v2(ck.storage(np.zeros(4, np.int8), dtype_global), 0, (4,), (1,))
    else:
        t = Call(G("torch._utils", "_rebuild_tensor_v3"), ck.storage(np.zeros(4, np.uint8),
                 "UntypedStorage"), 0, (4,), (1,), False, {}, G("torch", dtype_global))
    with pytest.raises(ValueError, match=f"q.pth: unsupported storage dtype torch.{dtype_global}"):
        load_pth(write_zip(tmp_path / "q.pth", {"q": t}, ck))


def test_tensor_beyond_storage(tmp_path, layout):
    ck, write = layout
    obj = {"w": rebuild_v2(ck.storage(np.zeros(4, np.float32)), 1, (2, 2), (2, 1))}
    with pytest.raises(ValueError, match="needs 5 elements of storage '0', which holds 4"):
        load_pth(write(tmp_path / "b.pth", obj, ck))


# ---------------------------------------------------------------- files written by PyTorch
REAL = sorted(p.stem for p in FIXTURES.glob("*.pth"))


def test_real_fixtures_present():
    assert {"seq_zip", "seq_legacy", "seq_float64", "dtypes", "views_zip", "views_legacy",
            "nested", "data_parallel"} <= set(REAL)
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 200_000


@pytest.mark.parametrize("name", REAL)
def test_real_torch_checkpoint(name):
    sd = load_pth(FIXTURES / f"{name}.pth")
    with np.load(FIXTURES / f"{name}.npz") as want:
        assert list(sd) == list(want.files)
        for k in want.files:
            assert sd[k].dtype == want[k].dtype and sd[k].shape == want[k].shape, k
            np.testing.assert_array_equal(sd[k], want[k], err_msg=k)


def test_real_torch_details():
    zip_sd, legacy_sd = load_pth(FIXTURES / "seq_zip.pth"), load_pth(FIXTURES / "seq_legacy.pth")
    assert list(zip_sd) == ["0.weight", "1.weight", "1.bias", "1.running_mean",
                            "1.running_var", "1.num_batches_tracked", "2.weight", "2.bias"]
    for k in zip_sd:
        np.testing.assert_array_equal(zip_sd[k], legacy_sd[k])
    nbt = zip_sd["1.num_batches_tracked"]
    assert nbt.shape == () and nbt.dtype == np.int64 and nbt == 1
    assert load_pth(FIXTURES / "dtypes.pth")["bf16"].dtype == np.float32
    views = load_pth(FIXTURES / "views_zip.pth")
    np.testing.assert_array_equal(views["wt"], views["w"].T)
    np.testing.assert_array_equal(views["tail"], np.arange(1, 10))
    np.testing.assert_array_equal(views["step"], [2, 5, 8])
    ckpt = read_pth(FIXTURES / "nested.pth")
    assert (ckpt["epoch"], ckpt["best_acc"], ckpt["arch"]) == (3, 0.75, "seq")
    dp = load_pth(FIXTURES / "data_parallel.pth", strip_prefix=None)
    assert all(k.startswith("module.") for k in dp)
