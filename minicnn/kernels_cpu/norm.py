"""Batch normalisation: x is viewed as (N, C, L); statistics in float64 (reference/norm.py has the formulas). The
sums over a channel may be reassociated (fastmath "reassoc"), so Numba adds them in vector lanes rather than one
scalar float64 add after the other, still in the same order on every run and thread count."""
import numpy as np
from numba import prange

from ._jit import cpu_kernel


@cpu_kernel(fastmath={"reassoc"})
def batch_norm_stats(x, running_mean, running_var, momentum, update):
    """Per-channel mean and biased variance in one pass over x (float64 sums of d = x - K and d^2, K the channel's
    first value, so that var = (sum d^2 - (sum d)^2 / m) / m does not cancel for data far from zero); when
    `update`, also running = (1 - momentum) running + momentum stat, with the unbiased variance."""
    n, c, l = x.shape
    mean = np.empty(c)
    var = np.empty(c)
    for ci in prange(c):
        shift = np.float64(x[0, ci, 0])
        s = 0.0
        ss = 0.0
        for b in range(n):
            for k in range(l):
                d = x[b, ci, k] - shift
                s += d
                ss += d * d
        m = shift + s / (n * l)
        centred = max(ss - s * s / (n * l), 0.0)
        mean[ci] = m
        var[ci] = centred / (n * l)
        if update:
            running_mean[ci] = (1 - momentum) * running_mean[ci] + momentum * m
            running_var[ci] = (1 - momentum) * running_var[ci] + momentum * centred / (n * l - 1)
    return mean, var


@cpu_kernel()
def batch_norm_apply(x, scale, shift):
    """y = x * scale[c] + shift[c]."""
    n, c, l = x.shape
    y = np.empty_like(x)
    for row in prange(n * c):
        b = row // c
        ci = row % c
        sc, sh = scale[ci], shift[ci]
        for k in range(l):
            y[b, ci, k] = x[b, ci, k] * sc + sh
    return y


@cpu_kernel(fastmath={"reassoc"})
def batch_norm_backward(grad_y, x, mean, invstd, weight, training):
    """grad_x, d(weight) = sum g xhat, d(bias) = sum g, with xhat recomputed from x (nothing else is stored)."""
    n, c, l = x.shape
    m = n * l
    grad_x = np.empty_like(x)
    grad_weight = np.empty(c)
    grad_bias = np.empty(c)
    for ci in prange(c):
        mu, inv = mean[ci], invstd[ci]
        sg = 0.0
        sgx = 0.0
        for b in range(n):
            for k in range(l):
                gv = grad_y[b, ci, k]
                sg += gv
                sgx += gv * (x[b, ci, k] - mu) * inv
        grad_weight[ci] = sgx
        grad_bias[ci] = sg
        scale = weight[ci] * inv
        a = sg / m if training else 0.0
        bcoef = sgx / m if training else 0.0
        for b in range(n):
            for k in range(l):
                grad_x[b, ci, k] = scale * (grad_y[b, ci, k] - a - (x[b, ci, k] - mu) * inv * bcoef)
    return grad_x, grad_weight, grad_bias
