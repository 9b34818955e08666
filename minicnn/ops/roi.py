"""RoI pooling and RoI align: torchvision.ops' roi_pool, roi_align, RoIPool and RoIAlign.

Both cut one fixed-size (OH, OW) feature map out of x (N, C, H, W) for each of K boxes, given in image pixels and
taken onto the feature map by spatial_scale. RoI pooling (Girshick 2015, "Fast R-CNN") rounds the box to whole
pixels and max-pools it over an OH x OW grid of bins; RoI align (He et al. 2017, "Mask R-CNN") keeps it as is and
averages bilinear samples in each bin. The formulas, and the readable version of both, are in reference/roi.py;
the ops run `kernels_for(x)`: the reference, the Numba kernels or the CUDA kernels. Forward and backward are
torchvision's, including its border rules, the +1 of RoI pooling and the first maximum getting the gradient.

boxes is a [K, 5] Tensor or array of (batch index, x1, y1, x2, y2), or a list of N [L, 4] ones of (x1, y1, x2,
y2), one per image. They are converted to the input's dtype and device (torchvision asks for the same dtype; the
conversion is what a torchvision user writes by hand) and get no gradient. Refused, with an error naming the op:
a non-float input, boxes of another shape, x2 < x1 or y2 < y1, a batch index that is not an image of the input
(checked in the boxes' own dtype, before the conversion rounds 0.9999999999 to 1), NaN or infinite coordinates,
coordinates beyond 2**24 pixels after scaling (float32 no longer tells neighbouring pixels apart there), a
spatial_scale that is not a positive finite number in the input's dtype, an output_size below 1 or of more than
2**31 - 1 bins, RoI align grids of more than 2**20 samples per bin (sampling_ratio at most 1024; with the
adaptive grid, a box so large that its bins would hold more: usually a spatial_scale left at 1), RoI pooling over
feature maps of more than 2**31 - 1 pixels (its argmax is an int32, as torchvision's), and outputs too large for
an array.
"""
import math
import numbers

import numpy as np

from ..autograd import Function, Tensor
from ..backend import device_of, to_device, xp_of
from ..functional._utils import check_4d, check_float, is_int, kernels_for, pair
from ..nn.module import Module
from ..reference.roi import roi_align_grid

REACH = 2.0 ** 24  # the largest |coordinate| x spatial_scale accepted, in feature-map pixels
MAX_BINS = 2 ** 31 - 1  # OH x OW, and H x W for RoI pooling: the kernels index bins and pixels with 32-bit ints
MAX_SAMPLES = 2 ** 20  # GH x GW, RoI align's samples per bin


def _scale(name, spatial_scale):
    """spatial_scale as a positive finite float (a Fraction or a NumPy number too)."""
    value = None
    if isinstance(spatial_scale, numbers.Real) and not isinstance(spatial_scale, (bool, np.bool_)):
        try:
            value = float(spatial_scale)
        except (OverflowError, TypeError, ValueError):
            value = None
    if value is None or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: spatial_scale must be a positive number, got {spatial_scale!r} (finite as a "
                         "float is needed)")
    return value


def _output_size(name, output_size):
    oh, ow = pair(name, "output_size", output_size, 1)
    if oh * ow > MAX_BINS:
        raise ValueError(f"{name}: output_size {output_size!r} has {oh * ow} bins per box, more than 2**31 - 1")
    return oh, ow


def _bad_batch(xp, batch, n):
    """Where the batch indices (in any real dtype) are not an integer in [0, n)."""
    bad = (batch < 0) | (batch >= n)
    return bad | (batch != xp.floor(batch)) if batch.dtype.kind == "f" else bad


def _array(name, what, value, device):
    """A Tensor's or an array's data, as an array on `device`."""
    data = value.data if isinstance(value, Tensor) else value
    if not hasattr(data, "dtype") or not hasattr(data, "shape"):
        raise TypeError(f"{name}: {what} must be a Tensor or an array, got {type(value).__name__}")
    if data.dtype.kind not in "iuf":
        raise TypeError(f"{name}: {what} must hold real numbers, got dtype {data.dtype}")
    return to_device(data, device)


def as_rois(name, input, boxes):
    """boxes as one (K, 5) array of rows (batch index, x1, y1, x2, y2) in the input's dtype and on its device; a
    list gives image i's boxes the batch index i. The input is checked first: it decides the dtype."""
    x = input.data if isinstance(input, Tensor) else input
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name}: input must be a Tensor or an array, got {type(input).__name__}")
    check_4d(name, x)
    check_float(name, x)
    xp, device = xp_of(x), device_of(x)
    if not isinstance(boxes, (list, tuple)):
        rois = _array(name, "boxes", boxes, device)
        if rois.ndim == 2 and rois.shape[1] == 5 and bool(_bad_batch(xp, rois[:, 0], x.shape[0]).any()):
            k = int(xp.argmax(_bad_batch(xp, rois[:, 0], x.shape[0])))
            raise ValueError(f"{name}: box {k} has a batch index that is not an image of the input (an integer in "
                             f"[0, {x.shape[0]})): (batch index, x1, y1, x2, y2) = {rois[k].tolist()}")
        return rois.astype(x.dtype)
    if len(boxes) != x.shape[0]:
        raise ValueError(f"{name}: expected a list of {x.shape[0]} box arrays (one per image of the input), "
                         f"got {len(boxes)}")
    parts = [_array(name, f"boxes[{i}]", b, device) for i, b in enumerate(boxes)]
    for i, part in enumerate(parts):
        if part.ndim != 2 or part.shape[1] != 4:
            raise ValueError(f"{name}: expected boxes[{i}] of shape [L, 4] (x1, y1, x2, y2), got {tuple(part.shape)}")
    sizes = [len(part) for part in parts]
    batch = xp.repeat(xp.arange(len(parts), dtype=x.dtype), sizes)[:, None]
    corners = xp.concatenate(parts).astype(x.dtype) if parts else xp.zeros((0, 4), dtype=x.dtype)
    return xp.concatenate([batch, corners], axis=1)


def _check_rois(name, x, rois, spatial_scale, output_size):
    """rois (K, 5), of the input's dtype: every row an image of x and a finite box with x1 <= x2, y1 <= y2 that
    lies within REACH pixels of the origin after spatial_scale; spatial_scale finite and nonzero in x's dtype."""
    check_4d(name, x)
    check_float(name, x)
    if x.shape[2] * x.shape[3] == 0:
        raise ValueError(f"{name}: expected feature maps of at least one pixel, got input {tuple(x.shape)}")
    if rois.ndim != 2 or rois.shape[1] != 5:
        raise ValueError(f"{name}: expected boxes of shape [K, 5] (batch index, x1, y1, x2, y2) or a list of [L, 4], "
                         f"got {tuple(rois.shape)}")
    if rois.dtype != x.dtype:
        raise ValueError(f"{name}: expected boxes of the input's dtype {x.dtype}, got {rois.dtype}")
    with np.errstate(over="ignore", under="ignore"):
        scale = float(x.dtype.type(spatial_scale))  # what the kernels multiply by
    if not 0 < scale < math.inf:
        raise ValueError(f"{name}: spatial_scale {spatial_scale!r} is {scale} in the input's dtype {x.dtype}")
    if len(rois) * x.shape[1] * output_size[0] * output_size[1] * x.dtype.itemsize > np.iinfo(np.intp).max:
        raise ValueError(f"{name}: an output of {len(rois)} x {x.shape[1]} x {output_size[0]} x {output_size[1]} "
                         "is too large for an array")
    xp, batch = xp_of(rois), rois[:, 0]
    with np.errstate(over="ignore"):
        corners = xp.abs(rois[:, 1:].astype(np.float64)) * scale  # float64; an inf is refused below
    problems = [(~xp.isfinite(rois).all(axis=1), "a coordinate that is NaN or infinite"),
                (_bad_batch(xp, batch, x.shape[0]),
                 f"a batch index that is not an image of the input (an integer in [0, {x.shape[0]}))"),
                ((rois[:, 3] < rois[:, 1]) | (rois[:, 4] < rois[:, 2]), "x2 < x1 or y2 < y1"),
                (~(corners <= REACH).all(axis=1), f"a coordinate beyond {REACH:.0f} pixels after spatial_scale")]
    for bad, what in problems:
        if bool(bad.any()):
            k = int(xp.argmax(bad))
            raise ValueError(f"{name}: box {k} has {what}: (batch index, x1, y1, x2, y2) = {rois[k].tolist()}")


class RoIPoolFunction(Function):
    """y (K, C, OH, OW): the maximum of x over each bin of each RoI. Saved for backward: the RoIs and the flat index
    of each maximum in its feature map (-1 for an empty bin), where the bin's gradient goes."""

    def __init__(self, output_size, spatial_scale):
        self.output_size = _output_size("roi_pool", output_size)
        self.spatial_scale = _scale("roi_pool", spatial_scale)

    def forward(self, x, rois):
        _check_rois("roi_pool", x, rois, self.spatial_scale, self.output_size)
        if x.shape[2] * x.shape[3] > MAX_BINS:
            raise ValueError(f"roi_pool: feature maps of {x.shape[2]} x {x.shape[3]} pixels, more than 2**31 - 1 "
                             "(the argmax is an int32)")
        self.rois, self.x_shape = rois, x.shape
        y, self.argmax = kernels_for(x).roi_pool_forward(x, rois, self.spatial_scale, self.output_size)
        return y

    def backward(self, grad_y):
        kernels = kernels_for(grad_y)
        return kernels.roi_pool_backward(grad_y, self.rois, self.argmax, self.x_shape, self.spatial_scale), None


class RoIAlignFunction(Function):
    """y (K, C, OH, OW): the mean of each bin's bilinear samples. y is linear in x: the backward pass hands each
    output's gradient, times the sample weights, to the pixels the samples read. Saved for backward: the RoIs."""

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned):
        self.output_size = _output_size("roi_align", output_size)
        self.spatial_scale = _scale("roi_align", spatial_scale)
        if not is_int(sampling_ratio):
            raise TypeError(f"roi_align: sampling_ratio must be an int (<= 0 for an adaptive grid), got "
                            f"{sampling_ratio!r}")
        if sampling_ratio > math.isqrt(MAX_SAMPLES):
            raise ValueError(f"roi_align: sampling_ratio must be at most {math.isqrt(MAX_SAMPLES)} (a grid of "
                             f"{math.isqrt(MAX_SAMPLES)} x {math.isqrt(MAX_SAMPLES)} samples per bin), got "
                             f"{sampling_ratio!r}")
        if not isinstance(aligned, (bool, np.bool_)):
            raise TypeError(f"roi_align: aligned must be True or False, got {aligned!r}")
        self.sampling_ratio, self.aligned = max(int(sampling_ratio), 0), bool(aligned)

    def forward(self, x, rois):
        _check_rois("roi_align", x, rois, self.spatial_scale, self.output_size)
        gh, gw = roi_align_grid(rois, self.spatial_scale, self.output_size, self.sampling_ratio, self.aligned)
        too_many = gh * gw > MAX_SAMPLES
        if bool(too_many.any()):
            k = int(xp_of(rois).argmax(too_many))
            raise ValueError(f"roi_align: box {k} {rois[k].tolist()} needs {int(gh[k])} x {int(gw[k])} samples per "
                             f"bin, more than {MAX_SAMPLES} (check spatial_scale, or give a sampling_ratio)")
        self.rois, self.x_shape = rois, x.shape
        return kernels_for(x).roi_align_forward(x, rois, self.spatial_scale, self.output_size, self.sampling_ratio,
                                                self.aligned)

    def backward(self, grad_y):
        return kernels_for(grad_y).roi_align_backward(grad_y, self.rois, self.x_shape, self.spatial_scale,
                                                      self.sampling_ratio, self.aligned), None


def roi_pool(input, boxes, output_size, spatial_scale=1.0):
    """RoI max pooling (Fast R-CNN): a Tensor [K, C, OH, OW], differentiable in input.

    >>> x = mc.tensor(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> roi_pool(x, [np.array([[0.0, 0.0, 3.0, 3.0]])], 2).numpy().ravel()
    array([ 5.,  7., 13., 15.])
    """
    rois = as_rois("roi_pool", input, boxes)
    return RoIPoolFunction.apply(input, rois, output_size=output_size, spatial_scale=spatial_scale)


def roi_align(input, boxes, output_size, spatial_scale=1.0, sampling_ratio=-1, aligned=False):
    """RoI align (Mask R-CNN): a Tensor [K, C, OH, OW], differentiable in input. sampling_ratio <= 0 samples
    ceil(RoI height / OH) x ceil(RoI width / OW) points per bin; aligned=True shifts the box by half a pixel.

    >>> x = mc.tensor(np.arange(16.0).reshape(1, 1, 4, 4))   # x[r, c] = 4 r + c, which bilinear reproduces
    >>> roi_align(x, np.array([[0.0, 0.0, 0.0, 2.0, 2.0]]), 1, sampling_ratio=2).item()   # at r, c = 0.5, 1.5
    5.0
    """
    rois = as_rois("roi_align", input, boxes)
    return RoIAlignFunction.apply(input, rois, output_size=output_size, spatial_scale=spatial_scale,
                                  sampling_ratio=sampling_ratio, aligned=aligned)


class RoIPool(Module):
    """roi_pool as a layer: RoIPool(output_size, spatial_scale)(input, boxes)."""

    def __init__(self, output_size, spatial_scale):
        super().__init__()
        RoIPoolFunction(output_size, spatial_scale)  # the settings are checked now, not at the first call
        self.output_size, self.spatial_scale = output_size, spatial_scale

    def forward(self, input, rois):
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self):
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


class RoIAlign(Module):
    """roi_align as a layer: RoIAlign(output_size, spatial_scale, sampling_ratio, aligned=False)(input, boxes)."""

    def __init__(self, output_size, spatial_scale, sampling_ratio, aligned=False):
        super().__init__()
        RoIAlignFunction(output_size, spatial_scale, sampling_ratio, aligned)
        self.output_size, self.spatial_scale = output_size, spatial_scale
        self.sampling_ratio, self.aligned = sampling_ratio, aligned

    def forward(self, input, rois):
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self):
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
