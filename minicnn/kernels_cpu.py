"""Numba kernels for the CPU: im2col/col2im and 2-D pooling, forward and backward.

Every parallel iteration owns its outputs: forward kernels compute one row of `cols` or one (n, c) plane, and
backward kernels give each (n, c) plane of dx to one thread, which adds into it in a fixed order. No two threads
ever write one location: there are no races and the result is the same on every run. Kernels are compiled on first use and cached on disk (cache=True), so the
compile time is paid once per machine.

Shapes: x is (N, C, H, W). The im2col matrix `cols` is (C*KH*KW, N*OH*OW): row (c, r, s) holds, for every output
position (n, i, j), the input pixel x[n, c, i*SH - PH + r*DH, j*SW - PW + s*DW] (0 outside the image), so a
convolution is one matrix product W(K, C*KH*KW) @ cols.
"""
import numpy as np
from numba import njit, prange


@njit(cache=True)
def _valid_range(n_out, n_in, stride, offset):
    """The outputs j in [j0, j1) whose input position j*stride + offset lies inside [0, n_in)."""
    j0 = 0 if offset >= 0 else (-offset + stride - 1) // stride
    j1 = 0 if n_in - 1 - offset < 0 else min(n_out, (n_in - 1 - offset) // stride + 1)
    return min(j0, n_out), max(j1, min(j0, n_out))


@njit(parallel=True, cache=True)
def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    n, c, h, w = x.shape
    p = oh * ow
    width = n * p
    cols = np.empty((c * kh * kw, width), dtype=x.dtype)
    flat = cols.reshape(-1)
    xf = np.ascontiguousarray(x).reshape(-1)
    for row in prange(c * kh * kw):
        ci = row // (kh * kw)
        r = (row // kw) % kh
        off = (row % kw) * dw - pw
        j0, j1 = _valid_range(ow, w, sw, off)
        i0, i1 = _valid_range(oh, h, sh, r * dh - ph)
        for b in range(n):
            base = row * width + b * p
            flat[base:base + i0 * ow] = 0
            flat[base + i1 * ow:base + p] = 0
            for i in range(i0, i1):  # slice copies: Numba vectorises them (2x faster than element loops)
                dst = base + i * ow
                src = ((b * c + ci) * h + i * sh + r * dh - ph) * w + off
                flat[dst:dst + j0] = 0
                if sw == 1:
                    flat[dst + j0:dst + j1] = xf[src + j0:src + j1]
                else:
                    flat[dst + j0:dst + j1] = xf[src + j0 * sw:src + j1 * sw:sw]
                flat[dst + j1:dst + ow] = 0
    return cols


@njit(parallel=True, cache=True)
def col2im(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The adjoint of im2col: dx[n, c, y, x] sums every column entry that im2col read from (y, x). Each (n, c)
    plane belongs to one thread, which adds its columns in a fixed order: no races, same result every run."""
    p = oh * ow
    dx = np.zeros((n, c, h, w), dtype=cols.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for r in range(kh):
            i0, i1 = _valid_range(oh, h, sh, r * dh - ph)
            for s in range(kw):
                off = s * dw - pw
                j0, j1 = _valid_range(ow, w, sw, off)
                src = cols[(ci * kh + r) * kw + s, b * p:(b + 1) * p]
                for i in range(i0, i1):
                    dst = dx[b, ci, i * sh + r * dh - ph]
                    for j in range(j0, j1):
                        dst[j * sw + off] += src[i * ow + j]
    return dx


@njit(parallel=True, cache=True)
def im2col_shifted(x, kh, kw, dh, dw, oh):
    """im2col of a stride-1 convolution of an (already padded) x, with every output row computed at the input's
    full width W: the last W - OW columns of each row are junk, which the caller drops. Row (c, r, s), image n,
    column q = i*W + j then holds x[n, c].flat[q + r*DH*W + s*DW] (0 past the end of the plane): one contiguous
    span per row and image, copied in one piece instead of OH short lines."""
    n, c, h, w = x.shape
    span = oh * w
    cols = np.empty((c * kh * kw, n * span), dtype=x.dtype)
    planes = np.ascontiguousarray(x).reshape(n, c, h * w)
    for row in prange(c * kh * kw):
        off = ((row // kw) % kh) * dh * w + (row % kw) * dw
        m = min(span, h * w - off)
        for b in range(n):
            cols[row, b * span:b * span + m] = planes[b, row // (kh * kw), off:off + m]
            cols[row, b * span + m:(b + 1) * span] = 0
    return cols


@njit(parallel=True, cache=True)
def col2im_shifted(cols, n, c, h, w, kh, kw, dh, dw, oh):
    """The adjoint of im2col_shifted: each (n, c) plane adds its KH*KW spans in a fixed order (one thread each)."""
    span = oh * w
    dx = np.zeros((n, c, h * w), dtype=cols.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for r in range(kh):
            for s in range(kw):
                off = r * dh * w + s * dw
                src = cols[(ci * kh + r) * kw + s, b * span:(b + 1) * span]
                dst = dx[b, ci, off:]
                for q in range(min(span, h * w - off)):  # an explicit loop: a slice += allocates a temporary
                    dst[q] += src[q]
    return dx.reshape(n, c, h, w)


@njit(cache=True)
def _window(i, stride, pad, k, n):
    """The part [start, end) of pooling window i (of size k) that lies inside an input of size n."""
    start = i * stride - pad
    return max(start, 0), min(start + k, n)


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
            h0, h1 = _window(i, sh, ph, kh, h)
            for j in range(ow):
                w0, w1 = _window(j, sw, pw, kw, w)
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
    """dx[y, x] = sum of g over the windows that chose (y, x) as their maximum. Each (n, c) plane belongs to one
    thread, which adds its windows in order: no races, deterministic."""
    n, c, oh, ow = g.shape
    dx = np.zeros((n, c, h * w), dtype=g.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for i in range(oh):
            for j in range(ow):
                dx[b, ci, argmax[b, ci, i, j]] += g[b, ci, i, j]
    return dx.reshape(n, c, h, w)


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
            h0, h1 = _window(i, sh, ph, kh, h)
            for j in range(ow):
                w0, w1 = _window(j, sw, pw, kw, w)
                acc = 0.0
                for y in range(h0, h1):
                    for xx in range(w0, w1):
                        acc += x[b, ci, y, xx]
                out[b, ci, i, j] = acc / _avg_divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
    return out


@njit(parallel=True, cache=True)
def avg_pool2d_backward(g, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    """dx[y, x] = sum over the windows containing (y, x) of g / divisor; one thread per (n, c) plane."""
    n, c, oh, ow = g.shape
    dx = np.zeros((n, c, h, w), dtype=g.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for i in range(oh):
            h0, h1 = _window(i, sh, ph, kh, h)
            for j in range(ow):
                w0, w1 = _window(j, sw, pw, kw, w)
                v = g[b, ci, i, j] / _avg_divisor(i, j, h, w, kh, kw, sh, sw, ph, pw, count_include_pad)
                for y in range(h0, h1):
                    for xx in range(w0, w1):
                        dx[b, ci, y, xx] += v
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


# --- batch normalisation: x is viewed as (N, C, L); statistics in float64 -------------------------------------

@njit(parallel=True, cache=True)
def batch_norm_stats(x, running_mean, running_var, momentum, update):
    """Per-channel mean and biased variance (two passes, float64 accumulation); when `update`, also
    running = (1 - momentum) running + momentum stat, with the unbiased variance."""
    n, c, l = x.shape
    mean = np.empty(c)
    var = np.empty(c)
    for ci in prange(c):
        s = 0.0
        for b in range(n):
            for k in range(l):
                s += x[b, ci, k]
        m = s / (n * l)
        ss = 0.0
        for b in range(n):
            for k in range(l):
                d = x[b, ci, k] - m
                ss += d * d
        mean[ci] = m
        var[ci] = ss / (n * l)
        if update:
            running_mean[ci] = (1 - momentum) * running_mean[ci] + momentum * m
            running_var[ci] = (1 - momentum) * running_var[ci] + momentum * ss / (n * l - 1)
    return mean, var


@njit(parallel=True, cache=True)
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


@njit(parallel=True, cache=True)
def batch_norm_backward(g, x, mean, invstd, weight, training):
    """dx, d(weight) = sum g xhat, d(bias) = sum g, with xhat recomputed from x (nothing else is stored)."""
    n, c, l = x.shape
    m = n * l
    dx = np.empty_like(x)
    dweight = np.empty(c)
    dbias = np.empty(c)
    for ci in prange(c):
        mu, inv = mean[ci], invstd[ci]
        sg = 0.0
        sgx = 0.0
        for b in range(n):
            for k in range(l):
                gv = g[b, ci, k]
                sg += gv
                sgx += gv * (x[b, ci, k] - mu) * inv
        dweight[ci] = sgx
        dbias[ci] = sg
        scale = weight[ci] * inv
        a = sg / m if training else 0.0
        bcoef = sgx / m if training else 0.0
        for b in range(n):
            for k in range(l):
                dx[b, ci, k] = scale * (g[b, ci, k] - a - (x[b, ci, k] - mu) * inv * bcoef)
    return dx, dweight, dbias
