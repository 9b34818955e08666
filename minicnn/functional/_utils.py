"""Helpers shared by the convolution and pooling ops: argument normalisation and kernel dispatch."""
from .. import kernels_cpu
from ..backend import is_gpu_array


def kernels_gpu():
    """The CUDA kernel module (imported on first use: it needs CuPy)."""
    from .. import kernels_gpu as module
    return module


def kernels_for(array):
    """The kernel module for an array's device: Numba on the CPU, CUDA C (through CuPy) on the GPU."""
    return kernels_gpu() if is_gpu_array(array) else kernels_cpu


def pair(name, what, value, minimum):
    """An int or an (h, w) pair, as a tuple of two ints >= minimum."""
    vals = (value, value) if isinstance(value, int) else tuple(value) if isinstance(value, (tuple, list)) else None
    if vals is None or len(vals) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        raise ValueError(f"{name}: {what} must be an int or a pair of ints, got {value!r}")
    if min(vals) < minimum:
        raise ValueError(f"{name}: {what} must be >= {minimum}, got {value!r}")
    return vals


def check_4d(name, x):
    if x.ndim != 4:
        raise ValueError(f"{name}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
