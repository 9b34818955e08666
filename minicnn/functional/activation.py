"""Activation functions and the (log-)softmax.

softmax and log_softmax subtract the row maximum first, so logits of magnitude 1e3 neither overflow nor lose
the answer.
"""
from ..autograd import Function
from ..backend import xp_of
from ._utils import axis_index, check_float, kernels_for
from .math import as_floating


class LeakyReLU(Function):
    """x for x > 0, slope * x otherwise (Maas et al. 2013); slope 0 is the ReLU, max(0, x) (Nair and Hinton 2010),
    whose gradient at 0 is taken as 0, like PyTorch. One kernel each way (Numba or CUDA), keeping x."""

    def __init__(self, negative_slope, name):
        self.slope, self.name = negative_slope, name

    def forward(self, x):
        check_float(self.name, x)
        self.x = x
        return kernels_for(x).leaky_relu_forward(x, x.dtype.type(self.slope))

    def backward(self, g):
        return kernels_for(g).leaky_relu_backward(g, self.x, g.dtype.type(self.slope))


class Sigmoid(Function):
    """1 / (1 + e^-x), computed without overflow for large |x|; d/dx = s (1 - s)."""

    def forward(self, x):
        xp, x = xp_of(x), as_floating(x)
        e = xp.exp(-xp.abs(x))
        self.out = xp.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


class Tanh(Function):
    def forward(self, x):
        self.out = xp_of(x).tanh(as_floating(x))
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


def _reduced_axis(name, x, axis):
    """The axis a softmax runs over, checked; None for a 0-d tensor (its one axis is the whole tensor)."""
    check_float(name, x, kernel=False)
    axis = axis_index(name, axis, x.ndim)
    return axis if x.ndim else None


class Softmax(Function):
    """softmax(x)_i = e^(x_i - max x) / sum_j e^(x_j - max x); d/dx = s * (g - sum(g s))."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.axis = _reduced_axis("softmax", x, self.axis)
        if x.size == 0:
            self.out = x.copy()
            return self.out
        e = xp_of(x).exp(x - x.max(axis=self.axis, keepdims=True))
        self.out = e / e.sum(axis=self.axis, keepdims=True)
        return self.out

    def backward(self, g):
        return self.out * (g - (g * self.out).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """x - max x - log sum e^(x - max x); d/dx = g - softmax(x) * sum(g)."""

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        self.axis = _reduced_axis("log_softmax", x, self.axis)
        if x.size == 0:
            self.out = x.copy()
            return self.out
        xp = xp_of(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        self.out = shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        return self.out

    def backward(self, g):
        return g - xp_of(g).exp(self.out) * g.sum(axis=self.axis, keepdims=True)


def relu(x):
    return LeakyReLU.apply(x, negative_slope=0.0, name="relu")


def leaky_relu(x, negative_slope=0.01):
    if not isinstance(negative_slope, (int, float)) or isinstance(negative_slope, bool):
        raise TypeError(f"leaky_relu: negative_slope must be a number, got {negative_slope!r}")
    return LeakyReLU.apply(x, negative_slope=negative_slope, name="leaky_relu")


def sigmoid(x):
    return Sigmoid.apply(x)


def tanh(x):
    return Tanh.apply(x)


def softmax(x, axis=-1):
    return Softmax.apply(x, axis=axis)


def log_softmax(x, axis=-1):
    return LogSoftmax.apply(x, axis=axis)
