"""Inverted dropout (Srivastava et al. 2014): in training each value is zeroed with probability p and the rest are
scaled by 1 / (1 - p), so evaluation is the identity. y = x mask, grad_x = grad_y mask; saved for backward: the
mask. The readable version is reference/activation.py."""
from .. import backend
from ..autograd import Function, Tensor
from ._utils import check_float, kernels_for


class Dropout(Function):
    """The mask (0 or 1/(1-p)) comes from a seed drawn from minicnn's generator of the input's device (seeded by
    manual_seed), on the host, so drawing it never waits for a GPU."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        y, self.mask = kernels_for(x).dropout_forward(x, self.p, backend.kernel_seed(backend.device_of(x)))
        return y

    def backward(self, grad_y):
        return grad_y * self.mask


def dropout(x, p=0.5, training=True):
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must lie in [0, 1], got {p!r}")
    x = x if isinstance(x, Tensor) else Tensor(x)
    check_float("dropout", x.data, kernel=backend.is_gpu_array(x.data))
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=p)
