"""CUDA kernels for the GPU, with the same Python signatures as kernels_cpu.

The CUDA C sources live in `kernels/*.cu` (shipped inside the wheel as `minicnn/kernels/`), sharing the header
`kernels/common.cuh` (the grid-stride loop, the entry-point macro, the block size). Each file is compiled once per
process with cupy.RawModule (NVRTC) and cached; a compilation error names the file. Every kernel has a float and a
double entry point (`name_f32`, `name_f64`) and is launched with one thread per output element.
"""
import functools
import hashlib
from pathlib import Path

import cupy as cp
import numpy as np

from .kernels_cpu.conv import shifted_backward
from .kernels_cpu.roi import rois_by_image
from .reference.roi import roi_align_sample_lists, roi_pool_bins, sample_reach

_THREADS = 256  # threads per block of every launch, and THREADS in the kernels (-DTHREADS), which size shared memory
_HEADER = "common.cuh"
_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}


def kernel_dir():
    """Where the .cu files are: inside the installed package, or the repository's kernels/ folder."""
    here = Path(__file__).resolve().parent
    for d in (here / "kernels", here.parent / "kernels"):
        if (d / "im2col.cu").exists():
            return d
    raise FileNotFoundError(f"minicnn: the CUDA sources (kernels/*.cu) are missing next to {here}")


@functools.lru_cache(maxsize=None)
def _module(filename):
    """One .cu file compiled with the header's folder on the include path and THREADS defined as _THREADS."""
    path = kernel_dir() / filename
    try:
        # CuPy's disk cache keys on the source and options, not on included files: the header's digest is an option
        digest = hashlib.sha256((path.parent / _HEADER).read_bytes()).hexdigest()[:16]
        options = ("-std=c++17", f"-I{path.parent}", f"-DTHREADS={_THREADS}", f"-DCOMMON_CUH_DIGEST={digest}")
        module = cp.RawModule(code=path.read_text(), options=options)
        module.compile()
    except Exception as e:  # cupy.cuda.compiler.CompileException and friends
        raise RuntimeError(f"minicnn: compiling the CUDA kernels in {path} failed:\n{e}") from None
    return module


def _launch(filename, name, dtype, total, *args, blocks=None):
    """One thread per element of `total` (grid-stride), or exactly `blocks` blocks (the per-channel reductions), of
    _THREADS threads each."""
    suffix = _SUFFIX.get(np.dtype(dtype))
    if suffix is None:
        raise ValueError(f"{name}: the GPU kernels take float32 or float64 arrays, got {np.dtype(dtype)}")
    fn = _module(filename).get_function(f"{name}_{suffix}")
    if blocks is None:
        blocks = min(max((total + _THREADS - 1) // _THREADS, 1), 2**20)
    fn((int(blocks),), (_THREADS,), args)


def _i(*values):
    return tuple(np.int32(v) for v in values)


def _conv_ints(geom):
    return _i(geom.C, geom.H, geom.W, geom.KH, geom.KW, geom.SH, geom.SW, geom.PH, geom.PW, geom.DH, geom.DW, geom.OH,
              geom.OW)


def im2col(x, geom):
    x = cp.ascontiguousarray(x)
    cols = cp.empty((geom.C * geom.KH * geom.KW, geom.N * geom.OH * geom.OW), dtype=x.dtype)
    _launch("im2col.cu", "im2col", x.dtype, cols.size, x, cols, np.int64(geom.N), *_conv_ints(geom))
    return cols


def col2im(cols, geom):
    cols = cp.ascontiguousarray(cols)
    grad_x = cp.empty((geom.N, geom.C, geom.H, geom.W), dtype=cols.dtype)
    _launch("im2col.cu", "col2im", cols.dtype, grad_x.size, cols, grad_x, np.int64(geom.N), *_conv_ints(geom))
    return grad_x


def _shifted_ints(geom):
    """The padded plane's size and what the shifted layout needs."""
    return _i(geom.C, geom.H + 2 * geom.PH, geom.W + 2 * geom.PW, geom.KH, geom.KW, geom.DH, geom.DW, geom.OH)


def im2col_shifted(x_padded, geom):
    x_padded = cp.ascontiguousarray(x_padded)
    cols = cp.empty((geom.C * geom.KH * geom.KW, geom.N * geom.OH * x_padded.shape[3]), dtype=x_padded.dtype)
    _launch("im2col.cu", "im2col_shifted", x_padded.dtype, cols.size, x_padded, cols, np.int64(geom.N),
            *_shifted_ints(geom))
    return cols


def col2im_shifted(cols, geom):
    cols = cp.ascontiguousarray(cols)
    grad_x = cp.empty((geom.N, geom.C, geom.H + 2 * geom.PH, geom.W + 2 * geom.PW), dtype=cols.dtype)
    _launch("im2col.cu", "col2im_shifted", cols.dtype, grad_x.size, cols, grad_x, np.int64(geom.N),
            *_shifted_ints(geom))
    return grad_x


def _direct_ints(geom):
    return _i(geom.C, geom.H + 2 * geom.PH, geom.W + 2 * geom.PW, geom.K, geom.G, geom.KH, geom.KW, geom.DH, geom.DW,
              geom.OH)


def conv_direct(x_padded, w, b, geom):
    x_padded, w, b = cp.ascontiguousarray(x_padded), cp.ascontiguousarray(w), cp.ascontiguousarray(b)
    y = cp.empty((geom.N, geom.K, geom.OH, geom.OW), dtype=x_padded.dtype)
    _launch("conv_direct.cu", "conv_direct", x_padded.dtype, y.size, x_padded, w, b, y, np.int64(geom.N),
            *_direct_ints(geom), np.int32(geom.OW))
    return y


def conv_direct_weight(x_padded, grad_y_shifted, geom):
    x_padded, grad_y_shifted = cp.ascontiguousarray(x_padded), cp.ascontiguousarray(grad_y_shifted)
    grad_w = cp.empty((geom.K, geom.C // geom.G, geom.KH, geom.KW), dtype=x_padded.dtype)
    _launch("conv_direct.cu", "conv_direct_weight", x_padded.dtype, 0, x_padded, grad_y_shifted, grad_w,
            np.int64(geom.N), *_direct_ints(geom), blocks=grad_w.size)  # one block per weight
    return grad_w


def conv_direct_input(grad_y_shifted, w, geom):
    grad_y_shifted, w = cp.ascontiguousarray(grad_y_shifted), cp.ascontiguousarray(w)
    grad_x = cp.empty((geom.N, geom.C, geom.H + 2 * geom.PH, geom.W + 2 * geom.PW), dtype=grad_y_shifted.dtype)
    _launch("conv_direct.cu", "conv_direct_input", grad_y_shifted.dtype, grad_x.size, grad_y_shifted, w, grad_x,
            np.int64(geom.N), *_direct_ints(geom))
    return grad_x


def conv_direct_backward(x_padded, grad_y, w, geom, need_x=True, need_w=True):
    return shifted_backward(conv_direct_input, conv_direct_weight, cp, x_padded, grad_y, w, geom, need_x, need_w)


def _pool_ints(geom):
    return _i(geom.H, geom.W, geom.KH, geom.KW, geom.SH, geom.SW, geom.PH, geom.PW, geom.OH, geom.OW)


def max_pool2d_forward(x, geom):
    x = cp.ascontiguousarray(x)
    out = cp.empty((geom.N, geom.C, geom.OH, geom.OW), dtype=x.dtype)
    argmax = cp.empty(out.shape, dtype=cp.int32)
    _launch("pool.cu", "max_pool2d_forward", x.dtype, out.size, x, out, argmax, np.int64(geom.N * geom.C),
            *_pool_ints(geom))
    return out, argmax


def max_pool2d_values(x, geom):
    """y alone: the forward kernel's maxima (its argmax costs little on a GPU)."""
    return max_pool2d_forward(x, geom)[0]


def max_pool2d_backward(grad_y, argmax, geom):
    grad_y = cp.ascontiguousarray(grad_y)
    grad_x = cp.empty((geom.N, geom.C, geom.H, geom.W), dtype=grad_y.dtype)
    _launch("pool.cu", "max_pool2d_backward", grad_y.dtype, grad_x.size, grad_y, argmax, grad_x,
            np.int64(geom.N * geom.C), *_pool_ints(geom))
    return grad_x


def avg_pool2d_forward(x, geom, count_include_pad):
    x = cp.ascontiguousarray(x)
    out = cp.empty((geom.N, geom.C, geom.OH, geom.OW), dtype=x.dtype)
    _launch("pool.cu", "avg_pool2d_forward", x.dtype, out.size, x, out, np.int64(geom.N * geom.C),
            *_pool_ints(geom), np.int32(count_include_pad))
    return out


def avg_pool2d_backward(grad_y, geom, count_include_pad):
    grad_y = cp.ascontiguousarray(grad_y)
    grad_x = cp.empty((geom.N, geom.C, geom.H, geom.W), dtype=grad_y.dtype)
    _launch("pool.cu", "avg_pool2d_backward", grad_y.dtype, grad_x.size, grad_y, grad_x, np.int64(geom.N * geom.C),
            *_pool_ints(geom), np.int32(count_include_pad))
    return grad_x


def global_avg_pool2d_forward(x):
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = cp.empty((n, c, 1, 1), dtype=x.dtype)
    _launch("pool.cu", "global_avg_pool2d_forward", x.dtype, n * c, x, out, np.int64(n * c), np.int32(h * w))
    return out


def global_avg_pool2d_backward(grad_y, h, w):
    grad_y = cp.ascontiguousarray(grad_y)
    n, c = grad_y.shape[:2]
    grad_x = cp.empty((n, c, h, w), dtype=grad_y.dtype)
    _launch("pool.cu", "global_avg_pool2d_backward", grad_y.dtype, grad_x.size, grad_y, grad_x, np.int64(n * c),
            np.int32(h * w))
    return grad_x


def global_max_pool2d_forward(x):
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = cp.empty((n, c, 1, 1), dtype=x.dtype)
    argmax = cp.empty((n, c, 1, 1), dtype=cp.int32)
    _launch("pool.cu", "global_max_pool2d_forward", x.dtype, n * c, x, out, argmax, np.int64(n * c),
            np.int32(h * w))
    return out, argmax


def global_max_pool2d_backward(grad_y, argmax, h, w):
    grad_y = cp.ascontiguousarray(grad_y)
    n, c = grad_y.shape[:2]
    grad_x = cp.empty((n, c, h, w), dtype=grad_y.dtype)
    _launch("pool.cu", "global_max_pool2d_backward", grad_y.dtype, grad_x.size, grad_y, argmax, grad_x,
            np.int64(n * c), np.int32(h * w))
    return grad_x


# --- batch normalisation, LRN (norm.cu) -----------------------------------------------------------------------

def batch_norm_stats(x, running_mean, running_var, momentum, update):
    """Per-channel mean and biased variance of x (N, C, L), float64; updates the running statistics in the same
    kernel when `update`."""
    x = cp.ascontiguousarray(x)
    n, c, l = x.shape
    mean, var = cp.empty(c, cp.float64), cp.empty(c, cp.float64)
    in_kernel = update and running_mean.dtype == x.dtype and running_var.dtype == x.dtype
    rm, rv = (running_mean, running_var) if in_kernel else (cp.empty(1, x.dtype), cp.empty(1, x.dtype))
    _launch("norm.cu", "batch_norm_stats", x.dtype, 0, x, mean, var, rm, rv, np.int64(n), np.int32(c), np.int64(l),
            np.float64(momentum), np.int32(in_kernel), blocks=c)  # one block per channel
    if update and not in_kernel:  # running statistics of another dtype than the input
        m = n * l
        running_mean[...] = ((1 - momentum) * running_mean + momentum * mean).astype(running_mean.dtype)
        running_var[...] = ((1 - momentum) * running_var + momentum * var * m / (m - 1)).astype(running_var.dtype)
    return mean, var


def batch_norm_apply(x, scale, shift):
    x = cp.ascontiguousarray(x)
    y = cp.empty_like(x)
    _launch("norm.cu", "batch_norm_apply", x.dtype, x.size, x, y, cp.ascontiguousarray(scale),
            cp.ascontiguousarray(shift), np.int64(x.size), np.int32(x.shape[1]), np.int64(x.shape[2]))
    return y


def batch_norm_backward(grad_y, x, mean, invstd, weight, training):
    grad_y, x = cp.ascontiguousarray(grad_y), cp.ascontiguousarray(x)
    n, c, l = x.shape
    grad_bias, grad_weight = cp.empty(c, cp.float64), cp.empty(c, cp.float64)  # sum grad_y, sum grad_y xhat
    _launch("norm.cu", "batch_norm_backward_reduce", x.dtype, 0, grad_y, x, mean, invstd, grad_bias, grad_weight,
            np.int64(n), np.int32(c), np.int64(l), blocks=c)
    grad_x = cp.empty_like(x)
    _launch("norm.cu", "batch_norm_backward_apply", x.dtype, x.size, grad_y, x, grad_x, mean, invstd,
            cp.ascontiguousarray(weight, dtype=cp.float64), grad_bias, grad_weight, np.int64(x.size), np.int32(c),
            np.int64(l), np.int64(n * l), np.int32(bool(training)))
    return grad_x, grad_weight, grad_bias


def lrn_forward(x, size, alpha, beta, k):
    x = cp.ascontiguousarray(x)
    y, s = cp.empty_like(x), cp.empty_like(x)
    l = x.size // max(x.shape[0] * x.shape[1], 1)
    _launch("norm.cu", "lrn_forward", x.dtype, x.size, x, y, s, np.int64(x.size), np.int32(x.shape[1]),
            np.int64(l), np.int32(size), np.float64(alpha), np.float64(beta), np.float64(k))
    return y, s


def lrn_backward(grad_y, x, s, size, alpha, beta):
    grad_y = cp.ascontiguousarray(grad_y)
    grad_x = cp.empty_like(x)
    l = x.size // max(x.shape[0] * x.shape[1], 1)
    _launch("norm.cu", "lrn_backward", x.dtype, x.size, grad_y, x, s, grad_x, np.int64(x.size), np.int32(x.shape[1]),
            np.int64(l), np.int32(size), np.float64(alpha), np.float64(beta))
    return grad_x


# --- activations, dropout (activation.cu) and the softmax cross-entropy (loss.cu) --------------------------------

def leaky_relu_forward(x, slope):
    x = cp.ascontiguousarray(x)
    y = cp.empty_like(x)
    _launch("activation.cu", "leaky_relu_forward", x.dtype, x.size, x, y, np.int64(x.size), x.dtype.type(slope))
    return y


def leaky_relu_backward(grad_y, x, slope):
    grad_y, x = cp.ascontiguousarray(grad_y), cp.ascontiguousarray(x)
    grad_x = cp.empty_like(x)
    _launch("activation.cu", "leaky_relu_backward", x.dtype, x.size, grad_y, x, grad_x, np.int64(x.size),
            x.dtype.type(slope))
    return grad_x


def dropout_forward(x, p, seed):
    """y = x * mask with mask = 1/(1-p) where a uniform draw of (seed, index) is >= p, else 0."""
    x = cp.ascontiguousarray(x)
    y, mask = cp.empty_like(x), cp.empty_like(x)
    scale = 0.0 if p >= 1 else 1.0 / (1.0 - p)
    _launch("activation.cu", "dropout_forward", x.dtype, x.size, x, y, mask, np.int64(x.size), np.float64(p),
            x.dtype.type(scale), np.uint64(seed))
    return y, mask


def cross_entropy_forward(x, target, eps):
    """Per-row losses and log-sum-exps of (N, C) logits; a label outside [0, C) gives a NaN loss."""
    x = cp.ascontiguousarray(x)
    target = cp.ascontiguousarray(target, dtype=cp.int64)
    n, c = x.shape
    loss, lse = cp.empty(n, x.dtype), cp.empty(n, x.dtype)
    _launch("loss.cu", "cross_entropy_forward", x.dtype, n, x, target, loss, lse, np.int64(n), np.int32(c),
            np.float64(eps))
    return loss, lse


def cross_entropy_backward(x, target, lse, grad_loss, eps):
    grad_x = cp.empty_like(x)
    n, c = x.shape
    _launch("loss.cu", "cross_entropy_backward", x.dtype, x.size, cp.ascontiguousarray(x),
            cp.ascontiguousarray(target, dtype=cp.int64), lse, cp.ascontiguousarray(grad_loss.reshape(1)), grad_x,
            np.int64(n), np.int32(c), np.float64(eps))
    return grad_x


def sgd_step(p, grad, buf, lr, weight_decay, momentum, keep, nesterov, first):
    t = p.dtype.type
    _launch("optim.cu", "sgd_step", p.dtype, p.size, p, cp.ascontiguousarray(grad), buf, np.int64(p.size), t(lr),
            t(weight_decay), t(momentum), t(keep), np.int32(nesterov), np.int32(first))


# --- non-maximum suppression (boxes.cu) ----------------------------------------------------------------------------

def nms_mask(boxes, labels, iou_threshold):
    """The suppression bitmask of boxes sorted by decreasing score: one thread per 64-bit word."""
    boxes = cp.ascontiguousarray(boxes)
    n = len(boxes)
    mask = cp.empty((n, (n + 63) // 64), dtype=cp.uint64)
    _launch("boxes.cu", "nms_mask", boxes.dtype, mask.size, boxes, cp.ascontiguousarray(labels, dtype=cp.int64), mask,
            np.int64(n), np.int64(mask.shape[1]), np.float64(iou_threshold))
    return mask


def nms_keep(boxes, labels, iou_threshold):
    """Greedy NMS on the device: the bitmask, then the scan in one block (no copy of the mask to the host)."""
    mask = nms_mask(boxes, labels, iou_threshold)
    n, words = mask.shape
    kept = cp.empty(n, dtype=cp.int32)
    _launch("boxes.cu", "nms_scan", boxes.dtype, 0, mask, cp.zeros(words, dtype=cp.uint64), kept, np.int64(n),
            np.int64(words), blocks=1)
    return cp.flatnonzero(kept)


# --- RoI pooling and RoI align (roi.cu): the bins and the sample tables come from reference/roi.py -----------------

def roi_pool_forward(x, rois, spatial_scale, output_size):
    x = cp.ascontiguousarray(x)
    _, c, h, w = x.shape
    bins = roi_pool_bins(rois, spatial_scale, output_size, h, w)
    out = cp.empty((len(rois), c) + tuple(output_size), dtype=x.dtype)
    argmax = cp.empty(out.shape, dtype=cp.int32)
    _launch("roi.cu", "roi_pool_forward", x.dtype, out.size, x, rois[:, 0].astype(cp.int64), *bins, out, argmax,
            np.int64(len(rois) * c), *_i(c, h, w, *output_size))
    return out, argmax


def roi_pool_backward(grad_y, rois, argmax, x_shape, spatial_scale):
    """A gather: each pixel adds the outputs of the bins that cover it and chose it."""
    grad_y = cp.ascontiguousarray(grad_y)
    n, c, h, w = x_shape
    bins = roi_pool_bins(rois, spatial_scale, grad_y.shape[2:], h, w)
    grad_x = cp.empty(x_shape, dtype=grad_y.dtype)
    _launch("roi.cu", "roi_pool_backward", grad_y.dtype, grad_x.size, grad_y, argmax, *rois_by_image(rois, n), *bins,
            grad_x, np.int64(n * c), *_i(c, h, w, *grad_y.shape[2:]))
    return grad_x


def _align_tables(rows, cols, count):
    return (*rows, *cols, count)


def roi_align_forward(x, rois, spatial_scale, output_size, sampling_ratio, aligned):
    x = cp.ascontiguousarray(x)
    _, c, h, w = x.shape
    rows, cols, count = roi_align_sample_lists(rois, spatial_scale, output_size, sampling_ratio, aligned, h, w)
    out = cp.empty((len(rois), c) + tuple(output_size), dtype=x.dtype)
    _launch("roi.cu", "roi_align_forward", x.dtype, out.size, x, rois[:, 0].astype(cp.int64),
            *_align_tables(rows, cols, count), out, np.int64(len(rois) * c), np.int64(rows.index.shape[1]),
            np.int64(cols.index.shape[1]), *_i(c, h, w, *output_size))
    return out


def roi_align_backward(grad_y, rois, x_shape, spatial_scale, sampling_ratio, aligned):
    """A gather: each pixel adds, over the RoIs of its image that reach it, the samples that read it."""
    grad_y = cp.ascontiguousarray(grad_y)
    n, c, h, w = x_shape
    rows, cols, count = roi_align_sample_lists(rois, spatial_scale, grad_y.shape[2:], sampling_ratio, aligned, h, w)
    if rows.index.shape[1] * cols.index.shape[1] == 0:  # no RoIs, or no samples in any
        return cp.zeros(x_shape, dtype=grad_y.dtype)
    reach = cp.concatenate(sample_reach(rows, h) + sample_reach(cols, w))
    grad_x = cp.empty(x_shape, dtype=grad_y.dtype)
    _launch("roi.cu", "roi_align_backward", grad_y.dtype, grad_x.size, grad_y, *rois_by_image(rois, n),
            *_align_tables(rows, cols, count), reach, grad_x, np.int64(n * c), np.int64(len(rois)),
            np.int64(rows.index.shape[1]), np.int64(cols.index.shape[1]), *_i(c, h, w, *grad_y.shape[2:]))
    return grad_x
