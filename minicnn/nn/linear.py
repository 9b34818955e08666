"""Fully connected layer and the shape-only layers Flatten and Identity."""
import numpy as np

from .. import functional as F
from .. import init
from .module import Module, Parameter


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), PyTorch's default initialisation."""

    def __init__(self, in_features, out_features, bias=True, dtype=np.float32):
        super().__init__()
        for what, n in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise ValueError(f"Linear: {what} must be an int >= 0, got {n!r}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.register_parameter("bias", Parameter(np.empty(out_features, dtype=dtype)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_weight_and_bias_(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Merge every axis from `start_axis` on (default 1: keep the batch axis)."""

    def __init__(self, start_axis=1):
        super().__init__()
        self.start_axis = start_axis

    def forward(self, x):
        return F.flatten(x, self.start_axis)


class Identity(Module):
    def forward(self, x):
        return x
