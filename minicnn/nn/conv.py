"""Convolution layer with PyTorch's parameter names, shapes and default initialisation."""
import numpy as np

from .. import functional as F
from .. import init
from ..functional._utils import pair
from .module import Module, Parameter


class Conv2d(Module):
    """weight (out_channels, in_channels / groups, KH, KW), bias (out_channels,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 dtype=np.float32):
        super().__init__()
        for what, n in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if not isinstance(n, int) or isinstance(n, bool) or n < (1 if what == "groups" else 0):
                raise ValueError(f"Conv2d: {what} must be an int >= {1 if what == 'groups' else 0}, got {n!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, 1)
        for what, value, least in (("stride", stride, 1), ("padding", padding, 0), ("dilation", dilation, 1)):
            pair("Conv2d", what, value, least)  # checked here, not at the first forward
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, *self.kernel_size), dtype=dtype))
        self.register_parameter("bias", Parameter(np.empty(out_channels, dtype=dtype)) if bias else None)
        init.default_weight_and_bias_(self.weight, self.bias)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}" + (f", groups={self.groups}" if self.groups > 1 else "")
                + (f", dilation={self.dilation}" if self.dilation != 1 else "") + ("" if self.bias is not None
                                                                                  else ", bias=False"))
