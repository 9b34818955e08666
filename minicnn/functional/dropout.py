"""Inverted dropout (Srivastava et al. 2014): in training each value is zeroed with probability p and the rest are
scaled by 1 / (1 - p), so evaluation is the identity."""
from .. import backend
from ..autograd import Function, Tensor
from ._utils import check_float, kernels_gpu


class Dropout(Function):
    """The mask (0 or 1/(1-p)) is drawn from minicnn's generator of the input's device; on the GPU one CUDA kernel
    draws it and applies it, from a seed taken on the host (no device synchronisation)."""

    def __init__(self, p):
        self.p = p

    def forward(self, x):
        device = backend.device_of(x)
        if device.type == "cuda":
            y, self.mask = kernels_gpu().dropout_forward(x, self.p, backend.kernel_seed(device))
            return y
        keep = backend.uniform(x.shape, dtype=x.dtype) >= self.p
        scale = 0.0 if self.p >= 1 else 1.0 / (1.0 - self.p)
        self.mask = keep * x.dtype.type(scale)
        return x * self.mask

    def backward(self, g):
        return g * self.mask


def dropout(x, p=0.5, training=True):
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must lie in [0, 1], got {p!r}")
    x = x if isinstance(x, Tensor) else Tensor(x)
    check_float("dropout", x.data, kernel=backend.is_gpu_array(x.data))
    if not training or p == 0.0:
        return x
    return Dropout.apply(x, p=p)
