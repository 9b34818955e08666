"""im2col/col2im (the general layout and the stride-1 shifted one) and the direct convolution, on Numba.

Shapes in minicnn/geometry.py's notation; every wrapper takes a geometry object `geom` and unpacks it only where
it calls a Numba kernel. The im2col matrix `cols` is (C*KH*KW, N*OH*OW): row (c, r, s) holds, for every output
position (n, i, j), the input pixel x[n, c, i*SH - PH + r*DH, j*SW - PW + s*DW] (0 outside the image), so a
convolution is one matrix product W(K, C*KH*KW) @ cols (reference/conv.py, the definition these are tested
against).
"""
import numpy as np
from numba import njit, prange

from ._jit import cpu_kernel


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


def im2col(x, geom):
    """x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW). x is padded once; then row (c, r, s) of each image is one gather
    through the table of window offsets, from x[n, c].flat[r*DH*Wp + s*DW]."""
    xp = _padded(x, geom.PH, geom.PW)
    offsets = _window_offsets(geom.OH, geom.OW, geom.SH, geom.SW, xp.shape[3])
    return _im2col_padded(xp, geom.KH, geom.KW, geom.DH, geom.DW, offsets)


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


def col2im(cols, geom):
    """The adjoint of im2col: grad_x[n, c, y, x] sums every column entry that im2col read from (y, x). Each (n, c)
    plane of the padded grad_x belongs to one thread, which scatters its KH*KW rows into it in a fixed order: no
    races, the same result every run. Returns a view without the padding."""
    hp, wp = geom.H + 2 * geom.PH, geom.W + 2 * geom.PW
    offsets = _window_offsets(geom.OH, geom.OW, geom.SH, geom.SW, wp)
    grad_x = _col2im_padded(cols, geom.N, geom.C, hp, wp, geom.KH, geom.KW, geom.DH, geom.DW, offsets)
    return grad_x[:, :, geom.PH:geom.PH + geom.H, geom.PW:geom.PW + geom.W]


@cpu_kernel()
def _col2im_padded(cols, n, c, h, w, kh, kw, dh, dw, offsets):
    p = offsets.size
    grad_x = np.zeros((n, c, h * w), dtype=cols.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for r in range(kh):
            for s in range(kw):
                src = cols[(ci * kh + r) * kw + s, b * p:(b + 1) * p]
                dst = grad_x[b, ci, r * dh * w + s * dw:]
                for q in range(p):
                    dst[offsets[q]] += src[q]
    return grad_x.reshape(n, c, h, w)


def im2col_shifted(x_padded, geom):
    """im2col of a stride-1 convolution of the padded x, with every output row computed at the padded width Wp:
    the last Wp - OW columns of each row are junk, which the caller drops. Row (c, r, s), image n, column
    q = i*Wp + j then holds x[n, c].flat[q + r*DH*Wp + s*DW] (0 past the end of the plane): one contiguous span
    per row and image, copied in one piece instead of OH short lines."""
    return _im2col_shifted(x_padded, geom.KH, geom.KW, geom.DH, geom.DW, geom.OH)


def col2im_shifted(cols, geom):
    """The adjoint of im2col_shifted: the padded grad_x (N, C, Hp, Wp)."""
    hp, wp = geom.H + 2 * geom.PH, geom.W + 2 * geom.PW
    return _col2im_shifted(cols, geom.N, geom.C, hp, wp, geom.KH, geom.KW, geom.DH, geom.DW, geom.OH)


@cpu_kernel()
def _im2col_shifted(x, kh, kw, dh, dw, oh):
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
def _col2im_shifted(cols, n, c, h, w, kh, kw, dh, dw, oh):
    """Each (n, c) plane adds its KH*KW spans in a fixed order (one thread each)."""
    span = oh * w
    grad_x = np.zeros((n, c, h * w), dtype=cols.dtype)
    for plane in prange(n * c):
        b = plane // c
        ci = plane % c
        for r in range(kh):
            for s in range(kw):
                off = r * dh * w + s * dw
                src = cols[(ci * kh + r) * kw + s, b * span:(b + 1) * span]
                dst = grad_x[b, ci, off:]
                for q in range(min(span, h * w - off)):  # an explicit loop: a slice += allocates a temporary
                    dst[q] += src[q]
    return grad_x.reshape(n, c, h, w)


# --- direct convolution at stride 1, in the shifted layout: x padded, grad_y as (N, K, OH*Wp) with the last
# Wp - OW columns of each output row junk (zero); the forward pass computes its rows that way and copies out y.
# These kernels work plane by plane: every inner loop is one long contiguous span. (conv_tiled.py has the
# register-tiled kernels for layers with many inputs per output; functional/conv.py chooses.)

def conv_direct(x_padded, w, b, geom):
    """y[n, k, i, j] = b[k] + sum_{c, r, s} w[k, c, r, s] xp[n, g(k)*C/G + c, i + r*DH, j + s*DW] (stride 1)."""
    return _conv_planes(x_padded, w, b, geom.G, geom.DH, geom.DW, geom.OH, geom.OW)


def conv_direct_weight(x_padded, grad_y_shifted, geom):
    """grad_w[k, c, r, s] = sum_n sum_q grad_y[n, k, q] xp[n, g(k)*C/G + c].flat[q + r*DH*Wp + s*DW]."""
    return _conv_planes_weight(x_padded, grad_y_shifted, geom.G, geom.KH, geom.KW, geom.DH, geom.DW, geom.OH)


def conv_direct_input(grad_y_shifted, w, geom):
    """The adjoint in x: grad_xp[n, c].flat[q + r*DH*Wp + s*DW] += w[k, c, r, s] grad_y[n, k].flat[q]; the padded
    grad_x (N, C, Hp, Wp)."""
    return _conv_planes_input(grad_y_shifted, w, geom.G, geom.H + 2 * geom.PH, geom.W + 2 * geom.PW, geom.DH,
                              geom.DW, geom.OH)


def conv_direct_backward(x_padded, grad_y, w, geom, need_x=True, need_w=True):
    """(grad_x (N, C, H, W), grad_w), either None where not needed, from the padded x and grad_y (N, K, OH, OW)."""
    return shifted_backward(conv_direct_input, conv_direct_weight, np, x_padded, grad_y, w, geom, need_x, need_w)


def shifted_backward(input_kernel, weight_kernel, xp, x_padded, grad_y, w, geom, need_x, need_w):
    """conv_direct_backward on a backend's conv_direct_input and conv_direct_weight (xp: its array module), which
    take grad_y in the shifted layout, (N, K, OH*Wp) with zeros in the junk columns, and give the padded grad_x."""
    wp = geom.W + 2 * geom.PW
    shifted = xp.zeros((geom.N, geom.K, geom.OH, wp), dtype=grad_y.dtype)
    shifted[..., :geom.OW] = grad_y
    shifted = shifted.reshape(geom.N, geom.K, -1)
    grad_x = None
    if need_x:
        grad_x = input_kernel(shifted, w, geom)[:, :, geom.PH:geom.PH + geom.H, geom.PW:geom.PW + geom.W]
    grad_w = weight_kernel(x_padded, shifted, geom) if need_w else None
    return grad_x, grad_w


@cpu_kernel()
def _conv_planes(x, w, b, groups, dh, dw, oh, ow):
    """y[n, k, i, j] = b[k] + sum_{c, r, s} w[k, c, r, s] x[n, g(k)*C/G + c, i + r*DH, j + s*DW]; one thread per
    (n, k) plane, which sums whole taps over the plane at the padded width W in a buffer of its own (row i at
    q = i*W: acc.flat[q] += w x.flat[q + r*DH*W + s*DW]) and copies out the OW valid columns of each row."""
    n, c, h, width = x.shape
    k, cg, kh, kw = w.shape
    span = oh * width
    xf = np.ascontiguousarray(x).reshape(n, c, h * width)
    y = np.empty((n, k, oh, ow), dtype=x.dtype)
    for plane in prange(n * k):
        bi = plane // k
        ki = plane % k
        acc = np.full(span, b[ki], dtype=x.dtype)
        for ci in range(cg):
            src = xf[bi, (ki // (k // groups)) * cg + ci]
            for r in range(kh):
                for s in range(kw):
                    off = r * dh * width + s * dw
                    part = src[off:off + min(span, h * width - off)]
                    wv = w[ki, ci, r, s]
                    for q in range(part.size):
                        acc[q] += wv * part[q]
        for i in range(oh):
            y[bi, ki, i] = acc[i * width:i * width + ow]
    return y


@cpu_kernel(fastmath={"reassoc"})
def _conv_planes_weight(x, grad_y, groups, kh, kw, dh, dw, oh):
    """grad_w[k, c, r, s] = sum_n sum_q grad_y[n, k, q] x[n, g(k)*C/G + c].flat[q + r*DH*W + s*DW]; one thread per
    weight.
    Each image's sum runs in the weight's dtype in vector lanes (reassociated, in the same order every run), the
    sum over images in float64."""
    n, c, h, width = x.shape
    k = grad_y.shape[1]
    cg = c // groups
    span = oh * width
    xf = np.ascontiguousarray(x).reshape(n, c, h * width)
    grad_w = np.empty((k, cg, kh, kw), dtype=x.dtype)
    zero = np.zeros(1, dtype=x.dtype)[0]
    for tap in prange(k * cg * kh * kw):
        ki = tap // (cg * kh * kw)
        ci = (tap // (kh * kw)) % cg
        off = ((tap // kw) % kh) * dh * width + (tap % kw) * dw
        m = min(span, h * width - off)
        total = 0.0
        for b in range(n):
            xs = xf[b, (ki // (k // groups)) * cg + ci, off:off + m]
            gs = grad_y[b, ki]
            part = zero
            for q in range(m):
                part += gs[q] * xs[q]
            total += part
        grad_w[ki, ci, (tap // kw) % kh, tap % kw] = total
    return grad_w


@cpu_kernel()
def _conv_planes_input(grad_y, w, groups, h, width, dh, dw, oh):
    """The adjoint in x: grad_x[n, c].flat[q + r*DH*W + s*DW] += w[k, c, r, s] grad_y[n, k].flat[q] over the K/G
    outputs of c's group; one thread per (n, c) plane of the padded grad_x, adding in a fixed order."""
    n, k, span = grad_y.shape
    _, cg, kh, kw = w.shape
    c, kg = cg * groups, k // groups
    grad_x = np.zeros((n, c, h * width), dtype=grad_y.dtype)
    for plane in prange(n * c):
        b = plane // c
        cin = plane % c
        dst = grad_x[b, cin]
        for kk in range(kg):
            ki = (cin // cg) * kg + kk
            src = grad_y[b, ki]
            for r in range(kh):
                for s in range(kw):
                    off = r * dh * width + s * dw
                    part = dst[off:off + min(span, h * width - off)]
                    wv = w[ki, cin % cg, r, s]
                    for q in range(part.size):
                        part[q] += wv * src[q]
    return grad_x.reshape(n, c, h, width)
