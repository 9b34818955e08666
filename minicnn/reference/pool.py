"""Pooling, written to be read: max and average over sliding windows, and over whole feature maps.

Each output looks at one KH x KW window of its channel (minicnn/geometry.py's notation):

    max:      y[n, c, i, j] = max over r, s of  xp[n, c, i SH + r, j SW + s]       (xp padded with -inf)
    average:  y[n, c, i, j] = sum over r, s of  xp[n, c, i SH + r, j SW + s] / divisor   (xp padded with 0)

The divisor is PyTorch's: the window's size, clipped to the padded image, or to the image itself when padding
is not counted (count_include_pad=False). Max pooling remembers which pixel won, the first maximum in the
window, or its last NaN (a NaN propagates, as in PyTorch), as its flat index y W + x in the unpadded image; its
backward sends each output's gradient to that pixel. Average pooling's backward spreads each output's gradient
evenly over its window. With ceil_mode the last window may stick out past the padding: there it sees -inf
(max) or nothing (average).

As in reference/conv.py, a window is visited one tap (r, s) at a time, each tap a strided view of the padded
batch: the loops run over the KH x KW taps, never over pixels.
"""
import numpy as np

from ..backend import xp_of


def _padded(x, geom, value):
    """x padded by PH, PW on the top and left, and on the bottom and right by as much as the last window needs."""
    bottom = max(geom.PH, (geom.OH - 1) * geom.SH + geom.KH - geom.H - geom.PH)
    right = max(geom.PW, (geom.OW - 1) * geom.SW + geom.KW - geom.W - geom.PW)
    return xp_of(x).pad(x, ((0, 0), (0, 0), (geom.PH, bottom), (geom.PW, right)), constant_values=value)


def _tap(padded, r, s, geom):
    """The (N, C, OH, OW) values that tap (r, s) of every window meets."""
    return padded[:, :, r:r + geom.SH * (geom.OH - 1) + 1:geom.SH, s:s + geom.SW * (geom.OW - 1) + 1:geom.SW]


def _taps(padded, geom):
    """All taps stacked: (KH KW, N, C, OH, OW), tap t = r KW + s."""
    return xp_of(padded).stack([_tap(padded, r, s, geom) for r in range(geom.KH) for s in range(geom.KW)])


def max_pool2d_forward(x, geom):
    """(y, argmax): the maximum of each window and the flat index in x's plane of the pixel that holds it."""
    xp = xp_of(x)
    values = _taps(_padded(x, geom, -np.inf), geom)
    inside = _taps(_padded(xp.ones((1, 1, geom.H, geom.W), dtype=bool), geom, False), geom)  # not padding
    y = values.max(axis=0)
    is_nan = xp.isnan(values) & inside
    first_max = ((values == y) & inside).argmax(axis=0)
    last_nan = len(values) - 1 - is_nan[::-1].argmax(axis=0)
    tap = xp.where(is_nan.any(axis=0), last_nan, first_max)
    row = xp.arange(geom.OH).reshape(-1, 1) * geom.SH - geom.PH + tap // geom.KW
    col = xp.arange(geom.OW) * geom.SW - geom.PW + tap % geom.KW
    return y, (row * geom.W + col).astype(np.int32)


def max_pool2d_values(x, geom):
    """y alone: the maximum of each window (NaN where the window holds one)."""
    return _taps(_padded(x, geom, -np.inf), geom).max(axis=0)


def max_pool2d_backward(grad_y, argmax, geom):
    """grad_x: each window's gradient added to the pixel it chose (a pixel chosen by several windows gets the
    sum)."""
    xp = xp_of(grad_y)
    planes = geom.N * geom.C
    target = xp.arange(planes).reshape(-1, 1) * (geom.H * geom.W) + argmax.reshape(planes, -1)
    grad_x = xp.bincount(target.ravel(), weights=grad_y.ravel(), minlength=planes * geom.H * geom.W)
    return grad_x.astype(grad_y.dtype).reshape(geom.N, geom.C, geom.H, geom.W)


def _divisor(geom, count_include_pad, xp, dtype):
    """(OH, OW): how many of each window's pixels its average counts."""
    canvas = _padded(xp.ones((1, 1, geom.H, geom.W), dtype=dtype), geom, 0)  # 1 on the image, 0 around it
    if count_include_pad:  # the zero padding counts too, not what lies beyond it (ceil_mode's last windows)
        canvas[:, :, :geom.H + 2 * geom.PH, :geom.W + 2 * geom.PW] = 1
    return _taps(canvas, geom).sum(axis=0)[0, 0]


def avg_pool2d_forward(x, geom, count_include_pad):
    """y: the mean of each window (zero padding counted or not)."""
    xp = xp_of(x)
    return _taps(_padded(x, geom, 0), geom).sum(axis=0) / _divisor(geom, count_include_pad, xp, x.dtype)


def avg_pool2d_backward(grad_y, geom, count_include_pad):
    """grad_x: each window's gradient / divisor added to every pixel of the window."""
    xp = xp_of(grad_y)
    share = grad_y / _divisor(geom, count_include_pad, xp, grad_y.dtype)
    padded = _padded(xp.zeros((geom.N, geom.C, geom.H, geom.W), grad_y.dtype), geom, 0)
    for r in range(geom.KH):
        for s in range(geom.KW):
            _tap(padded, r, s, geom)[...] += share
    return padded[:, :, geom.PH:geom.PH + geom.H, geom.PW:geom.PW + geom.W]


def global_avg_pool2d_forward(x):
    """(N, C, H, W) -> (N, C, 1, 1): the mean of each feature map (Lin et al. 2014, "Network in Network")."""
    return x.mean(axis=(2, 3), keepdims=True)


def global_avg_pool2d_backward(grad_y, h, w):
    return xp_of(grad_y).broadcast_to(grad_y / (h * w), grad_y.shape[:2] + (h, w)).copy()


def global_max_pool2d_forward(x):
    """(y, argmax): the maximum of each feature map (its last NaN, if any) and its flat index."""
    xp = xp_of(x)
    planes = x.reshape(x.shape[0], x.shape[1], -1)
    is_nan = xp.isnan(planes)
    last_nan = planes.shape[2] - 1 - is_nan[:, :, ::-1].argmax(axis=2)
    argmax = xp.where(is_nan.any(axis=2), last_nan, planes.argmax(axis=2))
    y = xp.take_along_axis(planes, argmax[:, :, None], axis=2)
    return y.reshape(x.shape[0], x.shape[1], 1, 1), argmax.astype(np.int32).reshape(x.shape[0], x.shape[1], 1, 1)


def global_max_pool2d_backward(grad_y, argmax, h, w):
    """grad_x: each map's gradient on the pixel that held its maximum, zero elsewhere."""
    xp = xp_of(grad_y)
    n, c = grad_y.shape[:2]
    chosen = xp.arange(h * w) == argmax.reshape(n, c, 1)
    return (chosen * grad_y.reshape(n, c, 1)).reshape(n, c, h, w)
