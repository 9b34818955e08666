"""Batch normalisation and local response normalisation, written to be read.

Batch norm (Ioffe and Szegedy 2015). x is viewed as (N, C, L), L = H W for images, and normalised per channel
over its M = N L values, with statistics in float64:

    mean = sum x / M,   var = sum (x - mean)^2 / M,   xhat = (x - mean) / sqrt(var + eps),   y = weight xhat + bias

which is y = scale x + shift with scale = weight / sqrt(var + eps) and shift = bias - mean scale. In training the
running statistics move toward the batch's, r = (1 - momentum) r + momentum stat, with the unbiased variance
M / (M - 1) var, as in PyTorch. Backward, with sums over a channel's M values:

    grad_bias = sum grad_y      grad_weight = sum grad_y xhat
    grad_x = weight / sqrt(var + eps) / M (M grad_y - grad_bias - xhat grad_weight)   (training: the batch's
             statistics depend on x; in evaluation they are constants and grad_x = scale grad_y)

LRN (Krizhevsky et al. 2012), PyTorch's form: with S_c = k + alpha / size * (sum of x^2 over the channels
c - size//2 .. c + (size-1)//2, zeros beyond the edges), y_c = x_c S_c^-beta, and

    grad_x_j = grad_y_j S_j^-beta - 2 beta alpha / size x_j sum over the c whose window holds j of
               grad_y_c x_c S_c^(-beta-1)
"""
import numpy as np

from ..backend import xp_of


def batch_norm_stats(x, running_mean, running_var, momentum, update):
    """(mean, var) of each channel of x (N, C, L), float64; moves the running statistics when `update`."""
    x64 = x.astype(np.float64)
    mean, var = x64.mean(axis=(0, 2)), x64.var(axis=(0, 2))
    if update:
        m = x.shape[0] * x.shape[2]
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        running_var[...] = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    return mean, var


def batch_norm_apply(x, scale, shift):
    """y = scale[c] x + shift[c] for x (N, C, L)."""
    return x * scale.reshape(1, -1, 1) + shift.reshape(1, -1, 1)


def batch_norm_backward(grad_y, x, mean, invstd, weight, training):
    """(grad_x, grad_weight, grad_bias) for x (N, C, L), with xhat recomputed from x; invstd = 1/sqrt(var+eps)."""
    xhat = (x - mean.reshape(1, -1, 1)) * invstd.reshape(1, -1, 1)
    grad_bias = grad_y.sum(axis=(0, 2), dtype=np.float64)
    grad_weight = (grad_y * xhat).sum(axis=(0, 2))
    scale = (weight * invstd).reshape(1, -1, 1)
    if training:
        m = x.shape[0] * x.shape[2]
        grad_x = scale / m * (m * grad_y - grad_bias.reshape(1, -1, 1) - xhat * grad_weight.reshape(1, -1, 1))
    else:
        grad_x = scale * grad_y
    return grad_x.astype(x.dtype), grad_weight, grad_bias


def _window_sum(a, before, after):
    """out[:, c] = sum of a[:, c - before .. c + after] along the channel axis, zeros beyond the edges: one shifted
    slice of the zero-padded a per window position (an inf stays in the windows that hold it)."""
    pad = [(0, 0)] * a.ndim
    pad[1] = (before, after)
    padded = xp_of(a).pad(a, pad)
    c = a.shape[1]
    return sum(padded[:, t:t + c] for t in range(before + after + 1))


def lrn_forward(x, size, alpha, beta, k):
    """(y, S) of local response normalisation across channels (axis 1); S is kept for backward."""
    s = k + (alpha / size) * _window_sum(x * x, size // 2, (size - 1) // 2)
    with np.errstate(invalid="ignore"):  # inf * 0 where x is infinite: NaN, as in PyTorch
        return x * s ** -beta, s


def lrn_backward(grad_y, x, s, size, alpha, beta):
    """grad_x; the channels c whose window holds j are j - (size-1)//2 .. j + size//2. With beta = 0, y = x and the
    second term is 0 (S^0 does not depend on x), also where S = 0."""
    if beta == 0:
        return grad_y * s ** -beta
    t = grad_y * x * s ** (-beta - 1)
    return grad_y * s ** -beta - (2 * beta * alpha / size) * x * _window_sum(t, (size - 1) // 2, size // 2)
