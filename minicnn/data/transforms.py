"""Batch transforms, vectorised over the whole batch: each is a callable (images, rng) -> images, where images is
(N, C, H, W) float32 and rng a numpy Generator (so a resumed run draws the same augmentations)."""
import numpy as np


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x, rng):
        for t in self.transforms:
            x = t(x, rng)
        return x


class Normalize:
    """(x - mean[c]) / std[c]."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)
        if not np.all(np.isfinite(self.std) & (self.std != 0)) or not np.all(np.isfinite(self.mean)):
            raise ValueError(f"Normalize: std must be finite and non-zero, mean finite, got mean {mean}, std {std}")

    def __call__(self, x, rng=None):
        return (x - self.mean) / self.std


class RandomCrop:
    """Zero-pad by `padding`, then cut a random size x size window from each image (one gather for the batch)."""

    def __init__(self, size, padding=0):
        self.size, self.padding = size, padding

    def __call__(self, x, rng):
        n, c, h, w = x.shape
        p = self.padding
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        oy = rng.integers(0, h + 2 * p - self.size + 1, n)
        ox = rng.integers(0, w + 2 * p - self.size + 1, n)
        rows = (oy[:, None] + np.arange(self.size))[:, None, :, None]
        cols = (ox[:, None] + np.arange(self.size))[:, None, None, :]
        return xp[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]


class RandomHorizontalFlip:
    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x, rng):
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out
