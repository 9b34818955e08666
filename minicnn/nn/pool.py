"""Pooling layers. Their settings are checked when the layer is built, by the same checks as the ops'."""
from .. import functional as F
from ..functional.pool import AdaptiveAvgPool2d as _AdaptiveOp, AvgPool2d as _AvgOp, MaxPool2d as _MaxOp
from .module import Module


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        _MaxOp(kernel_size, stride, padding, ceil_mode)
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        _AvgOp(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, padding={self.padding}"


class GlobalAvgPool2d(Module):
    """(N, C, H, W) -> (N, C, 1, 1): the mean of each feature map."""

    def forward(self, x):
        return F.global_avg_pool2d(x)


class GlobalMaxPool2d(Module):
    def forward(self, x):
        return F.global_max_pool2d(x)


class AdaptiveAvgPool2d(Module):
    def __init__(self, output_size):
        super().__init__()
        _AdaptiveOp(output_size)
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"
