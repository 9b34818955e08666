"""Convolution by im2col, written to be read: the definition every fast convolution of minicnn is tested against.

In the notation of minicnn/geometry.py, with xp the input zero-padded by PH rows and PW columns on each side and
g(k) the group of output channel k,

    y[n, k, i, j] = b[k] + sum over c, r, s of  w[k, c, r, s] * xp[n, g(k) C/G + c, i SH + r DH, j SW + s DW]

(a cross-correlation, as in every deep-learning library; LeCun et al. 1998). im2col (Chellapilla et al. 2006)
copies the pixels that each kernel tap (c, r, s) meets at every output position into one row of a matrix,

    cols[(c, r, s), (n, i, j)] = xp[n, c, i SH + r DH, j SW + s DW]          cols: (C KH KW, N OH OW)

so that the convolution is one matrix product per group, Y = W cols, with W the weights as a (K, C/G KH KW)
matrix. Backward is the chain rule through that product:

    grad_W = grad_Y cols^T        grad_cols = W^T grad_Y        grad_x = col2im(grad_cols)

where col2im, the adjoint of im2col, adds every entry of grad_cols back onto the pixel it was copied from. (The
bias gradient, the sum of grad_y over n, i and j, is the same for every implementation: functional/conv.py.)
"""
from ..backend import xp_of


def window(padded, r, s, geom):
    """The (N, C, OH, OW) pixels of a padded batch that kernel tap (r, s) meets: rows r DH, r DH + SH, ...,
    columns s DW, s DW + SW, ... (a strided view, no copy)."""
    top, left = r * geom.DH, s * geom.DW
    return padded[:, :, top:top + geom.SH * (geom.OH - 1) + 1:geom.SH,
                  left:left + geom.SW * (geom.OW - 1) + 1:geom.SW]


def im2col(x, geom):
    """x (N, C, H, W) -> cols (C KH KW, N OH OW): one strided slice of the padded input per kernel tap."""
    xp = xp_of(x)
    padded = xp.pad(x, ((0, 0), (0, 0), (geom.PH, geom.PH), (geom.PW, geom.PW)))
    cols = xp.empty((geom.C, geom.KH, geom.KW, geom.N, geom.OH, geom.OW), dtype=x.dtype)
    for r in range(geom.KH):
        for s in range(geom.KW):
            cols[:, r, s] = window(padded, r, s, geom).transpose(1, 0, 2, 3)
    return cols.reshape(geom.C * geom.KH * geom.KW, geom.N * geom.OH * geom.OW)


def col2im(cols, geom):
    """The adjoint of im2col: grad_cols (C KH KW, N OH OW) -> grad_x (N, C, H, W), each entry added to the pixel
    it came from (a pixel met by several taps receives the sum)."""
    xp = xp_of(cols)
    padded = xp.zeros((geom.N, geom.C, geom.H + 2 * geom.PH, geom.W + 2 * geom.PW), dtype=cols.dtype)
    cols = cols.reshape(geom.C, geom.KH, geom.KW, geom.N, geom.OH, geom.OW)
    for r in range(geom.KH):
        for s in range(geom.KW):
            window(padded, r, s, geom)[...] += cols[:, r, s].transpose(1, 0, 2, 3)
    return padded[:, :, geom.PH:geom.PH + geom.H, geom.PW:geom.PW + geom.W]


def conv2d_forward(x, w, b, geom):
    """y (N, K, OH, OW) = W cols (+ b), one matrix product per group of C/G inputs and K/G outputs."""
    G = geom.G
    cols = im2col(x, geom).reshape(G, geom.taps, -1)            # (G, C/G KH KW, N OH OW)
    Y = w.reshape(G, geom.K // G, geom.taps) @ cols             # (G, K/G, N OH OW)
    y = Y.reshape(geom.K, geom.N, geom.OH, geom.OW).transpose(1, 0, 2, 3)
    return y if b is None else y + b.reshape(-1, 1, 1)


def conv2d_backward(grad_y, x, w, geom, need_x=True, need_w=True):
    """(grad_x, grad_w) from grad_y (N, K, OH, OW), each None where not needed."""
    G = geom.G
    grad_Y = grad_y.transpose(1, 0, 2, 3).reshape(G, geom.K // G, -1)    # (G, K/G, N OH OW)
    grad_x = grad_w = None
    if need_w:
        cols = im2col(x, geom).reshape(G, geom.taps, -1)
        grad_w = (grad_Y @ cols.transpose(0, 2, 1)).reshape(w.shape)
    if need_x:
        W = w.reshape(G, geom.K // G, geom.taps)
        grad_cols = W.transpose(0, 2, 1) @ grad_Y                            # (G, C/G KH KW, N OH OW)
        grad_x = col2im(grad_cols.reshape(geom.C * geom.KH * geom.KW, -1), geom)
    return grad_x, grad_w
