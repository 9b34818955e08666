"""RoI pooling and RoI align, written to be read: a fixed-size OH x OW feature map for every region of interest.

A detector (Fast and Faster R-CNN, Mask R-CNN) runs its backbone once over the image and then needs, for every
proposed box, a feature map of one fixed size for its head. The box is given in image pixels; spatial_scale s
(feature-map pixels per image pixel, 1/16 after four stride-2 stages) takes it onto the feature map.

    N, C, H, W   the feature maps x                     K        regions of interest (RoIs), one row of rois each
    rois         (K, 5): (n, x1, y1, x2, y2)             OH, OW   the output size of every RoI (output_size)
    n            the image of x the RoI lies on          GH, GW   RoI align's sampling grid in each bin

RoI pooling (Girshick 2015, "Fast R-CNN", section 2.1) rounds the RoI to whole pixels and max-pools it over an
OH x OW grid of bins:

    x1' = round(s x1), ..., y2' = round(s y2)   (halves away from zero, as C's round)
    height = max(y2' - y1' + 1, 1)               (both end pixels count; width likewise: torchvision's convention)
    bin i covers rows  y1' + floor(i height / OH)  up to  y1' + ceil((i + 1) height / OH) - 1,  clipped to the image
    y[k, c, i, j] = max of x[n, c] over the bin's rows and columns (0 for a bin wholly outside the image)

Its gradient goes to the pixel that held the maximum: the first one in row-major order. The running maximum starts
at -3.4e38 (torchvision's -FLT_MAX, for float64 too) and only a larger value replaces it, so a NaN never wins, and a
bin holding only -inf or NaN gives -3.4e38 and passes no gradient back.

RoI align (He et al. 2017, "Mask R-CNN", section 3) does not round. It samples each bin on a GH x GW grid of
points and interpolates x bilinearly at each:

    start = s y1 - o, size = (s y2 - o) - start   (o = 1/2 with aligned=True, else 0 and size raised to >= 1)
    GH = sampling_ratio, or ceil(size / OH) when sampling_ratio <= 0 (columns likewise)
    y_(i, a) = start + i size / OH + (a + 1/2) (size / OH) / GH      the a-th sample row of bin i, a < GH
    y[k, c, i, j] = 1 / (GH GW) sum over a, b of bilinear(x[n, c], y_(i, a), x_(j, b))   (0 when GH GW = 0)

bilinear(f, y, x) weighs the four pixels around (y, x) by (1 - ly)(1 - lx), (1 - ly) lx, ly (1 - lx), ly lx with
ly = y - floor(y), lx = x - floor(x), and follows torchvision at the border: a point with y < -1 or y > H (or
x < -1 or x > W) gives 0; one above row 0 is moved onto it (y <= 0 -> 0); one below row H - 1 onto that row.
With aligned=True a pixel is a unit square around its centre (pixel i spans i - 1/2 .. i + 1/2), so a box from 0
to 2 covers two pixels exactly; without it, the older convention is kept for compatibility.

The weights are separable, w = wy(y) wx(x), each coming from one coordinate, so roi_align_samples works out per
axis which two rows (columns) each sample reads and with what weight; the forward pass then sums weight times pixel
over the samples, and the backward pass hands grad * weight / (GH GW) to the same four pixels. (Here every RoI's
table is as long as the largest grid; roi_align_sample_lists lays the same numbers out RoI by RoI, each with its
own grid, for the fast kernels, so that one large RoI does not make every RoI's table large.)

With NaN or inf in the input, a sample multiplies them by its weights even where a weight is 0 (0 * inf is NaN),
as torchvision does; torchvision also reads pixel (0, 0) for every sample outside the image, so for RoIs that
reach outside, which outputs become NaN can differ. With finite inputs the results are the same.

All positions are computed in the input's dtype in torchvision's order of operations: the rounding of bin edges
(and so the result) depends on it in float32. As in pool.py, the loops run over the offsets of a bin (RoI pooling)
or of a sampling grid (RoI align), never over RoIs, pixels or channels.
"""
from typing import NamedTuple

import numpy as np

from ..backend import xp_of

LOWEST = float(np.finfo(np.float32).min)  # torchvision's -FLT_MAX: where the running maximum of a bin starts


def _round_half_away(v):
    """C's round(): halves go away from zero (NumPy's round goes to the even neighbour). v - trunc(v) is exact, so
    0.49999997 stays below the half."""
    xp = xp_of(v)
    whole = xp.trunc(v)
    return whole + xp.sign(v) * (xp.abs(v - whole) >= 0.5)


def _bin_edges(first, last, bins, size, xp, t):
    """[lo, hi) of each of `bins` bins (K, bins) over the pixels first..last of each RoI, clipped to [0, size)."""
    length = xp.maximum(last - first + 1, 1).astype(t)
    step = (length / t(bins))[:, None]
    i = xp.arange(bins, dtype=t)
    lo = xp.floor(i * step).astype(np.int64) + first[:, None]
    hi = xp.ceil((i + 1) * step).astype(np.int64) + first[:, None]
    return xp.clip(lo, 0, size), xp.clip(hi, 0, size)


def roi_pool_bins(rois, spatial_scale, output_size, height, width):
    """(row0, row1, col0, col1): bin i of RoI k covers rows row0[k, i] <= r < row1[k, i] and bin j columns
    col0[k, j] <= c < col1[k, j] (arrays (K, OH) and (K, OW)); an empty range is an empty bin."""
    xp, t = xp_of(rois), rois.dtype.type
    x1, y1, x2, y2 = _round_half_away(rois[:, 1:] * t(spatial_scale)).astype(np.int64).T
    return _bin_edges(y1, y2, output_size[0], height, xp, t) + _bin_edges(x1, x2, output_size[1], width, xp, t)


def _longest(lo, hi):
    return int((hi - lo).max()) if lo.size else 0


def roi_pool_forward(x, rois, spatial_scale, output_size):
    """(y, argmax): the maximum of each bin (K, C, OH, OW) and the flat index r W + c of the pixel that held it in
    its (n, c) plane (-1 where nothing beat -FLT_MAX, an empty bin included). The bins are visited one offset
    (dr, dc) at a time, row-major, each a gather over all RoIs, channels and bins at once."""
    xp = xp_of(x)
    _, c, h, w = x.shape
    row0, row1, col0, col1 = roi_pool_bins(rois, spatial_scale, output_size, h, w)
    batch = rois[:, 0].astype(np.int64)[:, None, None]
    y = xp.full((len(rois), c) + tuple(output_size), LOWEST, dtype=x.dtype)
    argmax = xp.full(y.shape, -1, dtype=np.int32)
    for dr in range(_longest(row0, row1)):
        for dc in range(_longest(col0, col1)):
            row, col = row0 + dr, col0 + dc
            inside = (row < row1)[:, :, None] & (col < col1)[:, None, :]                      # (K, OH, OW)
            v = x[batch, :, xp.minimum(row, h - 1)[:, :, None], xp.minimum(col, w - 1)[:, None, :]]
            v = v.transpose(0, 3, 1, 2)                                                          # (K, C, OH, OW)
            better = inside[:, None] & (v > y)
            y = xp.where(better, v, y)
            argmax = xp.where(better, (row[:, :, None] * w + col[:, None, :])[:, None], argmax).astype(np.int32)
    empty = (row1 <= row0)[:, :, None] | (col1 <= col0)[:, None, :]
    return xp.where(empty[:, None], 0, y).astype(x.dtype), argmax


def roi_pool_backward(grad_y, rois, argmax, x_shape, spatial_scale):
    """grad_x: each output's gradient added to the pixel its argmax names (nothing for -1); a pixel chosen by
    several bins or RoIs gets the sum. spatial_scale is not needed here (the argmax says where each gradient goes):
    the GPU's gather uses it to find the bins that cover a pixel."""
    xp = xp_of(grad_y)
    n, c, h, w = x_shape
    plane = rois[:, 0].astype(np.int64)[:, None] * c + xp.arange(c)                     # (K, C): the (n, c) plane
    chosen = argmax >= 0
    target = (plane[:, :, None, None] * (h * w) + argmax)[chosen]
    grad_x = xp.bincount(target, weights=grad_y[chosen], minlength=n * c * h * w)
    return grad_x.astype(grad_y.dtype).reshape(x_shape)


class Samples(NamedTuple):
    """RoI align's samples along one axis. index[0] and index[1] (K, O, G) are the pixel before and after sample
    a of bin i, weight[0] and weight[1] their bilinear weights (0 for a sample outside [-1, size], and for a < G
    beyond the RoI's own grid); grid (K,) is each RoI's number of samples per bin (GH or GW)."""
    index: object
    weight: object
    grid: object


def _axis_grid(start, end, bins, sampling_ratio, aligned, xp, t):
    """(step, grid) (K,) for RoIs from start to end (K,) cut into `bins` bins: the bin size and the samples per
    bin (GH or GW)."""
    length = end - start
    if not aligned:
        length = xp.maximum(length, t(1))  # a malformed RoI is treated as 1 pixel
    step = length / t(bins)
    if sampling_ratio > 0:
        return step, xp.full(length.shape, sampling_ratio, dtype=np.int64)
    return step, xp.ceil(length / t(bins)).astype(np.int64)


def _taps(start, step, grid, i, a, size, xp, t, used=None):
    """(index (2, ...), weight (2, ...)): the pixels before and after sample a of bin i (arrays that broadcast
    with start, step and grid, in the dtype t) and their bilinear weights, 0 outside [-1, size] or where not used."""
    pos = start + i * step + (a + t(0.5)) * step / xp.maximum(grid, 1).astype(t)
    inside = (pos >= -1) & (pos <= size)
    if used is not None:
        inside = inside & used
    pos = xp.where(inside & (pos > 0), pos, t(0))  # onto row 0 from above (or anywhere, for a sample that is out)
    low = pos.astype(np.int64)
    last = low >= size - 1
    low = xp.where(last, size - 1, low)
    high = xp.where(last, low, low + 1)
    frac = xp.where(last, t(0), pos - low.astype(t))  # past the last row: moved onto it, weight 1
    weight = xp.stack([xp.where(inside, t(1) - frac, t(0)), xp.where(inside, frac, t(0))])
    return xp.where(inside, xp.stack([low, high]), 0), weight


def _axis_samples(start, end, bins, sampling_ratio, aligned, size, xp, t):
    """The Samples along one axis of `size` pixels, for RoIs from start to end (K,) cut into `bins` bins."""
    step, grid = _axis_grid(start, end, bins, sampling_ratio, aligned, xp, t)
    i = xp.arange(bins, dtype=t)[:, None]
    a = xp.arange(int(grid.max()) if grid.size else 0, dtype=t)
    k = (slice(None), None, None)
    return Samples(*_taps(start[k], step[k], grid[k], i, a, size, xp, t, used=a < grid[k]), grid)


def _scaled(rois, spatial_scale, aligned):
    """The RoIs' corners (x1, y1, x2, y2) on the feature map, in rois' dtype."""
    t = rois.dtype.type
    return (rois[:, 1:] * t(spatial_scale) - t(0.5 if aligned else 0)).T


def roi_align_samples(rois, spatial_scale, output_size, sampling_ratio, aligned, height, width):
    """(rows, cols, count): the Samples of each axis and each RoI's divisor max(GH GW, 1) (K,), in rois' dtype."""
    xp, t = xp_of(rois), rois.dtype.type
    x1, y1, x2, y2 = _scaled(rois, spatial_scale, aligned)
    rows = _axis_samples(y1, y2, output_size[0], sampling_ratio, aligned, height, xp, t)
    cols = _axis_samples(x1, x2, output_size[1], sampling_ratio, aligned, width, xp, t)
    return rows, cols, xp.maximum(rows.grid * cols.grid, 1).astype(t)


def roi_align_grid(rois, spatial_scale, output_size, sampling_ratio, aligned):
    """(GH, GW) (K,) int64: each RoI's samples per bin along each axis."""
    xp, t = xp_of(rois), rois.dtype.type
    x1, y1, x2, y2 = _scaled(rois, spatial_scale, aligned)
    return (_axis_grid(y1, y2, output_size[0], sampling_ratio, aligned, xp, t)[1],
            _axis_grid(x1, x2, output_size[1], sampling_ratio, aligned, xp, t)[1])


# --- the same samples, RoI by RoI, for the fast kernels ---------------------------------------------------------

class SampleList(NamedTuple):
    """RoI align's samples along one axis, each RoI with its own grid: the entries of RoI k are offset[k] ..
    offset[k + 1] - 1 (K + 1,), sample a of bin i at offset[k] + i grid[k] + a; index and weight (2, entries) as in
    Samples. Where Samples pads every RoI to the largest grid, these take O x grid[k] entries per RoI."""
    index: object
    weight: object
    grid: object
    offset: object


def _axis_list(start, end, bins, sampling_ratio, aligned, size, xp, t):
    """The SampleList along one axis: entry e of RoI k is sample a = e % grid[k] of bin i = e // grid[k]."""
    step, grid = _axis_grid(start, end, bins, sampling_ratio, aligned, xp, t)
    offset = xp.concatenate([xp.zeros(1, dtype=np.int64), xp.cumsum(bins * grid)])
    entry = xp.arange(int(offset[-1]))
    k = xp.searchsorted(offset, entry, side="right") - 1  # the RoI of each entry (RoIs without samples skipped)
    place, g = entry - offset[k], grid[k]
    index, weight = _taps(start[k], step[k], g, (place // g).astype(t), (place % g).astype(t), size, xp, t)
    return SampleList(index, weight, grid, offset)


def roi_align_sample_lists(rois, spatial_scale, output_size, sampling_ratio, aligned, height, width):
    """roi_align_samples with each RoI's own grid: (rows, cols, count), rows and cols SampleLists. The same numbers
    entry for entry, computed in the same order; only the layout differs."""
    xp, t = xp_of(rois), rois.dtype.type
    x1, y1, x2, y2 = _scaled(rois, spatial_scale, aligned)
    rows = _axis_list(y1, y2, output_size[0], sampling_ratio, aligned, height, xp, t)
    cols = _axis_list(x1, x2, output_size[1], sampling_ratio, aligned, width, xp, t)
    return rows, cols, xp.maximum(rows.grid * cols.grid, 1).astype(t)


def sample_reach(samples, size):
    """(first, last) (K,): the first and last pixel that each RoI's samples (a SampleList) read with a nonzero
    weight on their axis (size and -1 for a RoI that reads none), so that the GPU's backward gather skips at once
    the RoIs that never read a pixel. The keys RoI * (size + 2) + pixel, sorted, leave RoI k's entries at offset[k]
    .. offset[k + 1] - 1, the smallest first and the largest last."""
    xp = xp_of(samples.index)
    k_all = xp.arange(len(samples.grid))
    start, stop = samples.offset[:-1], samples.offset[1:]
    if samples.index.shape[1] == 0:
        return xp.full(len(k_all), size, dtype=np.int64), xp.full(len(k_all), -1, dtype=np.int64)
    read = samples.weight > 0
    k = xp.searchsorted(samples.offset, xp.arange(samples.index.shape[1]), side="right") - 1
    lows = xp.sort(k * (size + 2) + xp.where(read, samples.index, size).min(axis=0))
    highs = xp.sort(k * (size + 2) + xp.where(read, samples.index, -1).max(axis=0) + 1)
    last_entry = samples.index.shape[1] - 1
    first = lows[xp.minimum(start, last_entry)] - k_all * (size + 2)
    last = highs[xp.clip(stop - 1, 0, last_entry)] - k_all * (size + 2) - 1
    return xp.where(stop > start, first, size), xp.where(stop > start, last, -1)


def _corners(rows, cols, a, b):
    """The four pixels of sample (a, b) of every bin: (row index (K, OH, 1), column index (K, 1, OW), weight
    (K, OH, OW)), for the pixels before and after it on each axis."""
    for u in (0, 1):
        for v in (0, 1):
            wy, wx = rows.weight[u, :, :, a], cols.weight[v, :, :, b]
            yield rows.index[u, :, :, a][:, :, None], cols.index[v, :, :, b][:, None, :], wy[:, :, None] * wx[:, None]


def roi_align_forward(x, rois, spatial_scale, output_size, sampling_ratio, aligned):
    """y (K, C, OH, OW): the mean over each bin's samples of x interpolated bilinearly, one sample offset (a, b) of
    every bin at a time."""
    xp = xp_of(x)
    rows, cols, count = roi_align_samples(rois, spatial_scale, output_size, sampling_ratio, aligned, *x.shape[2:])
    batch = rois[:, 0].astype(np.int64)[:, None, None]
    y = xp.zeros((len(rois), x.shape[1]) + tuple(output_size), dtype=x.dtype)
    for a in range(rows.index.shape[3]):
        for b in range(cols.index.shape[3]):
            for r, c, weight in _corners(rows, cols, a, b):
                y += weight[:, None] * x[batch, :, r, c].transpose(0, 3, 1, 2)
    return y / count[:, None, None, None]


def roi_align_backward(grad_y, rois, x_shape, spatial_scale, sampling_ratio, aligned):
    """grad_x: every sample of bin (i, j) hands grad_y[k, c, i, j] * weight / count to the four pixels it read
    (a scatter-add, as a bincount over flat pixel indices)."""
    xp = xp_of(grad_y)
    n, c, h, w = x_shape
    rows, cols, count = roi_align_samples(rois, spatial_scale, grad_y.shape[2:], sampling_ratio, aligned, h, w)
    share = grad_y / count[:, None, None, None]
    plane = (rois[:, 0].astype(np.int64)[:, None] * c + xp.arange(c))[:, :, None, None]           # (K, C, 1, 1)
    grad_x = xp.zeros(n * c * h * w)
    for a in range(rows.index.shape[3]):
        for b in range(cols.index.shape[3]):
            for r, col, weight in _corners(rows, cols, a, b):
                target = (plane * h + r[:, None]) * w + col[:, None]
                grad_x += xp.bincount(target.ravel(), weights=(share * weight[:, None]).ravel(),
                                      minlength=n * c * h * w)
    return grad_x.astype(grad_y.dtype).reshape(x_shape)
