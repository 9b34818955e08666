"""CUDA kernels for the GPU, with the same Python signatures as kernels_cpu.

The CUDA C sources live in `kernels/*.cu` (shipped inside the wheel as `minicnn/kernels/`). Each file is compiled
once per process with cupy.RawModule (NVRTC) and cached; a compilation error names the file. Every kernel has a
float and a double entry point (`name_f32`, `name_f64`) and is launched with one thread per output element.
"""
import functools
from pathlib import Path

import cupy as cp
import numpy as np

from .kernels_cpu.conv import shifted_backward

_THREADS = 256
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
    path = kernel_dir() / filename
    module = cp.RawModule(code=path.read_text(), options=("-std=c++17",))
    try:
        module.compile()
    except Exception as e:  # cupy.cuda.compiler.CompileException and friends
        raise RuntimeError(f"minicnn: compiling the CUDA kernels in {path} failed:\n{e}") from None
    return module


def _launch(filename, name, dtype, total, *args, blocks=None):
    """One thread per element of `total` (grid-stride), or exactly `blocks` blocks (the per-channel reductions)."""
    suffix = _SUFFIX.get(np.dtype(dtype))
    if suffix is None:
        raise ValueError(f"{name}: the GPU kernels take float32 or float64 arrays, got {np.dtype(dtype)}")
    fn = _module(filename).get_function(f"{name}_{suffix}")
    if blocks is None:
        blocks = min(max((total + _THREADS - 1) // _THREADS, 1), 2**20)
    fn((int(blocks),), (_THREADS,), args)


def _i(*values):
    return tuple(np.int32(v) for v in values)


def im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    cols = cp.empty((c * kh * kw, n * oh * ow), dtype=x.dtype)
    _launch("im2col.cu", "im2col", x.dtype, cols.size, x, cols, np.int64(n),
            *_i(c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow))
    return cols


def col2im(cols, n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    cols = cp.ascontiguousarray(cols)
    dx = cp.empty((n, c, h, w), dtype=cols.dtype)
    _launch("im2col.cu", "col2im", cols.dtype, dx.size, cols, dx, np.int64(n),
            *_i(c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow))
    return dx


def im2col_shifted(x, kh, kw, dh, dw, oh):
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    cols = cp.empty((c * kh * kw, n * oh * w), dtype=x.dtype)
    _launch("im2col.cu", "im2col_shifted", x.dtype, cols.size, x, cols, np.int64(n), *_i(c, h, w, kh, kw, dh, dw, oh))
    return cols


def col2im_shifted(cols, n, c, h, w, kh, kw, dh, dw, oh):
    cols = cp.ascontiguousarray(cols)
    dx = cp.empty((n, c, h, w), dtype=cols.dtype)
    _launch("im2col.cu", "col2im_shifted", cols.dtype, dx.size, cols, dx, np.int64(n),
            *_i(c, h, w, kh, kw, dh, dw, oh))
    return dx


def conv_direct(x, w, b, groups, dh, dw, oh, ow):
    x, w, b = cp.ascontiguousarray(x), cp.ascontiguousarray(w), cp.ascontiguousarray(b)
    n, c, h, wd = x.shape
    y = cp.empty((n, w.shape[0], oh, ow), dtype=x.dtype)
    _launch("conv_direct.cu", "conv_direct", x.dtype, y.size, x, w, b, y, np.int64(n),
            *_i(c, h, wd, w.shape[0], groups, w.shape[2], w.shape[3], dh, dw, oh), np.int32(ow))
    return y


def conv_direct_weight(x, g, groups, kh, kw, dh, dw, oh):
    x, g = cp.ascontiguousarray(x), cp.ascontiguousarray(g)
    n, c, h, wd = x.shape
    k = g.shape[1]
    dwt = cp.empty((k, c // groups, kh, kw), dtype=x.dtype)
    _launch("conv_direct.cu", "conv_direct_weight", x.dtype, 0, x, g, dwt, np.int64(n),
            *_i(c, h, wd, k, groups, kh, kw, dh, dw, oh), blocks=dwt.size)  # one block per weight
    return dwt


def conv_direct_input(g, w, groups, h, wd, dh, dw, oh):
    g, w = cp.ascontiguousarray(g), cp.ascontiguousarray(w)
    n, k = g.shape[:2]
    c = w.shape[1] * groups
    dx = cp.empty((n, c, h, wd), dtype=g.dtype)
    _launch("conv_direct.cu", "conv_direct_input", g.dtype, dx.size, g, w, dx, np.int64(n),
            *_i(c, h, wd, k, groups, w.shape[2], w.shape[3], dh, dw, oh))
    return dx


def conv_direct_backward(x, gy, w, groups, padding, dilation, need_x=True, need_w=True):
    return shifted_backward(conv_direct_input, conv_direct_weight, cp, x, gy, w, groups, padding, dilation, need_x,
                            need_w)


def max_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow):
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = cp.empty((n, c, oh, ow), dtype=x.dtype)
    argmax = cp.empty((n, c, oh, ow), dtype=cp.int32)
    _launch("pool.cu", "max_pool2d_forward", x.dtype, out.size, x, out, argmax, np.int64(n * c),
            *_i(h, w, kh, kw, sh, sw, ph, pw, oh, ow))
    return out, argmax


def max_pool2d_backward(g, argmax, h, w, kh, kw, sh, sw, ph, pw):
    g = cp.ascontiguousarray(g)
    n, c, oh, ow = g.shape
    dx = cp.empty((n, c, h, w), dtype=g.dtype)
    _launch("pool.cu", "max_pool2d_backward", g.dtype, dx.size, g, argmax, dx, np.int64(n * c),
            *_i(h, w, kh, kw, sh, sw, ph, pw, oh, ow))
    return dx


def avg_pool2d_forward(x, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad):
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = cp.empty((n, c, oh, ow), dtype=x.dtype)
    _launch("pool.cu", "avg_pool2d_forward", x.dtype, out.size, x, out, np.int64(n * c),
            *_i(h, w, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad))
    return out


def avg_pool2d_backward(g, h, w, kh, kw, sh, sw, ph, pw, count_include_pad):
    g = cp.ascontiguousarray(g)
    n, c, oh, ow = g.shape
    dx = cp.empty((n, c, h, w), dtype=g.dtype)
    _launch("pool.cu", "avg_pool2d_backward", g.dtype, dx.size, g, dx, np.int64(n * c),
            *_i(h, w, kh, kw, sh, sw, ph, pw, oh, ow, count_include_pad))
    return dx


def global_avg_pool2d_forward(x):
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = cp.empty((n, c, 1, 1), dtype=x.dtype)
    _launch("pool.cu", "global_avg_pool2d_forward", x.dtype, n * c, x, out, np.int64(n * c), np.int32(h * w))
    return out


def global_avg_pool2d_backward(g, h, w):
    g = cp.ascontiguousarray(g)
    n, c = g.shape[:2]
    dx = cp.empty((n, c, h, w), dtype=g.dtype)
    _launch("pool.cu", "global_avg_pool2d_backward", g.dtype, dx.size, g, dx, np.int64(n * c), np.int32(h * w))
    return dx


def global_max_pool2d_forward(x):
    x = cp.ascontiguousarray(x)
    n, c, h, w = x.shape
    out = cp.empty((n, c, 1, 1), dtype=x.dtype)
    argmax = cp.empty((n, c, 1, 1), dtype=cp.int32)
    _launch("pool.cu", "global_max_pool2d_forward", x.dtype, n * c, x, out, argmax, np.int64(n * c),
            np.int32(h * w))
    return out, argmax


def global_max_pool2d_backward(g, argmax, h, w):
    g = cp.ascontiguousarray(g)
    n, c = g.shape[:2]
    dx = cp.empty((n, c, h, w), dtype=g.dtype)
    _launch("pool.cu", "global_max_pool2d_backward", g.dtype, dx.size, g, argmax, dx, np.int64(n * c),
            np.int32(h * w))
    return dx


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


def batch_norm_backward(g, x, mean, invstd, weight, training):
    g, x = cp.ascontiguousarray(g), cp.ascontiguousarray(x)
    n, c, l = x.shape
    sum_g, sum_gx = cp.empty(c, cp.float64), cp.empty(c, cp.float64)
    _launch("norm.cu", "batch_norm_backward_reduce", x.dtype, 0, g, x, mean, invstd, sum_g, sum_gx, np.int64(n),
            np.int32(c), np.int64(l), blocks=c)
    dx = cp.empty_like(x)
    _launch("norm.cu", "batch_norm_backward_apply", x.dtype, x.size, g, x, dx, mean, invstd,
            cp.ascontiguousarray(weight, dtype=cp.float64), sum_g, sum_gx, np.int64(x.size), np.int32(c),
            np.int64(l), np.int64(n * l), np.int32(bool(training)))
    return dx, sum_gx, sum_g


def lrn_forward(x, size, alpha, beta, k):
    x = cp.ascontiguousarray(x)
    y, s = cp.empty_like(x), cp.empty_like(x)
    l = x.size // max(x.shape[0] * x.shape[1], 1)
    _launch("norm.cu", "lrn_forward", x.dtype, x.size, x, y, s, np.int64(x.size), np.int32(x.shape[1]),
            np.int64(l), np.int32(size), np.float64(alpha), np.float64(beta), np.float64(k))
    return y, s


def lrn_backward(g, x, s, size, alpha, beta):
    g = cp.ascontiguousarray(g)
    dx = cp.empty_like(x)
    l = x.size // max(x.shape[0] * x.shape[1], 1)
    _launch("norm.cu", "lrn_backward", x.dtype, x.size, g, x, s, dx, np.int64(x.size), np.int32(x.shape[1]),
            np.int64(l), np.int32(size), np.float64(alpha), np.float64(beta))
    return dx


# --- activations, dropout (activation.cu) and the softmax cross-entropy (loss.cu) --------------------------------

def leaky_relu_forward(x, slope):
    x = cp.ascontiguousarray(x)
    y = cp.empty_like(x)
    _launch("activation.cu", "leaky_relu_forward", x.dtype, x.size, x, y, np.int64(x.size), x.dtype.type(slope))
    return y


def leaky_relu_backward(g, x, slope):
    g, x = cp.ascontiguousarray(g), cp.ascontiguousarray(x)
    dx = cp.empty_like(x)
    _launch("activation.cu", "leaky_relu_backward", x.dtype, x.size, g, x, dx, np.int64(x.size),
            x.dtype.type(slope))
    return dx


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


def cross_entropy_backward(x, target, lse, g, eps):
    dx = cp.empty_like(x)
    n, c = x.shape
    _launch("loss.cu", "cross_entropy_backward", x.dtype, x.size, cp.ascontiguousarray(x),
            cp.ascontiguousarray(target, dtype=cp.int64), lse, cp.ascontiguousarray(g.reshape(1)), dx, np.int64(n),
            np.int32(c), np.float64(eps))
    return dx


def sgd_step(p, g, buf, lr, weight_decay, momentum, keep, nesterov, first):
    t = p.dtype.type
    _launch("optim.cu", "sgd_step", p.dtype, p.size, p, cp.ascontiguousarray(g), buf, np.int64(p.size), t(lr),
            t(weight_decay), t(momentum), t(keep), np.int32(nesterov), np.int32(first))
