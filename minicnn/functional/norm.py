"""Normalisation: batch normalisation and AlexNet's local response normalisation.

Batch norm (Ioffe and Szegedy 2015): over every axis but the channel axis 1,
    xhat = (x - mean) / sqrt(var + eps),  y = weight * xhat + bias.
Training uses the batch statistics and updates running_mean and running_var in place with
    r = (1 - momentum) r + momentum * stat   (the running variance is the unbiased one, as in PyTorch);
evaluation uses the running statistics. Saved for backward: x and the per-channel statistics (xhat is
recomputed from them).

LRN (Krizhevsky et al. 2012), PyTorch's form: with S_c = k + alpha/size * sum of x^2 over the channels
c - size//2 .. c + (size-1)//2 (zeros beyond the edges),  y_c = x_c / S_c^beta. Saved for backward: x and S.

The formulas of both backward passes, and the readable version of each, are in reference/norm.py; the ops run
`kernels_for(x)`: the reference, the Numba kernels or the CUDA kernels, by use_kernels and the input's device.
"""
import numpy as np

from ..autograd import Function, Tensor
from ..backend import device_of, xp_of
from ._utils import FLOAT_KERNEL_DTYPES, check_float, kernels_for


class BatchNorm(Function):
    """Three steps on (N, C, L): the statistics, one pass that applies them, one backward pass."""

    def __init__(self, running_mean, running_var, has_weight, has_bias, training, momentum, eps):
        self.rm, self.rv = running_mean, running_var
        self.has_weight, self.has_bias = has_weight, has_bias
        self.training, self.momentum, self.eps = training, momentum, eps

    def _check(self, x, affine):
        if x.ndim not in (2, 3, 4) or x.shape[1] == 0:
            raise ValueError(f"batch_norm: expected input (N, C), (N, C, L) or (N, C, H, W) with C >= 1, got "
                             f"{tuple(x.shape)}")
        check_float("batch_norm", x)
        if (self.rm is None) != (self.rv is None):
            raise ValueError("batch_norm: give both running_mean and running_var, or neither")
        c = x.shape[1]
        names = ("weight", "bias")[int(not self.has_weight):]
        for name, t in (("running_mean", self.rm), ("running_var", self.rv)) + tuple(zip(names, affine)):
            if t is None:
                continue
            if tuple(t.shape) != (c,) or t.dtype not in FLOAT_KERNEL_DTYPES or device_of(t) != device_of(x):
                raise ValueError(f"batch_norm: expected {name} of shape ({c},), float32 or float64, on {device_of(x)} "
                                 f"for input {tuple(x.shape)}, got shape {tuple(t.shape)}, {t.dtype}, on "
                                 f"{device_of(t)}")

    def forward(self, x, *affine):
        self._check(x, affine)
        xp, kern = xp_of(x), kernels_for(x)
        c = x.shape[1]
        x3 = xp.ascontiguousarray(x).reshape(x.shape[0], c, int(np.prod(x.shape[2:])))
        m = x3.shape[0] * x3.shape[2]
        if self.training:
            if m < 2:
                raise ValueError(f"batch_norm: training needs more than one value per channel, got input "
                                 f"{tuple(x.shape)}")
            update = self.rm is not None
            rm, rv = (self.rm, self.rv) if update else (xp.empty(0, x.dtype), xp.empty(0, x.dtype))
            mean, var = kern.batch_norm_stats(x3, rm, rv, self.momentum, update)
        else:
            if self.rm is None:
                raise ValueError("batch_norm: evaluation mode needs running_mean and running_var")
            mean, var = self.rm.astype(xp.float64), self.rv.astype(xp.float64)
        invstd = 1.0 / xp.sqrt(var + self.eps)
        weight = affine[0].astype(xp.float64) if self.has_weight else xp.ones(c)
        bias = affine[-1].astype(xp.float64) if self.has_bias else xp.zeros(c)
        scale = weight * invstd
        self.x3, self.mean, self.invstd, self.weight = x3, mean, invstd, weight
        return kern.batch_norm_apply(x3, scale.astype(x.dtype), (bias - mean * scale).astype(x.dtype)).reshape(x.shape)

    def backward(self, grad_y):
        x3 = self.x3
        grad_y3 = xp_of(grad_y).ascontiguousarray(grad_y).reshape(x3.shape)
        grad_x, grad_weight, grad_bias = kernels_for(grad_y).batch_norm_backward(grad_y3, x3, self.mean, self.invstd,
                                                                                 self.weight, self.training)
        grads = (grad_x.reshape(grad_y.shape),)
        if self.has_weight:
            grads += (grad_weight.astype(grad_y.dtype),)
        if self.has_bias:
            grads += (grad_bias.astype(grad_y.dtype),)
        return grads


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    """Batch normalisation; running_mean/running_var (Tensors or None) are updated in place when training.
    momentum is a number in [0, 1] (the BatchNorm layers turn momentum=None into a cumulative average)."""
    if not isinstance(momentum, (int, float)) or isinstance(momentum, bool) or not 0 <= momentum <= 1:
        raise TypeError(f"batch_norm: momentum must be a number in [0, 1], got {momentum!r} (the BatchNorm layers "
                        "take momentum=None for a cumulative average)")
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not eps > 0:
        raise ValueError(f"batch_norm: eps must be a positive number, got {eps!r}")
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    affine = [t for t in (weight, bias) if t is not None]
    return BatchNorm.apply(x, *affine, running_mean=rm, running_var=rv, has_weight=weight is not None,
                           has_bias=bias is not None, training=training, momentum=momentum, eps=eps)


class LocalResponseNorm(Function):
    def __init__(self, size, alpha, beta, k):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"local_response_norm: size must be a positive int, got {size!r}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (alpha, beta, k)):
            raise TypeError(f"local_response_norm: alpha, beta and k must be numbers, got {alpha!r}, {beta!r}, {k!r}")
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        if x.ndim < 3:
            raise ValueError(f"local_response_norm: expected input (N, C, ...) with at least 3 dimensions, "
                             f"got {tuple(x.shape)}")
        check_float("local_response_norm", x)
        self.x = x
        y, self.s = kernels_for(x).lrn_forward(x, self.size, self.alpha, self.beta, self.k)
        return y

    def backward(self, grad_y):
        return kernels_for(grad_y).lrn_backward(grad_y, self.x, self.s, self.size, self.alpha, self.beta)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    return LocalResponseNorm.apply(x, size=size, alpha=alpha, beta=beta, k=k)
