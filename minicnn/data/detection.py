"""Detection data sets that need no download: MNIST digits pasted on a canvas (DigitDetection), and coloured or grey
geometric shapes (ShapeDetection, which needs no MNIST at all), with a collate function for batches of images
that hold different numbers of boxes.

An item is (image float32 [C, size, size] in [0, 1], {"boxes": float32 [L, 4], "labels": int64 [L]}), as in
torchvision's detection data sets; boxes are (x1, y1, x2, y2) without the +1 convention, so an object whose
pixels span columns c0..c1 has x1 = c0 and x2 = c1 + 1. Item i is drawn from a generator seeded with (seed, split,
i): the same whatever order items are asked for in, and different between the train and test splits.
"""
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..ops import box_iou
from . import datasets


def resize_bilinear(image, height, width):
    """image [..., H, W] resized to [..., height, width] by bilinear interpolation with pixel centres aligned
    (torch's interpolate(mode="bilinear", align_corners=False, antialias=False)): output pixel i reads the input
    at (i + 0.5) H / height - 0.5, clamped to the image, between its two neighbours on each axis."""
    for what, n in (("height", height), ("width", width)):
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"resize_bilinear: {what} must be a positive int, got {n!r}")
    if np.ndim(image) < 2 or min(np.shape(image)[-2:]) < 1:
        raise ValueError(f"resize_bilinear: expected an image [..., H, W] with H, W >= 1, got shape "
                         f"{np.shape(image)}")

    def taps(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0)
        low = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
        return low, np.minimum(low + 1, n_in - 1), (src - low).astype(image.dtype)
    y0, y1, fy = taps(image.shape[-2], height)
    x0, x1, fx = taps(image.shape[-1], width)
    rows = image[..., y0, :] * (1 - fy)[:, None] + image[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def ink_box(mask):
    """The tight box (x1, y1, x2, y2) around the True pixels of a [H, W] mask, or None when there are none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float64)


def _place(rng, size, extent, box, taken, max_cover, force, tries=20):
    """Top-left corner (y, x) for an object of `extent` (h, w) inside a size x size canvas whose box, relative to
    that corner, is `box`: the first of `tries` random corners where no more than a fraction max_cover of the
    smaller of its box and any box in `taken` is covered by the other; with none, the least covered if `force`,
    else None. (The intersection comes from the IoU: |A ∩ B| = IoU (|A| + |B|) / (1 + IoU).)"""
    ys = rng.integers(0, size - extent[0] + 1, tries)
    xs = rng.integers(0, size - extent[1] + 1, tries)
    if not taken:
        return int(ys[0]), int(xs[0])
    candidates, taken = box[None] + np.stack([xs, ys, xs, ys], axis=1), np.array(taken)
    iou = box_iou(candidates, taken).data.astype(np.float64)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    a, b = area(candidates)[:, None], area(taken)[None, :]
    cover = (iou * (a + b) / (1 + iou) / np.minimum(a, b)).max(axis=1)
    fits = np.flatnonzero(cover <= max_cover)
    i = fits[0] if fits.size else int(cover.argmin()) if force else None
    return None if i is None else (int(ys[i]), int(xs[i]))


def _count(name, what, v, low):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name}: {what} must be an int >= {low}, got {v!r}")
    return int(v)


class _CanvasDataset:
    """Items made on demand from a generator seeded with (seed, split, index); subclasses draw one image."""

    name = "detection"
    classes = ()

    def __init__(self, train, size, min_objects, max_objects, seed, length):
        self.train = bool(train)
        self.size = _count(self.name, "size", size, 8)
        self.min_objects = _count(self.name, "min_objects", min_objects, 0)
        self.max_objects = _count(self.name, "max_objects", max_objects, max(self.min_objects, 1))
        self.seed = _count(self.name, "seed", seed, 0)
        self.length = _count(self.name, "length", length, 0)

    @property
    def num_classes(self):
        return len(self.classes)

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"{self.name}: index must be an int, got {type(index).__name__}")
        i = int(index) + self.length if index < 0 else int(index)
        if not 0 <= i < self.length:
            raise IndexError(f"{self.name}: index {index} out of range for {self.length} items")
        rng = np.random.default_rng([self.seed, int(self.train), i])
        image, boxes, labels = self._draw(rng)
        return image.astype(np.float32), {"boxes": np.array(boxes, np.float32).reshape(-1, 4),
                                          "labels": np.array(labels, np.int64)}


@lru_cache(maxsize=2)
def _mnist(root):
    """(train, test) MNIST Datasets: the project's cache (fetched when missing) for root None, else the
    mnist.npz that load_mnist writes, in the directory `root`."""
    if root is None:
        return datasets.load_mnist()
    arrays, reason = datasets.read_mnist_cache(Path(root) / "mnist.npz")
    if arrays is None:
        raise datasets.DataError(f"DigitDetection: no usable mnist.npz in {root} ({reason})")
    return tuple(datasets.Dataset(arrays[f"{s}_x"].reshape(-1, 1, 28, 28), arrays[f"{s}_y"], 10, "mnist")
                 for s in ("train", "test"))


class DigitDetection(_CanvasDataset):
    """MNIST digits pasted on a black canvas: min_objects to max_objects digits per image, each resized
    (bilinear) from 28 x 28 to a side of 28 s pixels, s uniform in `scales`, at a random place, boxes tight
    around its ink, labels 0-9.

    - Ink: a resized digit keeps its pixels above INK (0.25) and loses the rest, so that nothing of a digit lies
      outside its box and every edge of the box touches its ink. Digits overlap (the canvas keeps the brighter
      pixel), but no more than max_cover (0.3) of one digit's box lies under another's (a digit that finds no
      such place in 20 draws is left out, once min_objects are in).
    - Clutter: `clutter` fragments per image, square crops (a third of the side) of other resized digits, unlabelled,
      as in the cluttered MNIST of Mnih et al. 2014 ("Recurrent Models of Visual Attention").
    - Splits: train images use MNIST's 60,000 training digits, test images its 10,000 test digits. `root`: a
      directory holding the mnist.npz that minicnn.data.load_mnist caches; None for the project's cache (fetched
      on first use). `length` defaults to the size of the MNIST split.
    """

    name = "DigitDetection"
    classes = tuple(str(d) for d in range(10))
    INK = 0.25
    max_cover = 0.3

    def __init__(self, root=None, train=True, size=96, min_objects=1, max_objects=5, scales=(0.75, 2.0), clutter=0,
                 seed=0, length=None):
        size = _count(self.name, "size", size, 8)
        try:
            pair = tuple(float(s) for s in scales) if isinstance(scales, (tuple, list)) else ()
        except (TypeError, ValueError, OverflowError):
            pair = ()
        if len(pair) != 2 or not 0 < pair[0] <= pair[1] < np.inf:
            raise ValueError(f"{self.name}: scales must be (low, high) numbers with 0 < low <= high < inf, got "
                             f"{scales!r}")
        scales = pair
        if round(28 * scales[1]) > size:
            raise ValueError(f"{self.name}: a digit at scale {scales[1]} ({round(28 * scales[1])} px) does not fit a "
                             f"canvas of {size} px")
        self.scales, self.clutter = scales, _count(self.name, "clutter", clutter, 0)
        train_set, test_set = _mnist(None if root is None else str(root))
        self.digits = train_set if train else test_set
        super().__init__(train, size, min_objects, max_objects, seed, len(self.digits) if length is None else length)

    def _glyph(self, rng):
        """A random digit of this split, resized to a random scale and cut at INK: (glyph [s, s], label)."""
        k = int(rng.integers(len(self.digits)))
        side = max(1, int(round(28 * rng.uniform(*self.scales))))
        glyph = resize_bilinear(self.digits.images[k, 0], side, side)
        return np.where(glyph > self.INK, glyph, 0), int(self.digits.labels[k])

    def _draw(self, rng):
        canvas = np.zeros((self.size, self.size), np.float32)
        for _ in range(self.clutter):
            glyph, _ = self._glyph(rng)
            side = max(2, len(glyph) // 3)
            y, x = rng.integers(0, len(glyph) - side + 1, 2)
            piece = glyph[y:y + side, x:x + side]
            top, left = rng.integers(0, self.size - side + 1, 2)
            np.maximum(canvas[top:top + side, left:left + side], piece, out=canvas[top:top + side, left:left + side])
        boxes, labels = [], []
        for _ in range(int(rng.integers(self.min_objects, self.max_objects + 1))):
            glyph, label = self._glyph(rng)
            box = ink_box(glyph > 0)
            corner = None if box is None else _place(rng, self.size, glyph.shape, box, boxes, self.max_cover,
                                                     force=len(boxes) < self.min_objects)
            if corner is None:
                continue
            y, x = corner
            region = canvas[y:y + len(glyph), x:x + len(glyph)]
            np.maximum(region, glyph, out=region)
            boxes.append(box + [x, y, x, y])
            labels.append(label)
        return canvas[None], boxes, labels


class ShapeDetection(_CanvasDataset):
    """Rectangles (class 0), discs (1) and triangles (2) on a black canvas, min_objects to max_objects per image,
    of random extents in `sizes` (pixels) and random grey levels (channels=1) or colours (channels=3), each in
    [0.3, 1]. A pixel belongs to a shape when its centre does (the triangle: apex at the top centre, base along the
    bottom); boxes are tight around those pixels. No two shapes' extents overlap, so every box is exact: a shape
    that finds no free place in 20 draws is left out (an image keeps at least its first shape). Needs no download.
    """

    name = "ShapeDetection"
    classes = ("rectangle", "disc", "triangle")

    def __init__(self, train=True, size=64, min_objects=1, max_objects=4, sizes=(8, 24), channels=1, seed=0,
                 length=1000):
        super().__init__(train, size, min_objects, max_objects, seed, length)
        sizes = tuple(sizes) if isinstance(sizes, (tuple, list)) else ()
        if len(sizes) != 2 or not all(isinstance(s, (int, np.integer)) for s in sizes) or \
                not 2 <= sizes[0] <= sizes[1] <= self.size:
            raise ValueError(f"{self.name}: sizes must be (low, high) ints with 2 <= low <= high <= size {self.size}, "
                             f"got {sizes!r}")
        if channels not in (1, 3):
            raise ValueError(f"{self.name}: channels must be 1 (grey) or 3 (colour), got {channels!r}")
        self.sizes, self.channels = (int(sizes[0]), int(sizes[1])), channels

    @staticmethod
    def mask(kind, height, width):
        """The pixels [height, width] of a shape of class `kind` filling that extent."""
        y, x = np.mgrid[0:height, 0:width] + 0.5  # pixel centres
        if kind == 0:
            return np.ones((height, width), bool)
        if kind == 1:
            return ((x - width / 2) / (width / 2)) ** 2 + ((y - height / 2) / (height / 2)) ** 2 <= 1
        return np.abs(x - width / 2) <= y * width / (2 * height)  # widens from the apex down to the base

    def _draw(self, rng):
        canvas = np.zeros((self.channels, self.size, self.size), np.float32)
        extents, boxes, labels = [], [], []
        for _ in range(int(rng.integers(self.min_objects, self.max_objects + 1))):
            kind = int(rng.integers(3))
            height, width = (int(v) for v in rng.integers(self.sizes[0], self.sizes[1] + 1, 2))
            width = height if kind == 1 else width
            color = rng.uniform(0.3, 1.0, self.channels).astype(np.float32)
            extent = np.array([0.0, 0.0, width, height])
            corner = _place(rng, self.size, (height, width), extent, extents, 0.0, force=False)
            if corner is None:
                continue
            y, x = corner
            mask = self.mask(kind, height, width)
            region = canvas[:, y:y + height, x:x + width]
            region[:, mask] = color[:, None]
            extents.append(extent + [x, y, x, y])
            boxes.append(ink_box(mask) + [x, y, x, y])
            labels.append(kind)
        return canvas, boxes, labels


def detection_collate(batch):
    """A list of (image [C, H, W], target) items -> (images stacked [B, C, H, W] float32, list of the B targets):
    the targets stay a list since images hold different numbers of boxes."""
    if not batch:
        raise ValueError("detection_collate: got an empty batch")
    for i, item in enumerate(batch):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise TypeError(f"detection_collate: item {i} must be an (image, target) pair, got "
                            f"{type(item).__name__}")
    images, targets = zip(*batch)
    shapes = {np.shape(im) for im in images}
    if len(shapes) != 1:
        raise ValueError(f"detection_collate: images of one batch must have one shape, got {sorted(shapes)}")
    return np.stack(images).astype(np.float32, copy=False), list(targets)


# The command line's detection data sets: (class, train images, test images); --limit N trains on N images.
DETECTION_DATASETS = {"digits-detection": (DigitDetection, 60000, 2000),
                      "shapes-detection": (ShapeDetection, 5000, 500)}


def load_detection_dataset(name, seed=0, limit=None):
    """(train, test) detection data sets by name (DETECTION_DATASETS), the train split cut to `limit` images."""
    if name not in DETECTION_DATASETS:
        raise datasets.DataError(f"unknown detection data set {name!r}; choose one of "
                                 f"{', '.join(DETECTION_DATASETS)}")
    kind, train_length, test_length = DETECTION_DATASETS[name]
    if limit is not None and limit < 1:
        raise ValueError(f"load_detection_dataset: limit must be a positive number of images, got {limit}")
    return (kind(train=True, seed=seed, length=train_length if limit is None else min(limit, train_length)),
            kind(train=False, seed=seed, length=test_length))
