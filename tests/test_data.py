"""snnlite.data: datasets, resolution of dataset files, the deterministic loader."""
import gc
import hashlib
import io
import os
import threading
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import pytest

import data_tools
from data_tools import testing
from data_tools.testing import SMALL_COUNTS, make_archive
from snnlite import data
from snnlite.data import loader as data_loader

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SNNLITE_DATA") or REPO.parent / "shared" / "data")
MINI = SHARED / "cifar10-mini.npz"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Cache in tmp_path, no $SNNLITE_DATA, no network, small archive sizes accepted."""
    monkeypatch.setenv("SNNLITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SNNLITE_DATA", raising=False)
    monkeypatch.setattr(data_tools.specs, "SPECS", testing.specs_with(SMALL_COUNTS))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data_tools.ChecksumMismatchWarning)
        yield


def _dataset(n=103, seed=0, h=32, w=32):
    """Random images; label i = i (unique), so batches reveal the sample order."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, h, w), dtype=np.uint8)
    return data.ArrayDataset(images, np.arange(n), mean=data.CIFAR10_MEAN, std=data.CIFAR10_STD)


def _batches(iterator):
    return [(x.copy(), y.copy()) for x, y in iterator]


def _assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


# ----------------------------------------------------------------------------- datasets

def test_constants():
    assert data.CIFAR10_MEAN == (0.4914, 0.4822, 0.4465)
    assert data.CIFAR10_STD == (0.2470, 0.2435, 0.2616)
    assert data.CIFAR100_MEAN == (0.5071, 0.4865, 0.4409)
    assert data.CIFAR100_STD == (0.2673, 0.2564, 0.2762)


def test_array_dataset_validation():
    good = np.zeros((4, 3, 8, 8), np.uint8)
    with pytest.raises(TypeError, match="images must be uint8.*float32"):
        data.ArrayDataset(good.astype(np.float32), [0, 1, 2, 3])
    with pytest.raises(TypeError, match="images must be a numpy array"):
        data.ArrayDataset(good.tolist(), [0, 1, 2, 3])
    with pytest.raises(ValueError,
                       match=r"images must have shape \[N, 3, H, W\], got \(4, 8, 8, 3\)"):
        data.ArrayDataset(np.zeros((4, 8, 8, 3), np.uint8), [0, 1, 2, 3])
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\).*got \(3,\)"):
        data.ArrayDataset(good, [0, 1, 2])
    with pytest.raises(TypeError, match="labels must be integers"):
        data.ArrayDataset(good, [0.0, 1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="2 label_names"):
        data.ArrayDataset(good, [0, 1, 2, 3], label_names=["a", "b"])
    with pytest.raises(ValueError, match="mean must have 3 values"):
        data.ArrayDataset(good, [0, 1, 2, 3], mean=[0.5, 0.5], std=[1, 1, 1])
    ds = data.ArrayDataset(good + 7, [0, 1, 2, 1])
    assert len(ds) == 4 and ds.num_classes == 3 and ds.labels.dtype == np.int64
    image, label = ds[3]
    assert image.shape == (3, 8, 8) and label == 1
    np.testing.assert_allclose(ds.mean, 7 / 255, rtol=1e-6)


def test_channel_stats_exact():
    images = np.random.default_rng(3).integers(0, 256, size=(20, 3, 8, 8), dtype=np.uint8)
    mean, std = data.channel_stats(images)
    ref = images.transpose(1, 0, 2, 3).reshape(3, -1) / 255.0
    np.testing.assert_allclose(mean, ref.mean(axis=1), rtol=1e-6)
    np.testing.assert_allclose(std, ref.std(axis=1), rtol=1e-6)


@pytest.mark.skipif(not MINI.is_file(), reason=f"{MINI} not found (set SNNLITE_DATA)")
def test_load_mini():
    train, test = data.load_mini(MINI)
    assert train.images.shape == (1000, 3, 32, 32) and test.images.shape == (500, 3, 32, 32)
    assert train.images.flags["C_CONTIGUOUS"] and train.images.dtype == np.uint8
    assert train.label_names[6] == "frog" and test.num_classes == 10
    assert np.bincount(train.labels).tolist() == [100] * 10
    with np.load(MINI) as z:
        np.testing.assert_array_equal(train.images[5], z["x_train"][5].transpose(2, 0, 1))
        first = int(np.flatnonzero(z["train_index"] == 0)[0])  # official train[0], a frog
    assert list(train.images[first, 0, 0, :3]) == [59, 43, 50]
    assert train.labels[first] == 6
    np.testing.assert_array_equal(train.mean, np.float32(data.CIFAR10_MEAN))


def test_load_h5(tmp_path):
    archive, synth = make_archive(tmp_path, "cifar100")
    path = data_tools.convert(archive, tmp_path / "c100.h5", expected_counts=SMALL_COUNTS)
    train, test = data.load_h5(path, "train"), data.load_h5(path, "test")
    np.testing.assert_array_equal(train.images, synth.images["train"])
    np.testing.assert_array_equal(test.labels, synth.labels["test"])
    assert train.label_names == synth.label_names and train.num_classes == 100
    np.testing.assert_array_equal(test.std, np.float32(data.CIFAR100_STD))
    with pytest.raises(ValueError, match="split must be"):
        data.load_h5(path, "val")


# ----------------------------------------------------------------------------- resolution

@pytest.fixture
def archive_dir(tmp_path):
    """A read-only directory holding a small synthetic CIFAR-10 archive."""
    archive, _ = make_archive(tmp_path / "readonly", "cifar10", seed=5)
    archive.parent.chmod(0o555)
    yield archive.parent
    archive.parent.chmod(0o755)


def test_resolve_explicit_forms(tmp_path, archive_dir):
    cache = tmp_path / "cache"
    archive = archive_dir / "cifar-10-python.tar.gz"
    for form in (archive, archive_dir):
        assert data.resolve_dataset("cifar10", form) == cache / "cifar10.h5"
        assert sorted(p.name for p in archive_dir.iterdir()) == [archive.name]
    h5 = data_tools.convert(archive, tmp_path / "elsewhere" / "cifar10.h5",
                            expected_counts=SMALL_COUNTS)
    assert data.resolve_dataset("cifar10", h5) == h5
    assert data.resolve_dataset("cifar10", h5.parent) == h5
    assert data.resolve_dataset("CIFAR-10", str(h5)) == h5


def test_resolve_order(tmp_path, monkeypatch):
    def h5_in(directory, seed):
        archive, _ = make_archive(tmp_path / f"src{seed}", "cifar10", seed=seed)
        return data_tools.convert(archive, directory / "cifar10.h5",
                                  expected_counts=SMALL_COUNTS)

    cache_h5 = h5_in(tmp_path / "cache", 1)
    env_h5 = h5_in(tmp_path / "env", 2)
    explicit_h5 = h5_in(tmp_path / "explicit", 3)
    assert data.resolve_dataset() == cache_h5
    monkeypatch.setenv("SNNLITE_DATA", str(env_h5.parent))
    assert data.resolve_dataset() == env_h5
    assert data.resolve_dataset(data=explicit_h5.parent) == explicit_h5


def test_resolve_env_archive_converts_into_cache(tmp_path, monkeypatch, archive_dir):
    monkeypatch.setenv("SNNLITE_DATA", str(archive_dir))
    path = data.resolve_dataset("cifar10")
    assert path == tmp_path / "cache" / "cifar10.h5"
    train, test = data.load_dataset("cifar10")
    assert len(train) == 50 and len(test) == 20


def test_resolve_not_found_names_every_place(tmp_path, monkeypatch):
    monkeypatch.setenv("SNNLITE_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError) as err:
        data.resolve_dataset("cifar10", download=False)
    message = str(err.value)
    for place in (tmp_path / "data", tmp_path / "cache" / "cifar10.h5",
                  tmp_path / "cache" / "cifar-10-python.tar.gz"):
        assert str(place) in message
    assert "download disabled" in message
    with pytest.raises(FileNotFoundError, match="download from .* failed"):
        data.resolve_dataset("cifar10")
    with pytest.raises(FileNotFoundError, match="directory .*nowhere does not exist"):
        data.resolve_dataset("cifar10", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere.h5 \\(does not exist\\)"):
        data.resolve_dataset("cifar10", tmp_path / "nowhere.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        data.resolve_dataset("cifar10", tmp_path / "empty")


def test_resolve_downloads_into_cache(tmp_path, monkeypatch):
    archive, _ = make_archive(tmp_path / "served", "cifar10")
    body = archive.read_bytes()
    monkeypatch.setattr(data_tools.specs, "SPECS", testing.specs_with(
        SMALL_COUNTS, md5={"cifar10": hashlib.md5(body).hexdigest()}))

    class Response(io.BytesIO):
        def __init__(self):
            super().__init__(body)
            self.headers = {"Content-Length": str(len(body))}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout=None: Response())
    monkeypatch.setattr(data_tools.fetch, "tqdm", _silent_tqdm)
    assert data.resolve_dataset("cifar10") == tmp_path / "cache" / "cifar10.h5"


def _silent_tqdm(*args, **kwargs):
    from tqdm import tqdm

    return tqdm(*args, **{**kwargs, "disable": True})


def test_resolve_rejects_corrupt_explicit_h5(tmp_path):
    bad = tmp_path / "cifar10.h5"
    bad.write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        data.resolve_dataset("cifar10", bad)


@pytest.mark.skipif(not (SHARED / "cifar-10-python.tar.gz").is_file(),
                    reason=f"real CIFAR-10 archive not found in {SHARED} (set SNNLITE_DATA)")
def test_real_cifar10_via_snnlite_data(tmp_path, monkeypatch):
    monkeypatch.setattr(data_tools.specs, "SPECS", testing.specs_with())  # official counts
    monkeypatch.setenv("SNNLITE_DATA", str(SHARED))
    train, test = data.load_dataset("cifar10")
    assert len(train) == 50000 and len(test) == 10000
    assert list(test.labels[:20]) == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    mean, std = data.channel_stats(train.images)
    np.testing.assert_allclose(mean, [0.491400, 0.482158, 0.446531], atol=2e-6)
    np.testing.assert_allclose(std, [0.247029, 0.243484, 0.261587], atol=2e-6)
    assert (tmp_path / "cache" / "cifar10.h5").is_file()


# ----------------------------------------------------------------------------- augmentation

def _reference_crop_flip(images, seed, epoch, index, pad=4):
    """Plain-loop reference of the documented augmentation protocol."""
    rng = np.random.default_rng([seed, epoch, index])
    n, _, h, w = images.shape
    offsets = rng.integers(0, 2 * pad + 1, size=(2, n))
    flips = rng.random(n) < 0.5
    out = np.empty_like(images)
    for b in range(n):
        padded = np.pad(images[b], ((0, 0), (pad, pad), (pad, pad)))
        crop = padded[:, offsets[0, b]:offsets[0, b] + h, offsets[1, b]:offsets[1, b] + w]
        out[b] = crop[:, :, ::-1] if flips[b] else crop
    return out


def test_augmentation_matches_reference():
    ds = _dataset(n=70, h=32, w=24)
    loader = data.Loader(ds, 16, seed=11, prefetch=0)
    for epoch in (0, 3):
        perm = np.random.default_rng([11, epoch]).permutation(70)
        for index, (x, y) in enumerate(loader.epoch(epoch)):
            rows = perm[index * 16:(index + 1) * 16]
            np.testing.assert_array_equal(y, rows)
            ref = _reference_crop_flip(ds.images[rows], 11, epoch, index)
            np.testing.assert_array_equal(x, ref / np.float32(255))


def test_crop_flip_edge_cases():
    images = np.arange(2 * 3 * 5 * 6, dtype=np.uint8).reshape(2, 3, 5, 6)
    same = data.random_crop_flip(images, np.array([2, 2]), np.array([2, 2]),
                                 np.array([False, False]), pad=2)
    np.testing.assert_array_equal(same, images)
    out = data.random_crop_flip(images, np.array([0, 4]), np.array([4, 0]),
                                np.array([True, False]), pad=2)
    np.testing.assert_array_equal(out[0, :, 2:, 2:], images[0, :, :3, 2:][:, :, ::-1])
    assert not out[0, :, :2].any() and not out[0, :, :, :2].any()
    np.testing.assert_array_equal(out[1, :, :3, 2:], images[1, :, 2:, :4])
    with pytest.raises(ValueError, match=r"dx must have shape \(2,\)"):
        data.random_crop_flip(images, np.array([0, 0]), np.array([0]), np.array([True, False]))


@pytest.mark.slow
def test_augmentation_speed():
    """Crop+flip stays vectorised: a wall-clock bound, so it runs only with ``-m slow``.

    Timing depends on the machine and its load, so it is kept out of the default suite; the
    correctness of the same code is pinned by the two tests above.
    """
    images = np.random.default_rng(0).integers(0, 256, (256, 3, 32, 32), dtype=np.uint8)
    rng = np.random.default_rng(1)
    times = []
    for _ in range(30):
        t0 = time.perf_counter()
        dy, dx, flip = data.crop_flip_params(rng, 256)
        data.random_crop_flip(images, dy, dx, flip)
        times.append(time.perf_counter() - t0)
    median_ms = 1e3 * float(np.median(times))
    print(f"crop+flip of 256 images: {median_ms:.2f} ms (median)")
    assert median_ms < 25  # typically ~0.5 ms; generous bound for loaded machines


# ----------------------------------------------------------------------------- loader

def test_loader_shapes_and_len():
    ds = _dataset()
    loader = data.Loader(ds, 16)
    assert len(loader) == 6
    batches = _batches(loader.epoch(0))
    assert len(batches) == 6
    for x, y in batches:
        assert x.shape == (16, 3, 32, 32) and x.dtype == np.float32
        assert x.flags["C_CONTIGUOUS"] and 0 <= x.min() and x.max() <= 1
        assert y.shape == (16,) and y.dtype == np.int64
    tail = data.Loader(ds, 16, drop_last=False)
    assert len(tail) == 7 and [len(y) for _, y in tail.epoch(0)][-1] == 103 - 96


def test_loader_plain_order():
    ds = _dataset()
    loader = data.Loader(ds, 10, shuffle=False, augment=False, drop_last=False)
    batches = _batches(loader.epoch(4))
    x = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(x, ds.images / np.float32(255))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), np.arange(103))


def test_loader_permutation_and_determinism():
    ds = _dataset()
    loader = data.Loader(ds, 10, seed=7, drop_last=False)
    for epoch in (0, 1):
        y = np.concatenate([y for _, y in loader.epoch(epoch)])
        np.testing.assert_array_equal(y, np.random.default_rng([7, epoch]).permutation(103))
    _assert_same(_batches(loader.epoch(1)),
                 _batches(data.Loader(ds, 10, seed=7, drop_last=False, prefetch=0).epoch(1)))
    other_seed = _batches(data.Loader(ds, 10, seed=8, drop_last=False).epoch(1))
    assert not np.array_equal(other_seed[0][1], _batches(loader.epoch(1))[0][1])
    assert not np.array_equal(_batches(loader.epoch(0))[0][1], _batches(loader.epoch(1))[0][1])


def test_loader_resume_and_set_epoch():
    ds = _dataset()
    loader = data.Loader(ds, 16, seed=3)
    full = _batches(loader.epoch(2))
    for start in (0, 1, 4, 5):
        resumed = loader.epoch(2, start=start)
        assert len(resumed) == 6 - start
        _assert_same(_batches(resumed), full[start:])
    assert _batches(loader.epoch(2, start=6)) == []
    with pytest.raises(ValueError, match="start must be <= 6"):
        loader.epoch(2, start=7)
    loader.set_epoch(2)
    _assert_same(_batches(loader), full)
    x3, y3 = loader.batch(2, 3)
    np.testing.assert_array_equal(x3, full[3][0])
    np.testing.assert_array_equal(y3, full[3][1])


def test_loader_argument_errors():
    ds = _dataset(n=20)
    with pytest.raises(TypeError, match="dataset must be an ArrayDataset"):
        data.Loader(ds.images, 4)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        data.Loader(ds, 0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        data.Loader(ds, 4.0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        data.Loader(ds, 4, seed=-1)
    with pytest.raises(ValueError, match="exceeds the dataset size 20"):
        data.Loader(ds, 32)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        data.Loader(ds, 4).set_epoch(-1)


@pytest.mark.parametrize("prefetch", [0, 2])
def test_loader_propagates_exceptions(monkeypatch, prefetch):
    calls = []
    real = data.random_crop_flip

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("augmentation failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(data_loader, "random_crop_flip", failing)
    iterator = data.Loader(_dataset(), 16, prefetch=prefetch).epoch(0)
    seen = 0
    with pytest.raises(RuntimeError, match="augmentation failed"):
        for _ in iterator:
            seen += 1
    assert seen == 2
    if prefetch:
        assert not iterator._thread.is_alive()
    assert list(iterator) == []


def _record_batches(monkeypatch):
    """Make every batch the loader prepares append its thread's name to the returned list."""
    produced = []
    changed = threading.Condition()
    real = data_loader.random_crop_flip

    def recording(*args, **kwargs):
        out = real(*args, **kwargs)
        with changed:
            produced.append(threading.current_thread().name)
            changed.notify_all()
        return out

    monkeypatch.setattr(data_loader, "random_crop_flip", recording)
    return produced, changed


def test_loader_prefetches_while_the_consumer_works(monkeypatch):
    """With prefetch=2 the next batches are prepared, in the loader thread, while the consumer
    still holds an earlier one; the thread runs at most ``prefetch`` queued batches ahead."""
    produced, changed = _record_batches(monkeypatch)
    loader = data.Loader(_dataset(), 16, prefetch=2)  # 6 batches
    iterator = loader.epoch(0)
    first = next(iterator)
    with changed:
        # batch 0 taken; 1 and 2 fill the queue; 3 is prepared and waits for a free slot
        assert changed.wait_for(lambda: len(produced) >= 4, timeout=60), produced
        assert iterator._queue.qsize() == 2
    assert set(produced) == {"snnlite-loader"}
    second = next(iterator)  # frees a slot: batch 3 is queued and batch 4 prepared
    with changed:
        assert changed.wait_for(lambda: len(produced) >= 5, timeout=60), produced
    rest = _batches(iterator)
    assert len(produced) == 6 and len(rest) == 4
    _assert_same([first, second] + rest, _batches(data.Loader(_dataset(), 16, prefetch=0)
                                                  .epoch(0)))


def test_loader_without_prefetch_prepares_on_demand(monkeypatch):
    produced, _ = _record_batches(monkeypatch)
    iterator = data.Loader(_dataset(), 16, prefetch=0).epoch(0)
    next(iterator)
    assert produced == [threading.current_thread().name]
    next(iterator)
    assert len(produced) == 2 and not hasattr(iterator, "_thread")


def test_abandoned_iterator_stops_its_thread():
    loader = data.Loader(_dataset(), 4, prefetch=2)
    iterator = loader.epoch(0)
    next(iterator)
    thread = iterator._thread
    assert thread.is_alive()  # blocked on a full queue
    del iterator
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()

    with loader.epoch(1) as iterator:
        next(iterator)
        thread = iterator._thread
    assert not thread.is_alive() and list(iterator) == []
    for _ in loader.epoch(2):
        break
    gc.collect()
    time.sleep(0.01)
    assert not [t for t in threading.enumerate() if t.name == "snnlite-loader"]


# ----------------------------------------------------------------------------- normalize

def test_normalize():
    x = np.random.default_rng(0).random((2, 3, 4, 5)).astype(np.float32)
    out = data.normalize(x, data.CIFAR10_MEAN, data.CIFAR10_STD)
    mean = np.float32(data.CIFAR10_MEAN)[:, None, None]
    std = np.float32(data.CIFAR10_STD)[:, None, None]
    assert out.dtype == np.float32 and out.shape == x.shape
    np.testing.assert_allclose(out, (x - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(data.normalize(x[0].astype(np.float64), mean[:, 0, 0], std[:, 0, 0]),
                               out[0], rtol=1e-6)
    with pytest.raises(TypeError, match="x must be floating point.*uint8"):
        data.normalize(np.zeros((2, 3, 4, 4), np.uint8), mean, std)
    with pytest.raises(ValueError, match=r"x must have shape \[..., 3, H, W\], got \(2, 4, 4, 3\)"):
        data.normalize(np.zeros((2, 4, 4, 3), np.float32), data.CIFAR10_MEAN, data.CIFAR10_STD)
    with pytest.raises(ValueError, match="std must have 3 values"):
        data.normalize(x, data.CIFAR10_MEAN, [1.0, 1.0])
    with pytest.raises(ValueError, match="std must be positive"):
        data.normalize(x, data.CIFAR10_MEAN, [1.0, 0.0, 1.0])
