"""The detection data sets: ShapeDetection (no download), DigitDetection on a fake MNIST written here and on the
real one when it is cached (skipped otherwise, as in test_data.py), detection_collate and the bilinear resize."""
import numpy as np
import pytest

from minicnn import data
from minicnn.data import datasets
from minicnn.data.detection import ink_box, resize_bilinear


# --- data sets -----------------------------------------------------------------------------------------------------

def _check_items(ds, n, classes):
    for i in range(n):
        image, target = ds[i]
        boxes, labels = target["boxes"], target["labels"]
        assert image.dtype == np.float32 and image.shape == (ds.channels if hasattr(ds, "channels") else 1,
                                                             ds.size, ds.size)
        assert 0 <= image.min() and image.max() <= 1
        assert boxes.dtype == np.float32 and labels.dtype == np.int64 and boxes.shape == (len(labels), 4)
        assert ds.min_objects <= len(labels) <= ds.max_objects and set(labels) <= set(range(classes))
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= ds.size).all() and (boxes[:, 2:] > boxes[:, :2]).all()
        ink = image.max(axis=0) > 0
        inside = np.zeros_like(ink)
        for x1, y1, x2, y2 in boxes.astype(int):  # each edge row and column of a box touches ink
            region = ink[y1:y2, x1:x2]
            assert region[0].any() and region[-1].any() and region[:, 0].any() and region[:, -1].any()
            inside[y1:y2, x1:x2] = True
        assert not (ink & ~inside).any()  # nothing drawn outside the boxes


def test_shapes_dataset():
    ds = data.ShapeDetection(size=48, sizes=(6, 16), channels=3, seed=5, length=50)
    assert len(ds) == 50 and ds.num_classes == 3 and ds.classes[1] == "disc"
    _check_items(ds, 50, 3)
    later = [ds[i] for i in (7, 3, 7)]  # the same item whatever the order it is asked for in
    np.testing.assert_array_equal(later[0][0], later[2][0])
    np.testing.assert_array_equal(ds[3][1]["boxes"], later[1][1]["boxes"])
    np.testing.assert_array_equal(ds[-1][0], ds[49][0])
    other = data.ShapeDetection(size=48, sizes=(6, 16), channels=3, seed=6, length=50)
    test = data.ShapeDetection(train=False, size=48, sizes=(6, 16), channels=3, seed=5, length=50)
    assert not np.array_equal(ds[0][0], other[0][0]) and not np.array_equal(ds[0][0], test[0][0])
    for i in range(20):  # boxes frame whole rectangles and discs, each shape of one colour
        image, target = ds[i]
        for (x1, y1, x2, y2), kind in zip(target["boxes"].astype(int), target["labels"]):
            pixels = image[:, y1:y2, x1:x2]
            shape = pixels.max(axis=0) > 0
            if kind < 2:
                np.testing.assert_array_equal(shape, data.ShapeDetection.mask(kind, y2 - y1, x2 - x1))
            colours = pixels[:, shape]
            assert (colours == colours[:, :1]).all() and colours.min() >= 0.3
    grey = data.ShapeDetection(seed=0, length=3)
    assert grey[0][0].shape == (1, 64, 64)
    # a disc of extent 7 x 7 is the pixels whose centres lie within 3.5 of the centre
    disc = data.ShapeDetection.mask(1, 7, 7)
    assert disc.sum() == 37 and ink_box(disc).tolist() == [0, 0, 7, 7]
    with pytest.raises(IndexError, match="out of range"):
        ds[50]


def _fake_mnist(root, n=40):
    """An mnist.npz as load_mnist caches it: digit k is a bright k+1-pixel-wide bar, so its ink is known."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "test"):
        y = rng.integers(0, 10, n)
        x = np.zeros((n, 28, 28), np.float32)
        for i, k in enumerate(y):
            x[i, 4:24, 10:11 + k] = 1.0
        arrays[f"{split}_x"], arrays[f"{split}_y"] = x.reshape(n, 784), y.astype(np.int64)
    np.savez_compressed(root / "mnist.npz", **arrays)


def test_digit_detection_on_a_fake_mnist(tmp_path):
    _fake_mnist(tmp_path)
    ds = data.DigitDetection(root=tmp_path, size=64, scales=(1.0, 1.0), max_objects=3, seed=1, length=30)
    assert len(data.DigitDetection(root=tmp_path, train=False)) == 40
    _check_items(ds, 30, 10)
    for i in range(30):  # at scale 1 each bar keeps its 20 x (k + 1) pixels: the box is that bar's
        image, target = ds[i]
        for (x1, y1, x2, y2), k in zip(target["boxes"], target["labels"]):
            assert (y2 - y1, x2 - x1) == (20, k + 1)
    np.testing.assert_array_equal(ds[4][0], ds[4][0])
    cluttered = data.DigitDetection(root=tmp_path, size=64, clutter=5, seed=1, length=4)
    assert (cluttered[0][0] > 0).sum() > 0


def test_digit_detection_on_mnist():
    if not (datasets.cache_dir() / "mnist.npz").exists():
        pytest.skip("no MNIST cache on this machine")
    ds = data.DigitDetection(seed=0)
    assert len(ds) == 60000 and len(data.DigitDetection(train=False)) == 10000
    _check_items(ds, 20, 10)
    first = [ds[i][0] for i in (11, 2)]
    np.testing.assert_array_equal(first[0], ds[11][0])


def test_detection_collate():
    ds = data.ShapeDetection(length=4)
    images, targets = data.detection_collate([ds[i] for i in range(4)])
    assert images.shape == (4, 1, 64, 64) and images.dtype == np.float32 and len(targets) == 4
    np.testing.assert_array_equal(images[2], ds[2][0])
    assert targets[3]["boxes"].shape == ds[3][1]["boxes"].shape
    with pytest.raises(ValueError, match="one shape"):
        data.detection_collate([ds[0], (np.zeros((1, 32, 32)), ds[0][1])])
    with pytest.raises(ValueError, match="empty batch"):
        data.detection_collate([])


@pytest.mark.parametrize("call, match", [
    (lambda: data.ShapeDetection(sizes=(1, 8)), "sizes"),
    (lambda: data.ShapeDetection(channels=2), "channels"),
    (lambda: data.ShapeDetection(min_objects=3, max_objects=2), "max_objects"),
    (lambda: data.ShapeDetection(seed=-1), "seed"),
    (lambda: data.ShapeDetection(length=3)[1.0], "index must be an int"),
])
def test_bad_dataset_arguments(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bad_digit_arguments(tmp_path):
    with pytest.raises(ValueError, match="does not fit"):
        data.DigitDetection(root=tmp_path, size=40, scales=(1.0, 2.0))
    with pytest.raises(data.DataError, match="no usable mnist.npz"):
        data.DigitDetection(root=tmp_path)


def test_resize_bilinear_matches_torch(torch_mod):
    x = np.random.default_rng(0).random((2, 28, 28)).astype(np.float32)
    for size in ((21, 21), (56, 40), (7, 30)):
        expected = torch_mod.nn.functional.interpolate(torch_mod.tensor(x)[None], size=size, mode="bilinear",
                                                       align_corners=False).numpy()[0]
        np.testing.assert_allclose(resize_bilinear(x, *size), expected, rtol=1e-5, atol=1e-6)
