"""Input checks shared by the detection helpers: Tensors or arrays in, arrays out, errors that name the caller."""
import numpy as np

from ..autograd import Tensor
from ..backend import is_gpu_array, xp_of


def as_array(x):
    """The NumPy or CuPy array behind `x` (a Tensor's .data, or np.asarray of anything else)."""
    return x.data if isinstance(x, Tensor) else x if is_gpu_array(x) else np.asarray(x)


def host(x):
    """`x` as a NumPy array on the host (CuPy arrays and GPU Tensors are copied)."""
    a = as_array(x)
    return a.get() if is_gpu_array(a) else a


def check_boxes(name, what, boxes, strict=False):
    """`boxes` as a float array [N, 4] of (x1, y1, x2, y2) with finite values and x1 <= x2, y1 <= y2 (x1 < x2 and
    y1 < y2 when `strict`), or a ValueError that starts with `name`."""
    b = as_array(boxes)
    if b.ndim == 1 and b.size == 0:  # [] for an image without boxes
        b = b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"{name}: {what} must be boxes of shape [N, 4] (x1, y1, x2, y2), got shape {tuple(b.shape)}")
    if b.dtype.kind not in "fiu":
        raise TypeError(f"{name}: {what} must be real numbers, got dtype {b.dtype}")
    if b.dtype.kind != "f":
        b = b.astype(np.float32)
    if not bool(xp_of(b).isfinite(b).all()):
        raise ValueError(f"{name}: {what} hold NaN or infinite coordinates")
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    bad = (w <= 0) | (h <= 0) if strict else (w < 0) | (h < 0)
    if bool(bad.any()):
        i = int(np.flatnonzero(host(bad))[0])
        need = "x2 > x1 and y2 > y1" if strict else "x2 >= x1 and y2 >= y1"
        raise ValueError(f"{name}: {what} must have {need}; box {i} is {host(b[i]).tolist()}")
    return b
