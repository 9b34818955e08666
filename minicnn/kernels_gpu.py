"""CUDA kernels for the GPU, with the same Python signatures as kernels_cpu.

The CUDA C sources live in `kernels/*.cu` (shipped inside the wheel as `minicnn/kernels/`). Each file is compiled
once per process with cupy.RawModule (NVRTC) and cached; a compilation error names the file. Every kernel has a
float and a double entry point (`name_f32`, `name_f64`) and is launched with one thread per output element.
"""
import functools
from pathlib import Path

import cupy as cp
import numpy as np

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


def _launch(filename, name, dtype, total, *args):
    suffix = _SUFFIX.get(np.dtype(dtype))
    if suffix is None:
        raise ValueError(f"{name}: the GPU kernels take float32 or float64 arrays, got {np.dtype(dtype)}")
    fn = _module(filename).get_function(f"{name}_{suffix}")
    blocks = int(min(max((total + _THREADS - 1) // _THREADS, 1), 2**20))
    fn((blocks,), (_THREADS,), args)


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


# --- batch normalisation (CuPy expressions; x viewed as (N, C, L)) ---------------------------------------------

def batch_norm_stats(x):
    xd = x.astype(cp.float64)
    return xd.mean(axis=(0, 2)), xd.var(axis=(0, 2))


def batch_norm_apply(x, scale, shift):
    return x * scale[None, :, None] + shift[None, :, None]


def batch_norm_backward(g, x, mean, invstd, weight, training):
    xhat = (x - mean[None, :, None].astype(x.dtype)) * invstd[None, :, None].astype(x.dtype)
    dbias = g.sum(axis=(0, 2), dtype=cp.float64)
    dweight = (g * xhat).sum(axis=(0, 2), dtype=cp.float64)
    m = x.shape[0] * x.shape[2]
    scale = (weight * invstd).astype(x.dtype)[None, :, None]
    if not training:
        return g * scale, dweight, dbias
    return scale * (g - (dbias / m).astype(x.dtype)[None, :, None] - xhat * (dweight / m).astype(x.dtype)[None, :, None]), dweight, dbias
