"""Untrusted files: every declared size is checked before anything is allocated, the .pth
unpickler keeps no state between loads, and a small fuzz of the loaders finds only clear
errors. The crafted files are written here (the .pth writer of test_torch_pth.py)."""
import io
import json
import pickle
import struct
import tracemalloc
import zipfile

import h5py
import numpy as np
import pytest
from test_torch_pth import Call, Ckpt, G, StorageRef, dumps, rebuild_v2, write_legacy, write_zip

import snnlite
from snnlite.io import torch_pth
from snnlite.io.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    NonFiniteError,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from snnlite.io.torch_pth import load_pth, read_pth

MB = 2**20


class Peak:
    """Peak traced allocation (numpy arrays included) inside the block, in bytes."""

    def __enter__(self):
        tracemalloc.start()
        return self

    def __exit__(self, *exc):
        self.bytes = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


# ------------------------------------------------------------------ .pth: declared sizes
@pytest.mark.parametrize("legacy", [False, True])
def test_a_stride_0_view_is_refused_before_it_is_expanded(tmp_path, legacy):
    ck = Ckpt(legacy=legacy)
    obj = {"w": rebuild_v2(ck.storage(np.ones(1, np.float32)), 0, (16384, 16384), (0, 0))}
    path = (write_legacy if legacy else write_zip)(tmp_path / "bomb.pth", obj, ck)
    assert path.stat().st_size < 2000  # the 811-byte file of the issue, give or take
    with Peak() as peak, pytest.raises(ValueError, match=r"bomb.pth: tensor \(16384, 16384\) "
                                                         r".*expands to 1073741824 bytes"):
        load_pth(path)
    assert peak.bytes < 4 * MB
    ck = Ckpt(legacy=legacy)
    small = {"w": rebuild_v2(ck.storage(np.arange(3, dtype=np.float32)), 0, (4, 3), (0, 1))}
    got = load_pth((write_legacy if legacy else write_zip)(tmp_path / "ok.pth", small, ck))
    np.testing.assert_array_equal(got["w"], np.tile(np.arange(3), (4, 1)))  # expand is fine


def test_many_views_of_one_storage_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_pth, "_SLACK", MB)  # the real allowance is 64 MiB
    ck = Ckpt()
    s = ck.storage(np.zeros(64 * 1024, np.float32))  # 256 KiB
    obj = {f"copy{i}": rebuild_v2(s, 0, (64 * 1024,), (1,)) for i in range(40)}  # 10 MiB
    with pytest.raises(ValueError, match="may produce at most 2097152 bytes from the 262144"):
        load_pth(write_zip(tmp_path / "views.pth", obj, ck))
    tied = {"a": rebuild_v2(s, 0, (64 * 1024,), (1,)), "b": rebuild_v2(s, 0, (256, 256), (256, 1))}
    assert load_pth(write_zip(tmp_path / "tied.pth", tied, ck))["b"].shape == (256, 256)


def _deflated(path, n_bytes, numel):
    """A zip .pth whose one storage record is ``n_bytes`` of zeros, deflated (written in
    chunks: never ``n_bytes`` in memory)."""
    pid = ("storage", G("torch", "FloatStorage"), "0", "cpu", numel)
    obj = {"w": rebuild_v2(StorageRef(pid), 0, (numel,), (1,))}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", dumps(obj))
        info = zipfile.ZipInfo("archive/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w") as f:
            chunk = bytes(MB)
            for _ in range(n_bytes // MB):
                f.write(chunk)
        z.writestr("archive/byteorder", "little")
    return path


def test_a_deflated_record_inflates_only_within_its_allowance(tmp_path):
    path = _deflated(tmp_path / "zip-bomb.pth", 128 * MB, 32 * MB)
    assert path.stat().st_size < MB
    with Peak() as peak, pytest.raises(ValueError, match=r"compressed record 'archive/data/0' "
                                                         r"declares 134217728 bytes; at most "
                                                         r"67108864"):
        load_pth(path)
    assert peak.bytes < 4 * MB
    ok = _deflated(tmp_path / "small.pth", 2 * MB, MB // 2)  # a re-zipped small file loads
    assert load_pth(ok)["w"].shape == (MB // 2,)


def test_a_stored_record_larger_than_the_file_is_refused(tmp_path):
    ck = Ckpt()
    path = write_zip(tmp_path / "big.pth", {"w": ck.tensor(np.ones(4, np.float32))}, ck)
    raw = bytearray(path.read_bytes())
    cd = raw.find(b"archive/data/0", raw.find(b"PK\x01\x02")) - 46  # its central entry
    assert raw[cd:cd + 4] == b"PK\x01\x02"
    struct.pack_into("<I", raw, cd + 24, 2**31)  # uncompressed size: 2 GiB
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"record 'archive/data/0' declares 2147483648 bytes, "
                                         r"more than the whole file"):
        load_pth(path)


def test_a_legacy_storage_declaring_more_than_the_file_holds_is_refused(tmp_path):
    ck = Ckpt(legacy=True)
    path = write_legacy(tmp_path / "l.pth", {"w": ck.tensor(np.ones(4, np.float32))}, ck)
    raw = bytearray(path.read_bytes())
    head = len(raw) - 16 - 8
    assert struct.unpack_from("<q", raw, head)[0] == 4
    struct.pack_into("<q", raw, head, 2**40)
    path.write_bytes(bytes(raw))
    with Peak() as peak, pytest.raises(ValueError, match="storage '0' is truncated: expected "
                                                         "4398046511104 bytes"):
        load_pth(path)
    assert peak.bytes < MB


def test_max_bytes_caps_a_load(tmp_path):
    ck = Ckpt()
    path = write_zip(tmp_path / "m.pth", {"w": ck.tensor(np.zeros(MB // 4, np.float32))}, ck)
    assert load_pth(path)["w"].nbytes == MB
    with pytest.raises(ValueError, match=r"over max_bytes \(524288\)"):
        load_pth(path, max_bytes=MB // 2)


def _zip_pickle(path, payload):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", payload)
    return path


@pytest.mark.parametrize("payload,needle", [
    (b"\x80\x04\x8e" + struct.pack("<Q", 2**40) + b"abc.", "corrupt"),  # BINBYTES8 of 1 TiB
    (b"\x80\x02}r" + struct.pack("<I", 2**32 - 16) + b".", "memo index 4294967280"),
    (b"\x80\x02X" + struct.pack("<I", 2**31) + b"ab.", "corrupt"),  # BINUNICODE of 2 GiB
])
def test_pickle_arguments_are_checked_against_the_stream(tmp_path, payload, needle):
    with Peak() as peak, pytest.raises(ValueError, match=needle):
        read_pth(_zip_pickle(tmp_path / "p.pth", payload))
    assert peak.bytes < MB


# ------------------------------------------------------------------ .pth: no state between loads
BUILD_ATTACKS = {
    # a dict state onto a shared dtype object: dtype.numpy() would stop working
    "dtype": b"\x80\x02ctorch\nFloatStorage\n}X\x05\x00\x00\x00numpyK\x01sb.",
    # slot state onto an allowed function: its defaults would change for every later load
    "function": b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nN}X\x0c\x00\x00\x00__defaults__"
                b"(K\x01K\x02tsb\x86b.",
    # onto an allowed class: an immutable type, refused by Python itself
    "class": b"\x80\x02ccollections\nOrderedDict\n}X\x01\x00\x00\x00xK\x01sb.",
}


@pytest.mark.parametrize("name", list(BUILD_ATTACKS))
def test_a_build_onto_an_allowed_global_is_refused_and_later_loads_work(tmp_path, name):
    ck = Ckpt()
    good = write_zip(tmp_path / "good.pth", {"w": ck.tensor(np.arange(6, dtype=np.float32)),
                                             "p": Call(G("torch._utils", "_rebuild_parameter"),
                                                       ck.tensor(np.ones(2)), False,
                                                       Call(G("collections", "OrderedDict")))},
                     ck)
    with pytest.raises((pickle.UnpicklingError, ValueError)) as e:
        read_pth(_zip_pickle(tmp_path / "evil.pth", BUILD_ATTACKS[name]))
    assert "evil.pth" in str(e.value)
    for _ in range(2):
        sd = load_pth(good)
        np.testing.assert_array_equal(sd["w"], np.arange(6))
        np.testing.assert_array_equal(sd["p"], [1, 1])
    assert torch_pth._rebuild_tensor_v2.__defaults__ == (False, None, None)


# ------------------------------------------------------------------ HDF5 checkpoints
def _h5(path, make):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["config"] = json.dumps({"model": "cifarnet_small", "num_classes": 10})
        f.attrs["state"] = json.dumps({"step": 0})
        make(f.create_group("model"))
    return path


@pytest.mark.parametrize("layout", ["contiguous", "chunked"])
def test_a_sparse_hdf5_dataset_is_refused_before_it_is_read(tmp_path, layout):
    kw = {} if layout == "contiguous" else {"chunks": (256, 256), "compression": "gzip"}
    path = _h5(tmp_path / "sparse.h5", lambda g: g.create_dataset(
        "0.weight", shape=(16384, 16384), dtype="f4", **kw))
    assert path.stat().st_size < 2 * MB
    with Peak() as peak, pytest.raises(ValueError, match=r"model/0.weight: declares "
                                                         r"\(16384, 16384\) \(1073741824 bytes\) "
                                                         r"but the file stores 0"):
        load_checkpoint(path)
    assert peak.bytes < MB
    with pytest.raises(ValueError, match=r"names do not match the model"):
        load_model(path)


def test_hdf5_shapes_are_checked_against_the_model_before_reading(tmp_path):
    model = snnlite.models.cifarnet_small(seed=0)
    state = model.state_dict()
    state["0.weight"] = np.zeros((4096, 4096), np.float32)  # stored for real: 64 MiB
    path = tmp_path / "wrong.h5"
    save_checkpoint(path, state, {"model": "cifarnet_small", "num_classes": 10}, {})
    with Peak() as peak, pytest.raises(ValueError, match=r"0.weight: the model expects shape "
                                                         r"\(32, 3, 3, 3\), the file declares "
                                                         r"\(4096, 4096\)"):
        load_model(path)
    assert peak.bytes < 8 * MB
    with pytest.raises(ValueError, match="more than the 1000000 bytes left of max_bytes"):
        load_checkpoint(path, max_bytes=1_000_000)


def test_external_and_virtual_hdf5_storage_is_refused(tmp_path):
    raw = tmp_path / "elsewhere.bin"
    raw.write_bytes(bytes(64))
    path = _h5(tmp_path / "ext.h5", lambda g: g.create_dataset(
        "w", shape=(16,), dtype="f4", external=[(str(raw), 0, 64)]))
    with pytest.raises(ValueError, match="model/w: virtual or external storage"):
        load_checkpoint(path)

    def virtual(g):
        layout = h5py.VirtualLayout(shape=(4,), dtype="f4")
        layout[:] = h5py.VirtualSource(str(tmp_path / "other.h5"), "x", shape=(4,))
        g.create_virtual_dataset("v", layout)

    with pytest.raises(ValueError, match="model/v: virtual or external storage"):
        load_checkpoint(_h5(tmp_path / "virt.h5", virtual))


def test_save_refuses_non_finite_values_and_writes_nothing(tmp_path):
    path = tmp_path / "ck.h5"
    with pytest.raises(NonFiniteError, match=r"NaN or infinity in 2 tensor\(s\): a, "
                                             r"optim/momenta/m") as e:
        save_checkpoint(path, {"a": np.array([1.0, np.inf]), "b": np.ones(2)}, {}, {},
                        {"m": np.array([np.nan])})
    assert e.value.names == ["a", "optim/momenta/m"]
    assert list(tmp_path.iterdir()) == []  # not even a temporary file


def test_import_torch_refuses_non_finite_tensors(tmp_path):
    from snnlite.io.torch_import import load_torch_state_dict
    ck = Ckpt()
    w = np.ones((2, 3), np.float32)
    w[1, 2] = np.nan
    path = write_zip(tmp_path / "nan.pth", {"0.weight": ck.tensor(w),
                                            "0.bias": ck.tensor(np.zeros(2, np.float32))}, ck)
    model = snnlite.nn.Sequential(snnlite.nn.Linear(3, 2))
    before = model.state_dict()
    with pytest.raises(NonFiniteError, match=r"nan.pth: NaN or infinity in 1 tensor\(s\): "
                                             r"0.weight"):
        load_torch_state_dict(model, path)
    for k, v in model.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(v, before[k])


# ------------------------------------------------------------------ a small fuzz of the loaders
ALLOWED = (ValueError, KeyError, pickle.UnpicklingError)


def _mutants(raw, rng, n):
    for _ in range(n):
        b = bytearray(raw)
        kind = rng.integers(3)
        if kind == 0:  # flip a few bytes
            for i in rng.integers(0, len(b), int(rng.integers(1, 8))):
                b[i] = int(rng.integers(256))
        elif kind == 1:  # truncate
            b = b[:int(rng.integers(0, len(b)))]
        else:  # a run of large numbers (sizes, counts, offsets)
            i = int(rng.integers(0, max(len(b) - 8, 1)))
            b[i:i + 8] = struct.pack("<Q", int(rng.integers(2**31, 2**62)))
        yield bytes(b)


def _fuzz(tmp_path, name, raw, load, n=60, seed=0):
    rng = np.random.default_rng(seed)
    path = tmp_path / name
    outcomes = {"loaded": 0, "refused": 0}
    for mutant in _mutants(raw, rng, n):
        path.write_bytes(mutant)
        with Peak() as peak:
            try:
                load(path)
                outcomes["loaded"] += 1
            except ALLOWED as e:
                assert name in str(e) or isinstance(e, KeyError), repr(e)
                outcomes["refused"] += 1
        assert peak.bytes < 32 * MB, (name, peak.bytes)
    assert outcomes["refused"] > 0
    return outcomes


@pytest.mark.parametrize("legacy", [False, True])
def test_fuzz_pth(tmp_path, legacy):
    ck = Ckpt(legacy=legacy)
    obj = {"conv.weight": ck.tensor(np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2)),
           "bn.num_batches_tracked": ck.tensor(np.array(3)), "epoch": 4,
           "view": rebuild_v2(ck.storage(np.arange(6.0)), 1, (2, 2), (2, 1))}
    good = (write_legacy if legacy else write_zip)(tmp_path / "good.pth", obj, ck)
    _fuzz(tmp_path, "fuzzed.pth", good.read_bytes(), load_pth, seed=int(legacy))


def test_fuzz_hdf5_checkpoint(tmp_path):
    path = tmp_path / "good.h5"
    save_checkpoint(path, {"0.weight": np.ones((4, 3, 3, 3), np.float32),
                           "1.running_var": np.ones(4, np.float32)},
                    {"model": "cifarnet_small"}, {"step": 3}, {"0.weight": np.zeros((4, 3, 3, 3))})
    _fuzz(tmp_path, "fuzzed.h5", path.read_bytes(), load_checkpoint, n=80)


def test_fuzz_npz(tmp_path):
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, x_train=rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8),
             y_train=np.arange(4), x_test=rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8),
             y_test=np.arange(2), label_names=np.array([str(i) for i in range(10)]))
    from snnlite.data import load_mini
    _fuzz(tmp_path, "fuzzed.npz", buf.getvalue(), load_mini)
