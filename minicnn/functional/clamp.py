"""Elementwise maximum, minimum and clamp of tensors: torch.maximum, torch.minimum, torch.clamp.

    maximum(a, b) = a where a > b, else b (with broadcasting); minimum likewise
    clamp(x, low, high) = min(max(x, low), high)

Their gradients at the kinks are PyTorch's: where a == b each input gets half of the gradient; a value clamped
at a bound gets none (the subgradient of least norm, ReLU's at 0).
"""
from ..autograd import Function
from ..backend import xp_of
from .math import unbroadcast


class Extreme(Function):
    """Elementwise max(a, b) (largest=True) or min(a, b), with broadcasting: torch.maximum / torch.minimum.

    The gradient goes to the input that wins; on a tie each input gets half of it, as in PyTorch."""

    def __init__(self, largest):
        self.largest = largest

    def forward(self, a, b):
        self.a, self.b = a, b
        return xp_of(a).maximum(a, b) if self.largest else xp_of(a).minimum(a, b)

    def backward(self, g):
        xp, a, b = xp_of(g), self.a, self.b
        wins = (a > b) if self.largest else (a < b)
        share = xp.where(a == b, g.dtype.type(0.5), wins.astype(g.dtype))  # a's share of the gradient
        return unbroadcast(g * share, a.shape), unbroadcast(g * (1 - share), b.shape)


class Clamp(Function):
    """x clipped to [low, high] (numbers or arrays that broadcast against x; None for no bound): torch.clamp. The
    gradient passes where low < x < high: at a bound it is 0, the subgradient of least norm (that of ReLU at 0), as
    in PyTorch from 2.14 on (PyTorch 2.13 and earlier passed it at the bounds too)."""

    def __init__(self, low, high):
        self.low, self.high = low, high

    def forward(self, x):
        xp, out = xp_of(x), x
        self.x = x
        if self.low is not None:
            out = xp.maximum(out, self.low)
        return out if self.high is None else xp.minimum(out, self.high)

    def backward(self, g):
        inside = True
        if self.low is not None:
            inside = self.x > self.low
        if self.high is not None:
            inside = inside & (self.x < self.high)
        return g * inside


def maximum(a, b):
    """Elementwise max(a, b), broadcast: torch.maximum."""
    return Extreme.apply(a, b, largest=True)


def minimum(a, b):
    """Elementwise min(a, b), broadcast: torch.minimum."""
    return Extreme.apply(a, b, largest=False)


def clamp(x, min=None, max=None):
    """x clipped to [min, max] (either may be None): torch.clamp."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return Clamp.apply(x, low=min, high=max)
