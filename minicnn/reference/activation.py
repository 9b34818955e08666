"""The (leaky) ReLU and dropout, written to be read.

Leaky ReLU (Maas et al. 2013): y = x for x > 0, slope x otherwise; slope 0 is the ReLU, max(0, x) (Nair and
Hinton 2010). Its gradient is 1 for x > 0 and slope otherwise (0 at x = 0, as in PyTorch).

Inverted dropout (Srivastava et al. 2014): in training each value is kept with probability 1 - p and scaled by
1 / (1 - p), so that the expected output is the input and evaluation needs no change; y = x mask and
grad_x = grad_y mask. The mask comes from uniform draws of a generator seeded with `seed`.
"""
import numpy as np

from ..backend import xp_of


def leaky_relu_forward(x, slope):
    """x where x > 0 (a NaN stays NaN), slope x elsewhere: exactly 0 for the ReLU, -inf included."""
    xp = xp_of(x)
    return xp.where(x <= 0, slope * x if slope != 0 else xp.zeros_like(x), x)


def leaky_relu_backward(grad_y, x, slope):
    """grad_y where x > 0, slope grad_y elsewhere (x = 0 included)."""
    xp = xp_of(x)
    return xp.where(x <= 0, slope * grad_y if slope != 0 else xp.zeros_like(grad_y), grad_y)


def dropout_forward(x, p, seed):
    """(y, mask) with mask = 1/(1-p) where a uniform draw is >= p, else 0 (all 0 for p = 1)."""
    keep = np.random.default_rng(seed).random(x.shape) >= p  # drawn on the host, whatever x's device
    scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)
    mask = xp_of(x).asarray(keep).astype(x.dtype) * x.dtype.type(scale)
    return x * mask, mask
