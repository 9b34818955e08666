"""im2col/col2im (the general layout and the stride-1 shifted one) and the direct convolution.

Shapes: x is (N, C, H, W). The im2col matrix `cols` is (C*KH*KW, N*OH*OW): row (c, r, s) holds, for every output
position (n, i, j), the input pixel x[n, c, i*SH - PH + r*DH, j*SW - PW + s*DW] (0 outside the image), so a
convolution is one matrix product W(K, C*KH*KW) @ cols.
"""
import numpy as np
from numba import njit, prange

from ._jit import cpu_kernel
from .conv_tiled import conv_tiled, conv_tiled_backward


def _padded(x, ph, pw):
    """x with PH zero rows and PW zero columns on each side (x itself, contiguous, without padding)."""
    if not (ph or pw):
        return np.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


@njit(cache=True)
def _window_offsets(oh, ow, sh, sw, w):
    """Where the window of output (i, j) starts in a padded plane of width W, flat: i*SH*W + j*SW."""
    offsets = np.empty(oh * ow, dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            offsets[i * ow + j] = i * sh * w + j * sw
    return offsets


def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """x is padded once; then row (c, r, s) of each image is one gather through the table of window offsets, from
    x[n, c].flat[r*DH*Wp + s*DW]: no bounds tests and no short slices (2-3x faster than copying OH slices of OW
    elements on small maps, and no slower on large ones, benchmarks/RESULTS.md)."""
    xp = _padded(x, ph, pw)
    return _im2col_padded(xp, kh, kw, dh, dw, _window_offsets(oh, ow, sh, sw, xp.shape[3]))


@cpu_kernel()
def _im2col_padded(x, kh, kw, dh, dw, offsets):
    n, c, h, w = x.shape
    p = offsets.size
    cols = np.empty((c * kh * kw, n * p), dtype=x.dtype)
    planes = x.reshape(n, c, h * w)
    for row in prange(c * kh * kw):
        start = ((row // kw) % kh) * dh * w + (row % kw) * dw
        for b in range(n):
            src = planes[b, row // (kh * kw), start:]
            dst = cols[row, b * p:(b + 1) * p]
            for q in range(p):
                dst[q] = src[offsets[q]]
    return cols


def col2im(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The adjoint of im2col: dx[n, c, y, x] sums every column entry that im2col read from (y, x). Each (n, c)
    plane of the padded dx belongs to one thread, which scatters its KH*KW rows into it in a fixed order: no
    races, the same result every run. Returns a view without the padding."""
    hp, wp = h + 2 * ph, w + 2 * pw
    dx = _col2im_padded(cols, n, c, hp, wp, kh, kw, dh, dw, _window_offsets(oh, ow, sh, sw, wp))
    return dx[:, :, ph:ph + h, pw:pw + w]


@cpu_kernel()
def _col2im_padded(cols, n, c, h, w, kh, kw, dh, dw, offsets):
    p = offsets.size
    dx = np.zeros((n, c, h * w), dtype=cols.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for r in range(kh):
            for s in range(kw):
                src = cols[(ci * kh + r) * kw + s, b * p:(b + 1) * p]
                dst = dx[b, ci, r * dh * w + s * dw:]
                for q in range(p):
                    dst[offsets[q]] += src[q]
    return dx.reshape(n, c, h, w)


@cpu_kernel()
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


@cpu_kernel()
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


# --- direct convolution at stride 1, in the shifted layout: x already padded, g as (N, K, OH*W) with the last
# W - OW columns of each output row junk (zero); the forward pass computes its rows that way and copies out y.
# Where each output sums few inputs (at most PLANE_TAPS = C/G*KH*KW) or a group has few outputs (at most
# PLANE_OUTPUTS: depthwise layers), the kernels below work plane by plane: every inner loop is one long contiguous
# span, which Numba vectorises. Otherwise conv_tiled.py's kernels keep a tile of outputs in vector registers through
# the sum, 1.5-2x faster from LeNet's first layer (25 inputs, 6 outputs) on; their tiles of 8 inputs and of 8 or
# 16 output channels are too empty below that (benchmarks/RESULTS.md).

PLANE_TAPS = 16
PLANE_OUTPUTS = 4


def _tiled(w, groups):
    """Whether a convolution with weight w (K, C/G, KH, KW) runs on the register-tiled kernels."""
    return w[0].size > PLANE_TAPS and w.shape[0] // groups > PLANE_OUTPUTS


def conv_direct(x, w, b, groups, dh, dw, oh, ow):
    """y[n, k, i, j] = b[k] + sum_{c, r, s} w[k, c, r, s] x[n, g(k)*C/G + c, i + r*DH, j + s*DW], x padded."""
    kernel = conv_tiled if _tiled(w, groups) else _conv_planes
    return kernel(x, w, b, groups, dh, dw, oh, ow)


def conv_direct_weight(x, g, groups, kh, kw, dh, dw, oh):
    """dw[k, c, r, s] = sum_n sum_q g[n, k, q] x[n, g(k)*C/G + c].flat[q + r*DH*W + s*DW], plane by plane."""
    return _conv_planes_weight(x, g, groups, kh, kw, dh, dw, oh)


def conv_direct_input(g, w, groups, h, wd, dh, dw, oh):
    """The adjoint in x: dx[n, c].flat[q + r*DH*W + s*DW] += w[k, c, r, s] g[n, k].flat[q], dx padded; plane by
    plane."""
    return _conv_planes_input(g, w, groups, h, wd, dh, dw, oh)


def conv_direct_backward(x, gy, w, groups, padding, dilation, need_x=True, need_w=True):
    """(dx (N, C, H, W), dw) of conv_direct from the padded x and dy (N, K, OH, OW), None where not needed: on the
    register-tiled kernels (see _tiled), else on the plane kernels, with dy in the shifted layout."""
    if _tiled(w, groups):
        return conv_tiled_backward(x, gy, w, groups, padding, dilation, need_x, need_w)
    return shifted_backward(conv_direct_input, conv_direct_weight, np, x, gy, w, groups, padding, dilation, need_x,
                            need_w)


def shifted_backward(input_kernel, weight_kernel, xp, x, gy, w, groups, padding, dilation, need_x, need_w):
    """conv_direct_backward on a backend's conv_direct_input and conv_direct_weight (xp: its array module), which
    take dy in the shifted layout, (N, K, OH*Wp) with zeros in the junk columns, and give the padded dx."""
    (n, k, oh, ow), (hp, wp) = gy.shape, x.shape[2:]
    (ph, pw), (dh, dw) = padding, dilation
    gp = xp.zeros((n, k, oh, wp), dtype=gy.dtype)
    gp[..., :ow] = gy
    gp = gp.reshape(n, k, -1)
    dx = input_kernel(gp, w, groups, hp, wp, dh, dw, oh)[:, :, ph:hp - ph, pw:wp - pw] if need_x else None
    dwt = weight_kernel(x, gp, groups, w.shape[2], w.shape[3], dh, dw, oh) if need_w else None
    return dx, dwt


@cpu_kernel()
def _conv_planes(x, w, b, groups, dh, dw, oh, ow):
    """y[n, k, i, j] = b[k] + sum_{c, r, s} w[k, c, r, s] x[n, g(k)*C/G + c, i + r*DH, j + s*DW]; one thread per
    (n, k) plane, which sums whole taps over the plane at the padded width W in a buffer of its own (row i at
    q = i*W: acc.flat[q] += w x.flat[q + r*DH*W + s*DW]) and copies out the OW valid columns of each row."""
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    span = oh * wd
    xf = np.ascontiguousarray(x).reshape(n, c, h * wd)
    y = np.empty((n, k, oh, ow), dtype=x.dtype)
    for plane in prange(n * k):
        bi = plane // k
        ki = plane % k
        acc = np.full(span, b[ki], dtype=x.dtype)
        for ci in range(cg):
            src = xf[bi, (ki // (k // groups)) * cg + ci]
            for r in range(kh):
                for s in range(kw):
                    off = r * dh * wd + s * dw
                    part = src[off:off + min(span, h * wd - off)]
                    wv = w[ki, ci, r, s]
                    for q in range(part.size):
                        acc[q] += wv * part[q]
        for i in range(oh):
            y[bi, ki, i] = acc[i * wd:i * wd + ow]
    return y


@cpu_kernel(fastmath={"reassoc"})
def _conv_planes_weight(x, g, groups, kh, kw, dh, dw, oh):
    """dw[k, c, r, s] = sum_n sum_q g[n, k, q] x[n, g(k)*C/G + c].flat[q + r*DH*W + s*DW]; one thread per weight.
    Each image's sum runs in the weight's dtype in vector lanes (reassociated, in the same order every run), the
    sum over images in float64."""
    n, c, h, wd = x.shape
    k = g.shape[1]
    cg = c // groups
    span = oh * wd
    xf = np.ascontiguousarray(x).reshape(n, c, h * wd)
    dwt = np.empty((k, cg, kh, kw), dtype=x.dtype)
    zero = np.zeros(1, dtype=x.dtype)[0]
    for tap in prange(k * cg * kh * kw):
        ki = tap // (cg * kh * kw)
        ci = (tap // (kh * kw)) % cg
        off = ((tap // kw) % kh) * dh * wd + (tap % kw) * dw
        m = min(span, h * wd - off)
        total = 0.0
        for b in range(n):
            xs = xf[b, (ki // (k // groups)) * cg + ci, off:off + m]
            gs = g[b, ki]
            part = zero
            for q in range(m):
                part += gs[q] * xs[q]
            total += part
        dwt[ki, ci, (tap // kw) % kh, tap % kw] = total
    return dwt


@cpu_kernel()
def _conv_planes_input(g, w, groups, h, wd, dh, dw, oh):
    """The adjoint in x: dx[n, c].flat[q + r*DH*W + s*DW] += w[k, c, r, s] g[n, k].flat[q] over the K/G outputs
    of c's group; one thread per (n, c) plane of the padded dx, adding in a fixed order."""
    n, k, span = g.shape
    _, cg, kh, kw = w.shape
    c, kg = cg * groups, k // groups
    dx = np.zeros((n, c, h * wd), dtype=g.dtype)
    for plane in prange(n * c):
        b = plane // c
        cin = plane % c
        dst = dx[b, cin]
        for kk in range(kg):
            ki = (cin // cg) * kg + kk
            src = g[b, ki]
            for r in range(kh):
                for s in range(kw):
                    off = r * dh * wd + s * dw
                    part = dst[off:off + min(span, h * wd - off)]
                    wv = w[ki, cin % cg, r, s]
                    for q in range(part.size):
                        part[q] += wv * src[q]
    return dx.reshape(n, c, h, wd)
