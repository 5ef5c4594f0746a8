"""data_tools: CIFAR archive verification, restricted unpickling, HDF5 conversion, CLI."""
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

import data_tools
from data_tools import testing
from data_tools.__main__ import main as cli
from data_tools.testing import SMALL_COUNTS, archive_members, make_archive, write_archive

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SNNLITE_DATA") or REPO.parent / "shared" / "data")
REAL_ARCHIVE = SHARED / "cifar-10-python.tar.gz"
REAL_SHA256 = "383b9f67f40655f4493f065933f52a138eea4221dd785f8c970a89c74467439d"
needs_real = pytest.mark.skipif(not REAL_ARCHIVE.is_file(),
                                reason=f"real CIFAR-10 archive not found at {REAL_ARCHIVE} "
                                       "(set SNNLITE_DATA)")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Cache in tmp_path, no network, checksum warnings silenced unless a test asks."""
    monkeypatch.setenv("SNNLITE_CACHE", str(tmp_path / "cache"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data_tools.ChecksumMismatchWarning)
        yield


@pytest.fixture
def small_specs(monkeypatch):
    """Let prepare() and the CLI accept SMALL_COUNTS archives."""
    monkeypatch.setattr(data_tools.specs, "SPECS", testing.specs_with(SMALL_COUNTS))


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _broken_archive(tmp_path: Path, name: str = "cifar10", **changes) -> Path:
    """Synthetic archive with members replaced (bytes) or removed (None)."""
    data = testing.synthetic_cifar(name)
    members = archive_members(data)
    for member, raw in changes.items():
        if raw is None:
            del members[member]
        else:
            members[member] = raw
    return write_archive(tmp_path / data.spec.filename, data.spec.folder, members)


def _assert_refused(archive: Path, out_dir: Path, *fragments: str) -> None:
    """verify and convert both raise ValueError naming the file; no output is left."""
    for call in (lambda: data_tools.verify_archive(archive, "cifar10", SMALL_COUNTS),
                 lambda: data_tools.convert(archive, out_dir / "cifar10.h5",
                                            expected_counts=SMALL_COUNTS)):
        with pytest.raises(ValueError) as err:
            call()
        message = str(err.value)
        assert archive.name in message
        for fragment in fragments:
            assert fragment in message, message
    assert _files(out_dir) == []


# ----------------------------------------------------------------------------- valid archives

@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_convert_roundtrip(tmp_path, name):
    archive, data = make_archive(tmp_path / "src", name)
    with pytest.warns(data_tools.ChecksumMismatchWarning,
                      match="differs from the official.*structure was verified"):
        info = data_tools.verify_archive(archive, name, SMALL_COUNTS)
    assert dict(info.counts) == SMALL_COUNTS
    assert info.label_names == data.label_names
    assert not info.official_md5_match
    assert info.md5 == hashlib.md5(archive.read_bytes()).hexdigest()

    out = data_tools.convert(archive, tmp_path / "out", expected_counts=SMALL_COUNTS)
    assert out == tmp_path / "out" / f"{name}.h5"
    with h5py.File(out, "r") as f:
        for split in ("train", "test"):
            images = f[f"{split}/images"]
            assert images.dtype == np.uint8 and images.shape == (SMALL_COUNTS[split], 3, 32, 32)
            np.testing.assert_array_equal(images[()], data.images[split])
            np.testing.assert_array_equal(f[f"{split}/labels"][()], data.labels[split])
        assert tuple(f["label_names"].asstr()[()]) == data.label_names
        assert f.attrs["dataset"] == name
        assert f.attrs["source_archive"] == archive.name
        assert f.attrs["source_md5"] == info.md5
        assert f.attrs["source_sha256"] == info.sha256
        assert not f.attrs["official_md5_match"]
        assert f.attrs["converter_version"] == data_tools.CONVERTER_VERSION
        if name == "cifar100":
            assert len(f["label_names"]) == 100 and len(f["coarse_label_names"]) == 20
            np.testing.assert_array_equal(f["train/coarse_labels"][()],
                                          data.coarse_labels["train"])
    assert _files(tmp_path / "out") == [f"{name}.h5"]
    assert dict(data_tools.check_h5(out, name, SMALL_COUNTS).counts) == SMALL_COUNTS


def test_rows_are_rgb_planes(tmp_path):
    """Row layout: 1024 red, 1024 green, 1024 blue values, each plane row-major."""
    data = testing.synthetic_cifar("cifar10")
    row = data.images["train"][7].reshape(-1)
    archive, _ = make_archive(tmp_path, "cifar10")
    out = data_tools.convert(archive, tmp_path / "c.h5", expected_counts=SMALL_COUNTS)
    with h5py.File(out, "r") as f:
        img = f["train/images"][7]
    assert img[0, 0, 1] == row[1] and img[0, 1, 0] == row[32]
    assert img[1, 0, 0] == row[1024] and img[2, 31, 31] == row[3071]


def test_official_md5_gives_no_warning(tmp_path, monkeypatch):
    archive, _ = make_archive(tmp_path, "cifar10")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(data_tools.specs, "SPECS", testing.specs_with(md5={"cifar10": md5}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        info = data_tools.verify_archive(archive, "cifar10", SMALL_COUNTS)
    assert info.official_md5_match


# ----------------------------------------------------------------------------- broken archives

def test_truncated_archive(tmp_path):
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    raw = archive.read_bytes()
    for cut in (len(raw) // 2, len(raw) - 4):
        archive.write_bytes(raw[:cut])
        _assert_refused(archive, tmp_path / "out", "truncated")


def test_corrupt_gzip(tmp_path):
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    raw = bytearray(archive.read_bytes())
    for offset in (len(raw) // 3, len(raw) // 2, len(raw) - 20):
        damaged = bytearray(raw)
        damaged[offset] ^= 0xFF  # one flipped byte, often inside incompressible pixels
        archive.write_bytes(bytes(damaged))
        _assert_refused(archive, tmp_path / "out")
    damaged = bytearray(raw)
    damaged[len(raw) // 2] ^= 0xFF  # inside stored pixel data: only the gzip CRC catches it
    archive.write_bytes(bytes(damaged))
    _assert_refused(archive, tmp_path / "out", "corrupt gzip data", "CRC")


def test_not_gzip_and_not_tar(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"this is not an archive" * 100)
    _assert_refused(archive, tmp_path / "out", "not a gzip file")
    archive.write_bytes(gzip.compress(b"\x01" * 4096))
    _assert_refused(archive, tmp_path / "out", "tar")


def test_missing_member(tmp_path):
    archive = _broken_archive(tmp_path, data_batch_3=None)
    _assert_refused(archive, tmp_path / "out", "missing", "data_batch_3")


def test_label_out_of_range(tmp_path):
    data = testing.synthetic_cifar("cifar10")
    data.labels["train"][3] = 10
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz", data.spec.folder,
                            archive_members(data))
    _assert_refused(archive, tmp_path / "out", "data_batch_1", "out of range", "0..9")


def test_wrong_data_dtype_and_shape(tmp_path):
    bad = {b"data": np.zeros((10, 3072), np.float32), b"labels": [0] * 10}
    archive = _broken_archive(tmp_path, data_batch_2=testing.py2_dumps(bad))
    _assert_refused(archive, tmp_path / "out", "data_batch_2", "uint8")
    bad = {b"data": np.zeros((10, 1024), np.uint8), b"labels": [0] * 10}
    archive = _broken_archive(tmp_path, data_batch_2=testing.py2_dumps(bad))
    _assert_refused(archive, tmp_path / "out", "data_batch_2", "3072")
    archive = _broken_archive(tmp_path, data_batch_2=testing.py2_dumps([1, 2, 3]))
    _assert_refused(archive, tmp_path / "out", "data_batch_2", "dict")


def test_wrong_counts(tmp_path):
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    with pytest.raises(ValueError, match="train split has 50 images, expected 50000"):
        data_tools.verify_archive(archive, "cifar10")
    with pytest.raises(ValueError, match="expected 50000"):
        data_tools.convert(archive, tmp_path / "out" / "cifar10.h5")
    assert _files(tmp_path / "out") == []


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    payload = testing.py2_dumps({b"data": _Exploit(marker), b"labels": []})
    archive = _broken_archive(tmp_path, data_batch_1=payload)
    _assert_refused(archive, tmp_path / "out", "data_batch_1", "refusing", "system")
    assert not marker.exists()
    # the payload really is live under a plain unpickler
    pickle.loads(payload)
    assert marker.exists()


@pytest.mark.parametrize("module, name", [("builtins", "eval"), ("numpy", "load"),
                                          ("_codecs", "encode"), ("os", "system")])
def test_restricted_unpickler_refuses_other_globals(module, name):
    payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00."
    with pytest.raises(pickle.UnpicklingError, match=f"refusing.*{module}.{name}"):
        data_tools.restricted_loads(payload)


def test_restricted_unpickler_loads_arrays():
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    py2 = testing.py2_dumps({b"a": arr, b"s": np.int64(5)})              # numpy.core names
    py3 = pickle.dumps({b"a": arr, b"s": np.int64(5)}, protocol=4)       # numpy._core names
    assert b"numpy.core.multiarray" in py2 and b"_codecs" not in py2
    for payload in (py2, py3):
        out = data_tools.restricted_loads(payload)
        np.testing.assert_array_equal(out[b"a"], arr)
        assert out[b"s"] == 5


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    real_write = data_tools.hdf5._write_h5

    def write_then_interrupt(path, info, splits):
        real_write(path, info, splits)
        raise KeyboardInterrupt

    monkeypatch.setattr(data_tools.hdf5, "_write_h5", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        data_tools.convert(archive, tmp_path / "out" / "cifar10.h5",
                           expected_counts=SMALL_COUNTS)
    assert _files(tmp_path / "out") == []


def test_check_h5_rejects_bad_files(tmp_path):
    bad = tmp_path / "cifar10.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        data_tools.check_h5(bad)
    with h5py.File(bad, "w") as f:
        f.attrs["dataset"] = "cifar10"
    with pytest.raises(ValueError, match="missing attribute"):
        data_tools.check_h5(bad)
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    good = data_tools.convert(archive, tmp_path, expected_counts=SMALL_COUNTS)
    with pytest.raises(ValueError, match="expected 'cifar100'"):
        data_tools.check_h5(good, "cifar100")
    with pytest.raises(ValueError, match="expected 50000"):
        data_tools.check_h5(good, "cifar10", {"train": 50000, "test": 10000})


# ----------------------------------------------------------------------------- prepare

def test_prepare_from_file_dir_and_reuse(tmp_path, small_specs, monkeypatch):
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    cache = tmp_path / "cache"
    out = data_tools.prepare("cifar10", src=archive, cache_dir=cache)
    assert out == cache / "cifar10.h5" and _files(cache) == ["cifar10.h5"]
    assert _files(archive.parent) == [archive.name]  # nothing written next to the archive
    mtime = out.stat().st_mtime_ns

    def no_convert(*args, **kwargs):
        raise AssertionError("a valid file should be reused")

    monkeypatch.setattr(data_tools.cache, "convert", no_convert)
    assert data_tools.prepare("cifar10", src=archive.parent, cache_dir=cache) == out
    assert data_tools.prepare("cifar10", cache_dir=cache) == out  # no src: no download either
    assert out.stat().st_mtime_ns == mtime


def test_prepare_reconverts_other_source_invalid_file_and_force(tmp_path, small_specs):
    cache = tmp_path / "cache"
    first, _ = make_archive(tmp_path / "a", "cifar10", seed=1)
    second, data2 = make_archive(tmp_path / "b", "cifar10", seed=2)
    out = data_tools.prepare("cifar10", src=first, cache_dir=cache)
    out = data_tools.prepare("cifar10", src=second, cache_dir=cache)  # different MD5
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["test/images"][()], data2.images["test"])
    out.write_bytes(b"garbage")
    assert data_tools.prepare("cifar10", src=second, cache_dir=cache) == out
    data_tools.check_h5(out, "cifar10")
    lines = []
    data_tools.prepare("cifar10", src=second, cache_dir=cache, force=True, log=lines.append)
    assert any("converting" in line for line in lines)


def test_prepare_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        data_tools.prepare("cifar10", src=tmp_path / "nope.tar.gz", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz not found in"):
        data_tools.prepare("cifar10", src=tmp_path, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown dataset"):
        data_tools.prepare("mnist", cache_dir=tmp_path)


# ----------------------------------------------------------------------------- download

class _FakeResponse(io.BytesIO):
    def __init__(self, body: bytes, length: int | None = None):
        super().__init__(body)
        size = len(body) if length is None else length
        self.headers = {"Content-Length": str(size)}


def _serve(monkeypatch, body: bytes, length: int | None = None) -> list:
    requests = []

    def fake_urlopen(url, timeout=None):
        requests.append(url)
        return _FakeResponse(body, length)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requests


def test_download_streams_and_checks_md5(tmp_path, monkeypatch):
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    body = archive.read_bytes()
    requests = _serve(monkeypatch, body)
    dest = tmp_path / "dl"
    with pytest.raises(ValueError, match="does not match the official"):
        data_tools.download("cifar10", dest, progress=False)
    assert _files(dest) == []
    assert requests == [data_tools.specs.SPECS["cifar10"].url]

    monkeypatch.setattr(data_tools.specs, "SPECS",
                        testing.specs_with(md5={"cifar10": hashlib.md5(body).hexdigest()}))
    path = data_tools.download("cifar10", dest, progress=False, chunk_size=1000)
    assert path == dest / "cifar-10-python.tar.gz" and path.read_bytes() == body
    assert _files(dest) == [path.name]


def test_download_incomplete_and_network_error(tmp_path, monkeypatch):
    _serve(monkeypatch, b"x" * 100, length=1000)
    with pytest.raises(ValueError, match="incomplete"):
        data_tools.download("cifar10", tmp_path, progress=False)
    assert _files(tmp_path) == []
    monkeypatch.undo()
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: (_ for _ in ()).throw(urllib.error.URLError("down")))
    with pytest.raises(urllib.error.URLError):
        data_tools.download("cifar10", tmp_path, progress=False)
    assert _files(tmp_path) == []


def test_prepare_downloads_when_nothing_cached(tmp_path, monkeypatch):
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    body = archive.read_bytes()
    monkeypatch.setattr(data_tools.specs, "SPECS", testing.specs_with(
        SMALL_COUNTS, md5={"cifar10": hashlib.md5(body).hexdigest()}))
    _serve(monkeypatch, body)
    cache = tmp_path / "cache"
    out = data_tools.prepare("cifar10", progress=False)  # cache from $SNNLITE_CACHE
    assert out == cache / "cifar10.h5"
    assert _files(cache) == ["cifar-10-python.tar.gz", "cifar10.h5"]
    with h5py.File(out, "r") as f:
        assert f.attrs["official_md5_match"]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SNNLITE_CACHE", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert data_tools.default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SNNLITE_CACHE")
    assert data_tools.default_cache_dir() == tmp_path / "x" / "snnlite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_tools.default_cache_dir() == Path.home() / ".cache" / "snnlite"


# ----------------------------------------------------------------------------- command line

def test_cli_converts_and_reports(tmp_path, small_specs, capsys):
    archive, _ = make_archive(tmp_path / "src", "cifar10")
    out_dir = tmp_path / "out"
    assert cli(["cifar10", "--from", str(archive), "--out", str(out_dir)]) == 0
    text = capsys.readouterr().out
    assert str(out_dir / "cifar10.h5") in text
    assert "train: 50 images, test: 20 images, 10 classes" in text
    assert "differs from the official archive" in text and "structure verified" in text
    assert data_tools.cli_main(["cifar10", "--from", str(archive.parent),
                                "--out", str(out_dir)]) == 0
    assert "reusing" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert cli(["cifar10", "--from", str(tmp_path / "missing.tar.gz"),
                "--out", str(tmp_path)]) == 1
    assert "error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["mnist"])


def test_python_dash_m(tmp_path):
    env = {**os.environ, "SNNLITE_CACHE": str(tmp_path)}
    run = subprocess.run([sys.executable, "-m", "data_tools", "cifar10", "--from",
                          str(tmp_path / "absent"), "--no-progress"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1 and "source archive not found" in run.stderr
    assert _files(tmp_path) == []


# ----------------------------------------------------------------------------- real archive

@pytest.fixture(scope="module")
def real_h5(tmp_path_factory):
    """The shared CIFAR-10 archive converted once (about 2 s)."""
    if not REAL_ARCHIVE.is_file():
        pytest.skip(f"real CIFAR-10 archive not found at {REAL_ARCHIVE} (set SNNLITE_DATA)")
    out = tmp_path_factory.mktemp("real") / "cifar10.h5"
    with pytest.warns(data_tools.ChecksumMismatchWarning,
                      match="differs from the official cifar10 archive"):
        data_tools.convert(REAL_ARCHIVE, out)
    return out


@needs_real
def test_real_archive_known_values(real_h5):
    with h5py.File(real_h5, "r") as f:
        train, test = f["train/images"], f["test/images"]
        assert train.shape == (50000, 3, 32, 32) and test.shape == (10000, 3, 32, 32)
        rows = train[[0, 1, 9999]].reshape(3, -1)
        assert list(rows[0, :3]) == [59, 43, 50] and list(rows[0, -3:]) == [140, 84, 72]
        assert list(rows[1, :3]) == [154, 126, 105] and list(rows[1, -3:]) == [139, 142, 144]
        assert list(rows[2, :3]) == [62, 61, 60] and list(rows[2, -3:]) == [130, 130, 131]
        assert list(test[0].reshape(-1)[:6]) == [158, 159, 165, 166, 160, 156]
        assert list(train[:10, 0, 0, 0]) == [59, 154, 255, 28, 170, 159, 164, 28, 134, 125]
        assert list(test[:10, 0, 0, 0]) == [158, 235, 158, 155, 65, 179, 160, 83, 23, 217]
        assert list(f["test/labels"][:20]) == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1,
                                               0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
        assert np.bincount(f["train/labels"][()]).tolist() == [5000] * 10
        assert np.bincount(f["test/labels"][()]).tolist() == [1000] * 10
        assert f["label_names"].asstr()[6] == "frog" and f["train/labels"][0] == 6
        assert f.attrs["source_sha256"] == REAL_SHA256
        assert not f.attrs["official_md5_match"]


@needs_real
def test_real_archive_cli_reuses_conversion(real_h5, tmp_path, capsys):
    assert cli(["cifar10", "--from", str(SHARED), "--out", str(real_h5.parent)]) == 0
    text = capsys.readouterr().out
    assert "reusing" in text and "train: 50000 images, test: 10000 images" in text
    assert "differs from the official archive (c58f30108f718f92721af3b95e74349a)" in text
