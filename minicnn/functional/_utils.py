"""Helpers shared by the ops: argument and input checks, and kernel dispatch."""
import numpy as np

from .. import kernels_cpu, reference
from ..backend import is_gpu_array, kernels_mode


def kernels_gpu():
    """The CUDA kernel module (imported on first use: it needs CuPy)."""
    from .. import kernels_gpu as module
    return module


def kernels_for(array):
    """What an op runs on `array`: the reference (minicnn/reference/) under use_kernels("reference"), else the
    kernels of the array's device, Numba on the CPU or CUDA C on the GPU. The three modules have the same function
    names and signatures, so an op calls `kernels_for(x).name(...)` without asking which it got."""
    if kernels_mode() == "reference":
        return reference
    return kernels_gpu() if is_gpu_array(array) else kernels_cpu


def pair(name, what, value, minimum):
    """An int or an (h, w) pair, as a tuple of two ints >= minimum."""
    vals = ((value, value) if isinstance(value, (int, np.integer))
            else tuple(value) if isinstance(value, (tuple, list)) else None)
    if vals is None or len(vals) != 2 or not all(is_int(v) for v in vals):
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, got {value!r}")
    if min(vals) < minimum:
        raise ValueError(f"{name}: {what} must be >= {minimum}, got {value!r}")
    return tuple(int(v) for v in vals)


def is_int(v):
    """A Python or NumPy integer, not a bool."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def axis_index(name, axis, ndim, of="a tensor"):
    """A single axis in [-ndim, ndim) as a non-negative int (a 0-d tensor has the one axis -1/0, as in PyTorch)."""
    if not is_int(axis):
        raise TypeError(f"{name}: axis must be an int, got {axis!r}")
    span = max(ndim, 1)
    if not -span <= axis < span:
        raise ValueError(f"{name}: axis {axis} is out of range for {of} with {ndim} dimensions "
                         f"(expected -{span} <= axis < {span})")
    return int(axis) % span


FLOAT_KERNEL_DTYPES = (np.float32, np.float64)


def check_float(name, x, kernel=True):
    """The input of an op that computes in floating point: float32 or float64 where a Numba or CUDA kernel runs
    (kernel=True), any floating dtype otherwise. An integer input is refused rather than truncated."""
    ok = x.dtype in FLOAT_KERNEL_DTYPES if kernel else x.dtype.kind == "f"
    if not ok:
        wanted = "float32 or float64" if kernel else "floating-point"
        raise ValueError(f"{name}: expected a {wanted} input, got {x.dtype} (convert with .float() or .double())")


def check_4d(name, x):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
