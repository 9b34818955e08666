"""2-D pooling, forward and backward: max and average over windows, global max and average."""
import numpy as np
from numba import njit, prange

from ._jit import cpu_kernel


@njit(cache=True)
def _window(i, stride, pad, k, n):
    """The part [start, end) of pooling window i (of size k) that lies inside an input of size n."""
    start = i * stride - pad
    return max(start, 0), min(start + k, n)


def max_pool2d_forward(x, geom):
    """(y, argmax): the max over each window (padding counts as -inf) and the flat index y*W + x of the first
    maximum (of the last NaN: a NaN wins, as in PyTorch). Whole 2x2 windows at stride 2 without padding (LeNet's,
    VGG's) have a kernel of their own; ceil_mode's last window on an odd size is not whole."""
    window = (geom.KH, geom.KW, geom.SH, geom.SW, geom.PH, geom.PW)
    if window == (2, 2, 2, 2, 0, 0) and 2 * geom.OH <= geom.H and 2 * geom.OW <= geom.W:
        return _max_pool_2x2(x, geom.OH, geom.OW)
    return _max_pool(x, geom.KH, geom.KW, geom.SH, geom.SW, geom.PH, geom.PW, geom.OH, geom.OW)


def max_pool2d_values(x, geom):
    """y alone, for a forward that keeps no argmax (no gradient asked for): the maximum of each window, NaN where
    the window holds one, in two passes: each output row's KH input rows reduced to one (a vectorised loop over
    the row), then the KW columns of each window."""
    return _max_pool_values(x, geom.KH, geom.KW, geom.SH, geom.SW, geom.PH, geom.PW, geom.OH, geom.OW)


@cpu_kernel()
def _max_pool_values(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """`row` holds one output row's column maxima, -inf in the padding (and past the right edge in ceil mode)."""
    n, c, h, w = x.shape
    out = np.empty((n * c, oh * ow), dtype=x.dtype)
    xf = np.ascontiguousarray(x).reshape(n * c, h * w)
    width = max(w + 2 * pw, (ow - 1) * sw + kw)
    for plane in prange(n * c):
        src, dst = xf[plane], out[plane]
        row = np.full(width, -np.inf, dtype=x.dtype)
        cols = row[pw:pw + w]
        for i in range(oh):
            h0, h1 = _window(i, sh, ph, kh, h)
            cols[:] = src[h0 * w:(h0 + 1) * w]
            for y in range(h0 + 1, h1):
                line = src[y * w:(y + 1) * w]
                for j in range(w):
                    v, best = line[j], cols[j]
                    cols[j] = v if _take(v, best) else best
            for j in range(ow):
                best = row[j * sw]
                for s in range(1, kw):
                    v = row[j * sw + s]
                    best = v if _take(v, best) else best
                dst[i * ow + j] = best
    return out.reshape(n, c, oh, ow)


@njit(inline="always")
def _take(v, best):
    """Whether v replaces the running maximum best: it is larger, or NaN (a later NaN replaces an earlier one)."""
    return (v > best) | (v != v)


@njit(inline="always")
def _wins(v, i, best, at):
    """Whether (v, i) replaces (best, at) as a window's maximum and its flat index, whatever order the candidates
    come in: a NaN wins, the NaN at the larger index over another; otherwise the larger value, the smaller index
    on a tie. That is the first maximum in row-major order, the last NaN (the sequential scan's _take)."""
    if v != v:
        return best == best or i > at
    return best == best and (v > best or (v == best and i < at))


@cpu_kernel()
def _max_pool(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """Any window, in two passes per output row: the KH input rows into one row of column winners (value and flat
    index, by _take over the rows in order: a vectorised loop), then the KW columns of each window by _wins."""
    n, c, h, w = x.shape
    out = np.empty((n * c, oh * ow), dtype=x.dtype)
    argmax = np.empty((n * c, oh * ow), dtype=np.int32)
    xf = np.ascontiguousarray(x).reshape(n * c, h * w)
    width = max(w + 2 * pw, (ow - 1) * sw + kw)
    outside = np.iinfo(np.int32).max  # the index of a padding column: never the first maximum
    for plane in prange(n * c):
        src, dst, arg = xf[plane], out[plane], argmax[plane]
        row = np.full(width, -np.inf, dtype=x.dtype)
        rowarg = np.full(width, outside, dtype=np.int32)
        cols, colarg = row[pw:pw + w], rowarg[pw:pw + w]
        for i in range(oh):
            h0, h1 = _window(i, sh, ph, kh, h)
            cols[:] = src[h0 * w:(h0 + 1) * w]
            for j in range(w):
                colarg[j] = h0 * w + j
            for y in range(h0 + 1, h1):
                line = src[y * w:(y + 1) * w]
                for j in range(w):
                    v, best = line[j], cols[j]
                    take = _take(v, best)
                    cols[j] = v if take else best
                    colarg[j] = y * w + j if take else colarg[j]
            for j in range(ow):
                best, at = row[j * sw], rowarg[j * sw]
                for s in range(1, kw):
                    v, i2 = row[j * sw + s], rowarg[j * sw + s]
                    take = _wins(v, i2, best, at)
                    best = v if take else best
                    at = i2 if take else at
                dst[i * ow + j] = best
                arg[i * ow + j] = at
    return out.reshape(n, c, oh, ow), argmax.reshape(n, c, oh, ow)


@cpu_kernel()
def _max_pool_2x2(x, oh, ow):
    """2x2 windows at stride 2 without padding, in the order (0, 0), (0, 1), (1, 0), (1, 1): straight-line code
    over each row's windows, which LLVM vectorises (the two input rows read as interleaved pairs)."""
    n, c, h, w = x.shape
    out = np.empty((n * c, oh * ow), dtype=x.dtype)
    argmax = np.empty((n * c, oh * ow), dtype=np.int32)
    xf = np.ascontiguousarray(x).reshape(n * c, h * w)
    for plane in prange(n * c):
        src, dst, arg = xf[plane], out[plane], argmax[plane]
        for i in range(oh):
            t, b = 2 * i * w, (2 * i + 1) * w
            top, bottom = src[t:], src[b:]
            for j in range(ow):
                best, idx = top[2 * j], t + 2 * j
                v = top[2 * j + 1]
                best, idx = (v, t + 2 * j + 1) if _take(v, best) else (best, idx)
                v = bottom[2 * j]
                best, idx = (v, b + 2 * j) if _take(v, best) else (best, idx)
                v = bottom[2 * j + 1]
                best, idx = (v, b + 2 * j + 1) if _take(v, best) else (best, idx)
                dst[i * ow + j] = best
                arg[i * ow + j] = idx
    return out.reshape(n, c, oh, ow), argmax.reshape(n, c, oh, ow)


def max_pool2d_backward(grad_y, argmax, geom):
    """grad_x[y, x] = sum of grad_y over the windows that chose (y, x) as their maximum."""
    return _max_pool_backward(grad_y, argmax, geom.H, geom.W)


@cpu_kernel()
def _max_pool_backward(grad_y, argmax, h, w):
    """Each (n, c) plane belongs to one thread, which adds its windows in order: no races, deterministic."""
    n, c, oh, ow = grad_y.shape
    grad_x = np.zeros((n, c, h * w), dtype=grad_y.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for i in range(oh):
            for j in range(ow):
                grad_x[b, ci, argmax[b, ci, i, j]] += grad_y[b, ci, i, j]
    return grad_x.reshape(n, c, h, w)


@njit(cache=True)
def _avg_divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    """PyTorch's divisor: the window clipped to the padded image, or to the image when padding is not counted."""
    h0 = i * sh - ph
    w0 = j * sw - pw
    h1 = min(h0 + kh, h + ph)
    w1 = min(w0 + kw, w + pw)
    if count_include_pad:
        return (h1 - h0) * (w1 - w0)
    return (min(h1, h) - max(h0, 0)) * (min(w1, w) - max(w0, 0))


def avg_pool2d_forward(x, geom, count_include_pad):
    """The mean over each window, PyTorch's divisor (reference/pool.py)."""
    return _avg_pool(x, geom.KH, geom.KW, geom.SH, geom.SW, geom.PH, geom.PW, geom.OH, geom.OW, count_include_pad)


def avg_pool2d_backward(grad_y, geom, count_include_pad):
    """grad_x[y, x] = sum over the windows containing (y, x) of grad_y / divisor."""
    return _avg_pool_backward(grad_y, geom.H, geom.W, geom.KH, geom.KW, geom.SH, geom.SW, geom.PH, geom.PW,
                              count_include_pad)


@cpu_kernel()
def _avg_pool(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for i in range(oh):
            h0, h1 = _window(i, sh, ph, kh, h)
            for j in range(ow):
                w0, w1 = _window(j, sw, pw, kw, w)
                acc = 0.0
                for y in range(h0, h1):
                    for xx in range(w0, w1):
                        acc += x[b, ci, y, xx]
                out[b, ci, i, j] = acc / _avg_divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
    return out


@cpu_kernel()
def _avg_pool_backward(grad_y, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    """One thread per (n, c) plane."""
    n, c, oh, ow = grad_y.shape
    grad_x = np.zeros((n, c, h, w), dtype=grad_y.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for i in range(oh):
            h0, h1 = _window(i, sh, ph, kh, h)
            for j in range(ow):
                w0, w1 = _window(j, sw, pw, kw, w)
                v = grad_y[b, ci, i, j] / _avg_divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
                for y in range(h0, h1):
                    for xx in range(w0, w1):
                        grad_x[b, ci, y, xx] += v
    return grad_x


@cpu_kernel()
def global_avg_pool2d_forward(x):
    n, c, h, w = x.shape
    out = np.empty((n, c, 1, 1), dtype=x.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        acc = 0.0
        for y in range(h):
            for xx in range(w):
                acc += x[b, ci, y, xx]
        out[b, ci, 0, 0] = acc / (h * w)
    return out


@cpu_kernel()
def global_avg_pool2d_backward(grad_y, h, w):
    n, c = grad_y.shape[0], grad_y.shape[1]
    grad_x = np.empty((n, c, h, w), dtype=grad_y.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        v = grad_y[b, ci, 0, 0] / (h * w)
        for y in range(h):
            for xx in range(w):
                grad_x[b, ci, y, xx] = v
    return grad_x


@cpu_kernel()
def global_max_pool2d_forward(x):
    n, c, h, w = x.shape
    out = np.empty((n, c, 1, 1), dtype=x.dtype)
    argmax = np.empty((n, c, 1, 1), dtype=np.int32)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        best = -np.inf
        idx = 0
        for y in range(h):
            for xx in range(w):
                v = x[b, ci, y, xx]
                if v > best or np.isnan(v):
                    best = v
                    idx = y * w + xx
        out[b, ci, 0, 0] = best
        argmax[b, ci, 0, 0] = idx
    return out, argmax


@cpu_kernel()
def global_max_pool2d_backward(grad_y, argmax, h, w):
    n, c = grad_y.shape[0], grad_y.shape[1]
    grad_x = np.empty((n, c, h, w), dtype=grad_y.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        me = argmax[b, ci, 0, 0]
        for y in range(h):
            for xx in range(w):
                grad_x[b, ci, y, xx] = grad_y[b, ci, 0, 0] if y * w + xx == me else 0
    return grad_x
