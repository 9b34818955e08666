"""im2col/col2im (the general layout and the stride-1 shifted one) and the direct convolution.

Shapes: x is (N, C, H, W). The im2col matrix `cols` is (C*KH*KW, N*OH*OW): row (c, r, s) holds, for every output
position (n, i, j), the input pixel x[n, c, i*SH - PH + r*DH, j*SW - PW + s*DW] (0 outside the image), so a
convolution is one matrix product W(K, C*KH*KW) @ cols.
"""
import numpy as np
from numba import njit, prange

from ._jit import cpu_kernel


@njit(cache=True)
def _valid_range(n_out, n_in, stride, offset):
    """The outputs j in [j0, j1) whose input position j*stride + offset lies inside [0, n_in)."""
    j0 = 0 if offset >= 0 else (-offset + stride - 1) // stride
    j1 = 0 if n_in - 1 - offset < 0 else min(n_out, (n_in - 1 - offset) // stride + 1)
    return min(j0, n_out), max(j1, min(j0, n_out))


@cpu_kernel()
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


@cpu_kernel()
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
# W - OW columns of each output row junk (zero); the forward pass computes its rows that way and copies out y. Used where each output sums few inputs (C/G*KH*KW
# small), where a matrix product with so short an inner dimension runs far below BLAS speed and im2col would
# copy every input pixel KH*KW times. Every inner loop is one long contiguous span, which Numba vectorises.

@cpu_kernel()
def conv_direct(x, w, b, groups, dh, dw, oh, ow):
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
def conv_direct_weight(x, g, groups, kh, kw, dh, dw, oh):
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
def conv_direct_input(g, w, groups, h, wd, dh, dw, oh):
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
