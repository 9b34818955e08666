"""RoI pooling and RoI align, forward and backward (the formulas are in reference/roi.py).

Where each bin lies (roi_pool_bins) and where RoI align samples, with which weights (roi_align_sample_lists), are
small tables per RoI and axis that the reference works out in NumPy, in the input's dtype as torchvision does; the
kernels here do the per-pixel work from them. RoI align's tables hold each RoI's own sampling grid, so that one
large RoI costs its own samples, not as many for every RoI. Forward kernels give each (RoI, channel) plane of the
output to one thread. Backward kernels give each (n, c) plane of grad_x to one thread, which walks the RoIs of image
n in their order and adds their gradients into its own plane: no races, and the same result on one thread or many.
"""
import numpy as np
from numba import prange

from ..backend import xp_of
from ..reference.roi import LOWEST, roi_align_sample_lists, roi_pool_bins
from ._jit import cpu_kernel


def rois_by_image(rois, n):
    """(order, starts): the RoIs of image b are order[starts[b]:starts[b + 1]], in their original order."""
    xp = xp_of(rois)
    batch = rois[:, 0].astype(np.int64)
    order = xp.argsort(batch, kind="stable")
    return order, xp.searchsorted(batch[order], xp.arange(n + 1)).astype(np.int64)


def roi_pool_forward(x, rois, spatial_scale, output_size):
    """(y, argmax): the maximum of each bin and the flat index r W + c of the first pixel that held it (-1 where
    nothing beat -FLT_MAX: an empty bin, or one of -inf or NaN alone)."""
    row0, row1, col0, col1 = roi_pool_bins(rois, spatial_scale, output_size, *x.shape[2:])
    return _roi_pool(np.ascontiguousarray(x), rois[:, 0].astype(np.int64), row0, row1, col0, col1)


@cpu_kernel()
def _roi_pool(x, batch, row0, row1, col0, col1):
    _, c, h, w = x.shape
    k, oh, ow = batch.shape[0], row0.shape[1], col0.shape[1]
    out = np.empty((k * c, oh, ow), dtype=x.dtype)
    argmax = np.empty((k * c, oh, ow), dtype=np.int32)
    for plane in prange(k * c):
        r = plane // c
        src = x[batch[r], plane % c]
        for i in range(oh):
            for j in range(ow):
                best = LOWEST
                idx = -1
                for yy in range(row0[r, i], row1[r, i]):
                    for xx in range(col0[r, j], col1[r, j]):
                        if src[yy, xx] > best:  # strictly: the first maximum wins, a NaN never does
                            best = src[yy, xx]
                            idx = yy * w + xx
                empty = row1[r, i] <= row0[r, i] or col1[r, j] <= col0[r, j]
                out[plane, i, j] = 0 if empty else best
                argmax[plane, i, j] = idx
    return out.reshape(k, c, oh, ow), argmax.reshape(k, c, oh, ow)


def roi_pool_backward(grad_y, rois, argmax, x_shape, spatial_scale):
    """grad_x[n, c, p] = sum of grad_y over the bins (of image n's RoIs) whose argmax is p. spatial_scale is the
    GPU gather's (reference/roi.py)."""
    order, starts = rois_by_image(rois, x_shape[0])
    return _roi_pool_backward(np.ascontiguousarray(grad_y), argmax, order, starts, *x_shape)


@cpu_kernel()
def _roi_pool_backward(grad_y, argmax, order, starts, n, c, h, w):
    oh, ow = grad_y.shape[2], grad_y.shape[3]
    grad_x = np.zeros((n * c, h * w), dtype=grad_y.dtype)
    for plane in prange(n * c):
        b, ci = plane // c, plane % c
        dst = grad_x[plane]
        for s in range(starts[b], starts[b + 1]):
            r = order[s]
            for i in range(oh):
                for j in range(ow):
                    p = argmax[r, ci, i, j]
                    if p >= 0:
                        dst[p] += grad_y[r, ci, i, j]
    return grad_x.reshape(n, c, h, w)


def roi_align_forward(x, rois, spatial_scale, output_size, sampling_ratio, aligned):
    """y: the mean of each bin's bilinear samples."""
    rows, cols, count = roi_align_sample_lists(rois, spatial_scale, output_size, sampling_ratio, aligned,
                                               *x.shape[2:])
    return _roi_align(np.ascontiguousarray(x), rois[:, 0].astype(np.int64), *rows, *cols, count, *output_size)


@cpu_kernel()
def _roi_align(x, batch, row_at, row_w, gh, row_off, col_at, col_w, gw, col_off, count, oh, ow):
    """Sample (a, b) of bin (i, j) of RoI r reads rows row_at[u, e] and columns col_at[v, f], u, v in {0, 1}, with
    e = row_off[r] + i gh[r] + a and f = col_off[r] + j gw[r] + b."""
    c = x.shape[1]
    k = batch.shape[0]
    out = np.empty((k * c, oh, ow), dtype=x.dtype)
    for plane in prange(k * c):
        r = plane // c
        src = x[batch[r], plane % c]
        for i in range(oh):
            for j in range(ow):
                acc = 0.0
                for a in range(gh[r]):
                    e = row_off[r] + i * gh[r] + a
                    for u in range(2):
                        yy, wy = row_at[u, e], row_w[u, e]
                        for b in range(gw[r]):
                            f = col_off[r] + j * gw[r] + b
                            for v in range(2):
                                acc += wy * col_w[v, f] * src[yy, col_at[v, f]]
                out[plane, i, j] = acc / count[r]
    return out.reshape(k, c, oh, ow)


def roi_align_backward(grad_y, rois, x_shape, spatial_scale, sampling_ratio, aligned):
    """grad_x: each sample of a bin hands grad_y / count times its weight to the four pixels it read."""
    n, c, h, w = x_shape
    rows, cols, count = roi_align_sample_lists(rois, spatial_scale, grad_y.shape[2:], sampling_ratio, aligned, h, w)
    order, starts = rois_by_image(rois, n)
    return _roi_align_backward(np.ascontiguousarray(grad_y), order, starts, *rows, *cols, count, n, h, w)


@cpu_kernel()
def _roi_align_backward(grad_y, order, starts, row_at, row_w, gh, row_off, col_at, col_w, gw, col_off, count, n, h,
                        w):
    c, oh, ow = grad_y.shape[1], grad_y.shape[2], grad_y.shape[3]
    grad_x = np.zeros((n * c, h, w), dtype=grad_y.dtype)
    for plane in prange(n * c):
        b, ci = plane // c, plane % c
        dst = grad_x[plane]
        for s in range(starts[b], starts[b + 1]):
            r = order[s]
            for i in range(oh):
                for j in range(ow):
                    g = grad_y[r, ci, i, j] / count[r]
                    for a in range(gh[r]):
                        e = row_off[r] + i * gh[r] + a
                        for u in range(2):
                            yy, gy = row_at[u, e], g * row_w[u, e]
                            for bb in range(gw[r]):
                                f = col_off[r] + j * gw[r] + bb
                                for v in range(2):
                                    dst[yy, col_at[v, f]] += gy * col_w[v, f]
    return grad_x.reshape(n, c, h, w)
