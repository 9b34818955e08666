"""Pooling: max and average over sliding windows, global pooling and adaptive average pooling.

The formulas, and the readable version of each, are in reference/pool.py. Max pooling pads with -inf and sends
each window's gradient to the first maximum; average pooling divides by the window size counting the zero
padding (PyTorch's default count_include_pad=True). Global average pooling (Lin et al. 2014, "Network in
Network") replaces the fully connected head of GoogLeNet, ResNet and DenseNet. Every op runs `kernels_for(x)`:
the reference, the Numba kernels or the CUDA kernels, by use_kernels and the input's device.
"""
import numpy as np

from .. import geometry
from ..autograd import Function
from ..backend import xp_of
from ._utils import FLOAT_KERNEL_DTYPES, check_4d, check_float, kernels_for, pair


class _Pool2d(Function):
    name = "pool2d"

    def __init__(self, kernel_size, stride, padding, ceil_mode):
        self.kernel = pair(self.name, "kernel_size", kernel_size, 1)
        self.stride = self.kernel if stride is None else pair(self.name, "stride", stride, 1)
        self.padding = pair(self.name, "padding", padding, 0)
        if not isinstance(ceil_mode, bool):
            raise TypeError(f"{self.name}: ceil_mode must be True or False, got {ceil_mode!r}")
        self.ceil_mode = ceil_mode
        if any(2 * p > k for p, k in zip(self.padding, self.kernel)):
            raise ValueError(f"{self.name}: padding {self.padding} must be at most half of kernel_size {self.kernel}")

    def _geometry(self, x):
        check_4d(self.name, x)
        check_float(self.name, x)
        h, w = x.shape[2:]
        if h * w == 0:
            raise ValueError(f"{self.name}: expected feature maps of at least one pixel, got input {tuple(x.shape)}")
        if any(n + 2 * p < k for n, p, k in zip((h, w), self.padding, self.kernel)):
            raise ValueError(f"{self.name}: kernel {self.kernel} is larger than the padded input {(h, w)} + "
                             f"2*{self.padding}")
        return geometry.Pool2d.of(x.shape, self.kernel, self.stride, self.padding, self.ceil_mode)


class MaxPool2d(_Pool2d):
    name = "max_pool2d"

    def forward(self, x):
        self.geom = self._geometry(x)
        if not any(self.needs_input_grad):  # no gradient to route: the maxima alone
            return kernels_for(x).max_pool2d_values(x, self.geom)
        y, self.argmax = kernels_for(x).max_pool2d_forward(x, self.geom)
        return y

    def backward(self, grad_y):
        return kernels_for(grad_y).max_pool2d_backward(grad_y, self.argmax, self.geom)


class AvgPool2d(_Pool2d):
    name = "avg_pool2d"

    def __init__(self, kernel_size, stride, padding, ceil_mode, count_include_pad):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x):
        self.geom = self._geometry(x)
        return kernels_for(x).avg_pool2d_forward(x, self.geom, self.count_include_pad)

    def backward(self, grad_y):
        return kernels_for(grad_y).avg_pool2d_backward(grad_y, self.geom, self.count_include_pad)


class GlobalPool2d(Function):
    """Mean or max over each whole feature map: (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, mode):
        self.mode = mode

    def forward(self, x):
        name = f"global_{self.mode}_pool2d"
        check_4d(name, x)
        check_float(name, x)
        if x.shape[2] * x.shape[3] == 0:
            raise ValueError(f"{name}: expected feature maps of at least one pixel, got input {tuple(x.shape)}")
        self.x_shape = x.shape
        kern = kernels_for(x)
        if self.mode == "avg":
            return kern.global_avg_pool2d_forward(x)
        out, self.argmax = kern.global_max_pool2d_forward(x)
        return out

    def backward(self, grad_y):
        kern = kernels_for(grad_y)
        if self.mode == "avg":
            return kern.global_avg_pool2d_backward(grad_y, *self.x_shape[2:])
        return kern.global_max_pool2d_backward(grad_y, self.argmax, *self.x_shape[2:])


def _bins(n_in, n_out):
    """PyTorch's bins: output i averages inputs floor(i n_in / n_out) .. ceil((i + 1) n_in / n_out) - 1. Returns the
    inputs of every bin as a table (n_out, longest bin), its real entries (a mask: bins differ in length), and
    the averaging matrix (n_out, n_in)."""
    i = np.arange(n_out)
    lo, hi = i * n_in // n_out, -(-(i + 1) * n_in // n_out)
    span = np.arange((hi - lo).max())
    index, real = np.minimum(lo[:, None] + span, n_in - 1), span < (hi - lo)[:, None]
    matrix = np.zeros((n_out, n_in))
    matrix[np.nonzero(real)[0], index[real]] = (1.0 / (hi - lo))[np.nonzero(real)[0]]
    return index, real, matrix


def _bin_means(x, axis, n_out):
    """The mean of each bin along `axis` (a gather and a masked sum: an inf counts only in its own bin)."""
    xp = xp_of(x)
    index, real, _ = _bins(x.shape[axis], n_out)
    taken = xp.take(x, xp.asarray(index.ravel()), axis=axis)
    taken = taken.reshape(x.shape[:axis] + index.shape + x.shape[axis + 1:])
    mask = xp.asarray(real.reshape(real.shape + (1,) * (x.ndim - axis - 1)))
    total = xp.where(mask, taken, 0).sum(axis=axis + 1, dtype=np.promote_types(x.dtype, np.float32))  # float16 too
    count = xp.asarray(real.sum(axis=1)).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return (total / count).astype(x.dtype)


class AdaptiveAvgPool2d(Function):
    """Average pooling to a fixed output size (OH, OW), bin by bin along H, then along W (where the sizes divide,
    the bins are equal: average pooling with the bin as window and stride). As a matrix product,
    y = A_h x A_w^T with averaging matrices, so backward is grad_x = A_h^T grad_y A_w. Saved for backward: the
    input's size."""

    def __init__(self, output_size):
        self.output_size = pair("adaptive_avg_pool2d", "output_size", output_size, 1)

    def forward(self, x):
        check_4d("adaptive_avg_pool2d", x)
        check_float("adaptive_avg_pool2d", x, kernel=False)
        if x.shape[2] * x.shape[3] == 0:
            raise ValueError(f"adaptive_avg_pool2d: expected feature maps of at least one pixel, got input "
                             f"{tuple(x.shape)}")
        (oh, ow), (h, w) = self.output_size, x.shape[2:]
        self.size = (h, w)
        if h % oh == 0 and w % ow == 0 and x.dtype in FLOAT_KERNEL_DTYPES:  # equal bins: average pooling
            window = (h // oh, w // ow)
            geom = geometry.Pool2d.of(x.shape, window, window, (0, 0), False)
            return kernels_for(x).avg_pool2d_forward(x, geom, True)
        return _bin_means(_bin_means(x, 2, oh), 3, ow)

    def backward(self, grad_y):
        xp, (oh, ow), (h, w) = xp_of(grad_y), self.output_size, self.size
        ah = xp.asarray(_bins(h, oh)[2], dtype=grad_y.dtype)
        aw = xp.asarray(_bins(w, ow)[2], dtype=grad_y.dtype)
        return ah.T @ grad_y @ aw


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad)


def global_avg_pool2d(x):
    return GlobalPool2d.apply(x, mode="avg")


def global_max_pool2d(x):
    return GlobalPool2d.apply(x, mode="max")


def adaptive_avg_pool2d(x, output_size):
    return AdaptiveAvgPool2d.apply(x, output_size=output_size)
