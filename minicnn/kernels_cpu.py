"""Numba kernels for the CPU: im2col/col2im and 2-D pooling, forward and backward.

Every kernel is a *gather*: each output element is computed by exactly one iteration, which reads whatever inputs
it needs. Backward passes therefore never add into a shared location from two threads: there are no races and the
result is the same on every run. Kernels are compiled on first use and cached on disk (cache=True), so the
compile time is paid once per machine.

Shapes: x is (N, C, H, W). The im2col matrix `cols` is (C*KH*KW, N*OH*OW): row (c, r, s) holds, for every output
position (n, i, j), the input pixel x[n, c, i*SH - PH + r*DH, j*SW - PW + s*DW] (0 outside the image), so a
convolution is one matrix product W(K, C*KH*KW) @ cols.
"""
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    p = oh * ow
    cols = np.empty((c * kh * kw, n * p), dtype=x.dtype)
    for row in prange(c * kh * kw):
        ci = row // (kh * kw)
        r = (row // kw) % kh
        s = row % kw
        for b in range(n):
            for i in range(oh):
                hi = i * sh - ph + r * dh
                base = b * p + i * ow
                if hi < 0 or hi >= h:
                    for j in range(ow):
                        cols[row, base + j] = 0
                    continue
                for j in range(ow):
                    wi = j * sw - pw + s * dw
                    cols[row, base + j] = x[b, ci, hi, wi] if 0 <= wi < w else 0
    return cols


@njit(parallel=True, cache=True)
def col2im(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The adjoint of im2col: dx[n, c, y, x] sums every column entry that im2col read from (y, x)."""
    p = oh * ow
    dx = np.empty((n, c, h, w), dtype=cols.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for hi in range(h):
            for wi in range(w):
                acc = 0.0
                for r in range(kh):
                    t = hi + ph - r * dh
                    if t < 0 or t % sh != 0 or t // sh >= oh:
                        continue
                    i = t // sh
                    for s in range(kw):
                        u = wi + pw - s * dw
                        if u < 0 or u % sw != 0 or u // sw >= ow:
                            continue
                        acc += cols[(ci * kh + r) * kw + s, b * p + i * ow + u // sw]
                dx[b, ci, hi, wi] = acc
    return dx


@njit(parallel=True, cache=True)
def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    """Max over each window (padding counts as -inf); `argmax` keeps the flat index y*W + x of the first maximum
    (a NaN wins, as in PyTorch)."""
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = np.empty((n, c, oh, ow), dtype=np.int32)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for i in range(oh):
            h0 = max(i * sh - ph, 0)
            h1 = min(i * sh - ph + kh, h)
            for j in range(ow):
                w0 = max(j * sw - pw, 0)
                w1 = min(j * sw - pw + kw, w)
                best = -np.inf
                idx = h0 * w + w0
                for y in range(h0, h1):
                    for xx in range(w0, w1):
                        v = x[b, ci, y, xx]
                        if v > best or np.isnan(v):
                            best = v
                            idx = y * w + xx
                out[b, ci, i, j] = best if h0 < h1 and w0 < w1 else -np.inf
                argmax[b, ci, i, j] = idx
    return out, argmax


@njit(parallel=True, cache=True)
def max_pool2d_backward(g, argmax, h, w, kh, kw, sh, sw, ph, pw):
    """dx[y, x] = sum of g over the windows that could contain (y, x) and chose it as their maximum."""
    n, c, oh, ow = g.shape
    dx = np.empty((n, c, h, w), dtype=g.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for y in range(h):
            i0 = max(0, (y + ph - kh + sh) // sh)
            i1 = min(oh - 1, (y + ph) // sh)
            for xx in range(w):
                j0 = max(0, (xx + pw - kw + sw) // sw)
                j1 = min(ow - 1, (xx + pw) // sw)
                acc = 0.0
                me = y * w + xx
                for i in range(i0, i1 + 1):
                    for j in range(j0, j1 + 1):
                        if argmax[b, ci, i, j] == me:
                            acc += g[b, ci, i, j]
                dx[b, ci, y, xx] = acc
    return dx


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


@njit(parallel=True, cache=True)
def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    n, c, h, w = x.shape
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for i in range(oh):
            h0 = max(i * sh - ph, 0)
            h1 = min(i * sh - ph + kh, h)
            for j in range(ow):
                w0 = max(j * sw - pw, 0)
                w1 = min(j * sw - pw + kw, w)
                acc = 0.0
                for y in range(h0, h1):
                    for xx in range(w0, w1):
                        acc += x[b, ci, y, xx]
                out[b, ci, i, j] = acc / _avg_divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
    return out


@njit(parallel=True, cache=True)
def avg_pool2d_backward(g, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    """dx[y, x] = sum over the windows containing (y, x) of g / divisor."""
    n, c, oh, ow = g.shape
    dx = np.empty((n, c, h, w), dtype=g.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for y in range(h):
            i0 = max(0, (y + ph - kh + sh) // sh)
            i1 = min(oh - 1, (y + ph) // sh)
            for xx in range(w):
                j0 = max(0, (xx + pw - kw + sw) // sw)
                j1 = min(ow - 1, (xx + pw) // sw)
                acc = 0.0
                for i in range(i0, i1 + 1):
                    for j in range(j0, j1 + 1):
                        acc += g[b, ci, i, j] / _avg_divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
                dx[b, ci, y, xx] = acc
    return dx


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
def global_avg_pool2d_backward(g, h, w):
    n, c = g.shape[0], g.shape[1]
    dx = np.empty((n, c, h, w), dtype=g.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        v = g[b, ci, 0, 0] / (h * w)
        for y in range(h):
            for xx in range(w):
                dx[b, ci, y, xx] = v
    return dx


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
def global_max_pool2d_backward(g, argmax, h, w):
    n, c = g.shape[0], g.shape[1]
    dx = np.empty((n, c, h, w), dtype=g.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        me = argmax[b, ci, 0, 0]
        for y in range(h):
            for xx in range(w):
                dx[b, ci, y, xx] = g[b, ci, 0, 0] if y * w + xx == me else 0
    return dx
