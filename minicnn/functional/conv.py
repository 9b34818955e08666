"""2-D convolution (a cross-correlation, as in every deep-learning library), with groups and dilation.

    y[n, k, i, j] = b[k] + sum over c, r, s of w[k, c, r, s] x[n, g(k) C/G + c, i SH - PH + r DH, j SW - PW + s DW]

for x (N, C, H, W), w (K, C/G, KH, KW), y (N, K, OH, OW) (notation: minicnn/geometry.py; LeCun et al. 1998).
With G groups the channels split into G independent convolutions (AlexNet's two towers; depthwise convolution
when G = C, Chollet 2017). Saved for backward: x and w.

The definition, and the way to read it, is reference/conv.py: im2col and one matrix product per group. The fast
implementations compute the same numbers (the tests hold them to the reference); `conv_path` chooses one:

- pointwise: a 1x1 kernel without padding needs no im2col matrix: each image (every stride-th pixel of it) is
  already the matrix, (C, OH OW), so y[n] = W x[n] is one product per image, read and written in place (chosen on
  large maps at stride 1; the path handles any stride);
- im2col: the reference's method on Numba or CUDA kernels, the batch in chunks whose im2col matrix stays under
  CHUNK_BYTES, so memory stays bounded however large the batch;
- direct: at stride 1, kernels that sum each output's inputs in place, without an im2col matrix;
- tiled (CPU): direct, at any stride, with a tile of outputs held in SIMD registers (kernels_cpu/conv_tiled.py).

Why each is fast, and the measurements behind the thresholds, are in benchmarks/PERFORMANCE.md.
"""
import numpy as np

from .. import geometry, reference
from ..autograd import Function
from ..backend import device_of, kernels_mode, xp_of
from ._utils import check_4d, is_int, kernels_for, pair

CHUNK_BYTES = {"cpu": 8 * 2**20, "cuda": 256 * 2**20}  # the im2col matrix of one chunk of the batch, at most
DIRECT_TAPS = 32        # at stride 1, direct kernels where each output sums at most this many inputs (C/G*KH*KW)
TILED_POSITIONS = 64    # on the CPU, register tiles (any stride) on maps of at least this many outputs (OH*OW),
SMALL_MAP_POSITIONS = 9  # ... and on maps of at least this many where a window has at most SMALL_MAP_TAPS inputs
SMALL_MAP_TAPS = 1152    # (C/G*KH*KW) and a group at most SMALL_MAP_OUTPUTS outputs
SMALL_MAP_OUTPUTS = 64
PLANE_TAPS = 16         # on the CPU, register tiles need more inputs per output than this ...
PLANE_OUTPUTS = 4       # ... and more outputs per group than this (else the direct kernels go plane by plane)
POINTWISE_POSITIONS = 196  # 1x1 kernels at stride 1 without padding: one product per image on maps this large


def conv_path(geom, device="cpu"):
    """Which implementation computes a convolution of geometry `geom` on a device ('cpu' or 'cuda'): 'reference',
    'empty' (no image, channel or filter: y is the bias), 'pointwise', 'im2col', 'direct' or 'tiled'."""
    if kernels_mode() == "reference":
        return "reference"
    if 0 in (geom.N, geom.C, geom.H, geom.W, geom.K):
        return "empty"
    cpu = device == "cpu"
    if (geom.KH, geom.KW) == (1, 1):  # im2col copies each pixel once, then one product for the whole batch
        large = geom.OH * geom.OW >= POINTWISE_POSITIONS
        return "pointwise" if large and (geom.PH, geom.PW, geom.SH, geom.SW) == (0, 0, 1, 1) else "im2col"
    positions, outputs = geom.OH * geom.OW, geom.K // geom.G
    stride_1 = (geom.SH, geom.SW) == (1, 1)
    few_taps = stride_1 and geom.taps <= DIRECT_TAPS
    large = cpu and (positions >= TILED_POSITIONS or (positions >= SMALL_MAP_POSITIONS and geom.taps <= SMALL_MAP_TAPS
                                                      and outputs <= SMALL_MAP_OUTPUTS))
    if cpu and geom.taps > PLANE_TAPS and outputs > PLANE_OUTPUTS and (large or few_taps):
        return "tiled"
    return "direct" if few_taps or (stride_1 and large) else "im2col"


class Conv2d(Function):
    def __init__(self, stride, padding, dilation, groups):
        self.stride = pair("conv2d", "stride", stride, 1)
        self.padding = pair("conv2d", "padding", padding, 0)
        self.dilation = pair("conv2d", "dilation", dilation, 1)
        if not is_int(groups) or groups < 1:
            raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
        self.groups = int(groups)

    def _geometry(self, x, w, b):
        check_4d("conv2d", x)
        if w.ndim != 4 or 0 in w.shape[2:]:
            raise ValueError(f"conv2d: expected a 4-D weight (K, C/groups, KH, KW) with KH, KW >= 1, got shape "
                             f"{tuple(w.shape)}")
        g = self.groups
        if x.shape[1] % g or w.shape[0] % g:
            raise ValueError(f"conv2d: groups={g} must divide the input channels ({x.shape[1]}) and the output "
                             f"channels ({w.shape[0]})")
        if w.shape[1] * g != x.shape[1]:
            raise ValueError(f"conv2d: weight {tuple(w.shape)} with groups={g} expects {w.shape[1] * g} input "
                             f"channels, got input {tuple(x.shape)}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"conv2d: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
        if x.dtype not in (np.float32, np.float64):
            raise ValueError(f"conv2d: expected a float32 or float64 input, got {x.dtype}")
        if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
            raise ValueError(f"conv2d: input, weight and bias dtypes differ ({x.dtype}, {w.dtype} and "
                             f"{None if b is None else b.dtype})")
        try:
            return geometry.Conv2d.of(x.shape, w.shape, self.stride, self.padding, self.dilation, g)
        except ValueError:
            raise ValueError(f"conv2d: kernel {tuple(w.shape[2:])} (dilation {self.dilation}) is larger than the "
                             f"padded input {tuple(x.shape[2:])} + 2*{self.padding}") from None

    def forward(self, x, w, b=None):
        self.geom = geom = self._geometry(x, w, b)
        self.x, self.w, self.has_bias = x, w, b is not None
        self.path = conv_path(geom, device_of(x).type)
        if self.path == "reference":
            return reference.conv2d_forward(x, w, b, geom)
        if self.path == "empty":
            y = xp_of(x).zeros((geom.N, geom.K, geom.OH, geom.OW), dtype=x.dtype)
            return y if b is None else y + b.reshape(-1, 1, 1)
        if self.path == "pointwise":
            return _pointwise(x, w, geom, b)
        if self.path == "im2col":
            return _correlate(x, w, geom, b)
        b = xp_of(x).zeros(geom.K, dtype=x.dtype) if b is None else b  # the direct kernels start from the bias
        kern = kernels_for(x)
        direct = kern.conv_tiled if self.path == "tiled" else kern.conv_direct
        return direct(_pad(x, geom), w, b, geom)

    def backward(self, grad_y):
        x, w, geom = self.x, self.w, self.geom
        need_x, need_w = self.needs_input_grad[:2]
        if self.path == "reference":
            grads = reference.conv2d_backward(grad_y, x, w, geom, need_x, need_w)
        elif self.path == "empty":
            grads = (xp_of(x).zeros_like(x), xp_of(x).zeros_like(w))
        elif self.path == "pointwise":
            grads = _pointwise_backward(grad_y, x, w, geom, need_x, need_w)
        elif self.path == "im2col":
            grads = _im2col_backward(grad_y, x, w, geom, need_x, need_w)
        else:
            kern = kernels_for(x)
            direct = kern.conv_tiled_backward if self.path == "tiled" else kern.conv_direct_backward
            grads = direct(_pad(x, geom), grad_y, w, geom, need_x, need_w)
        if self.has_bias:
            grads += (grad_y.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None,)
        return grads


# --- the pointwise path (1x1 kernels without padding) -------------------------------------------------------------

def _pointwise_input(x, geom):
    """The pixels a 1x1 kernel reads, as a batch of per-group matrices (N, G, C/G, OH OW): x itself at stride 1."""
    if (geom.SH, geom.SW) != (1, 1):
        x = xp_of(x).ascontiguousarray(x[:, :, ::geom.SH, ::geom.SW])
    return x.reshape(geom.N, geom.G, geom.C // geom.G, geom.OH * geom.OW)


def _pointwise(x, w, geom, b=None):
    """y[n, g] = W[g] x[n, g] (+ b): one product per image and group, (K/G, C/G) times (C/G, OH OW)."""
    g = geom.G
    y = xp_of(x).matmul(w.reshape(g, geom.K // g, geom.C // g), _pointwise_input(x, geom))
    y = y.reshape(geom.N, geom.K, geom.OH, geom.OW)
    if b is not None:
        y += b.reshape(-1, 1, 1)
    return y


def _pointwise_backward(grad_y, x, w, geom, need_x, need_w):
    """grad_x[n, g] = W[g]^T grad_y[n, g] (scattered back to every stride-th pixel); grad_w[g] = sum over n of
    grad_y[n, g] x[n, g]^T, as one product with the batch laid along the columns."""
    xp, g, positions = xp_of(x), geom.G, geom.OH * geom.OW
    W = w.reshape(g, geom.K // g, geom.C // g)
    grad_Y = grad_y.reshape(geom.N, g, geom.K // g, positions)
    grad_x = grad_w = None
    if need_x:
        picked = xp.matmul(W.transpose(0, 2, 1), grad_Y).reshape(geom.N, geom.C, geom.OH, geom.OW)
        if (geom.SH, geom.SW) == (1, 1):
            grad_x = picked
        else:
            grad_x = xp.zeros_like(x)
            grad_x[:, :, ::geom.SH, ::geom.SW] = picked
    if need_w:
        def by_group(a):  # (N, G, rows, positions) -> (G, rows, N positions)
            return xp.ascontiguousarray(a.transpose(1, 2, 0, 3)).reshape(g, a.shape[2], -1)
        X = by_group(_pointwise_input(x, geom))
        grad_w = (by_group(grad_Y) @ X.transpose(0, 2, 1)).reshape(w.shape)
    return grad_x, grad_w


# --- the im2col path ----------------------------------------------------------------------------------------------
# Two choices inside it, each measured (benchmarks/PERFORMANCE.md): the shifted layout at stride 1 where the
# padded width is close to the output width, and grad_x as a convolution of grad_y where that builds no more rows.

SHIFTED_WIDTH = 1.5     # at stride 1, the shifted im2col layout where Wp < SHIFTED_WIDTH * OW
FLIPPED_WEIGHT = 4      # grad_x as a convolution of grad_y only where w has at most this many times grad_y's size
TRANSPOSED_GRAD_W = 1 << 16  # grad_w computed transposed (cols @ grad_Y^T) when it has at most this many entries


def _grad_x_by_convolution(w, grad_y, geom):
    """At stride 1 grad_x is the convolution of grad_y, padded by DH (KH - 1) - PH, with the flipped, transposed
    weights: one im2col and one product instead of a product and col2im, where that builds no more rows (K <= C)
    and the flipped copy of w is small next to grad_y."""
    return ((geom.SH, geom.SW) == (1, 1) and geom.K <= geom.C and w.size <= FLIPPED_WEIGHT * grad_y.size
            and geom.PH <= geom.DH * (geom.KH - 1) and geom.PW <= geom.DW * (geom.KW - 1))


def _im2col_backward(grad_y, x, w, geom, need_x, need_w):
    xp, g = xp_of(x), geom.G
    W = w.reshape(g, geom.K // g, geom.taps)
    grad_x = grad_w = None
    if need_x and _grad_x_by_convolution(w, grad_y, geom):
        flipped = w.reshape(g, geom.K // g, geom.C // g, geom.KH, geom.KW).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
        flipped = xp.ascontiguousarray(flipped).reshape(geom.C, geom.K // g, geom.KH, geom.KW)
        pad = (geom.DH * (geom.KH - 1) - geom.PH, geom.DW * (geom.KW - 1) - geom.PW)
        grad_x = _correlate(grad_y, flipped, geometry.Conv2d.of(grad_y.shape, flipped.shape, (1, 1), pad,
                                                                (geom.DH, geom.DW), g))
    by_col2im = need_x and grad_x is None
    if by_col2im:
        grad_x = xp.empty_like(x)
    transposed = W.shape[1] * W.shape[2] <= TRANSPOSED_GRAD_W
    layout = _Layout(x, geom)
    for n0, n1 in layout.chunks() if need_w or by_col2im else ():
        chunk = geom.batch(n1 - n0)
        grad_Y = layout.output_columns(grad_y[n0:n1]).reshape(g, geom.K // g, -1)
        if need_w:
            cols = layout.im2col(x[n0:n1], chunk).reshape(g, geom.taps, -1)
            part = cols @ grad_Y.transpose(0, 2, 1) if transposed else grad_Y @ cols.transpose(0, 2, 1)
            grad_w = part if grad_w is None else grad_w + part
        if by_col2im:
            grad_cols = (W.transpose(0, 2, 1) @ grad_Y).reshape(geom.C * geom.KH * geom.KW, -1)
            grad_x[n0:n1] = layout.col2im(grad_cols, chunk)
    if need_w:
        grad_w = (xp.ascontiguousarray(grad_w.transpose(0, 2, 1)) if transposed else grad_w).reshape(w.shape)
    return grad_x, grad_w


class _Layout:
    """How the batch becomes im2col matrices, chunk by chunk, and how matrix columns map to output positions.

    In the shifted layout (stride 1) a chunk is zero-padded once and every output row is computed at the padded
    width Wp instead of OW (the Wp - OW extra columns per row are junk, dropped from the output, and zero in the
    output gradient): row (c, r, s) of the matrix is then one contiguous span of each padded image. Otherwise the
    general im2col, with exactly OW columns per output row. A 1x1 kernel at stride 1 without padding needs neither:
    its matrix is the chunk itself with channels first (a transposed copy)."""

    def __init__(self, x, geom):
        self.xp, self.kern, self.geom = xp_of(x), kernels_for(x), geom
        wp = geom.W + 2 * geom.PW
        self.shifted = (geom.SH, geom.SW) == (1, 1) and wp < SHIFTED_WIDTH * geom.OW
        self.width = wp if self.shifted else geom.OW  # matrix columns per output row
        self.one_to_one = (geom.KH, geom.KW, geom.PH, geom.PW, geom.SH, geom.SW) == (1, 1, 0, 0, 1, 1)
        self.chunk_bytes = CHUNK_BYTES[device_of(x).type]
        self.itemsize = x.itemsize

    def chunks(self):
        """Batch ranges of (nearly) equal size whose im2col matrix stays under CHUNK_BYTES."""
        g = self.geom
        per_image = g.C * g.KH * g.KW * g.OH * self.width * self.itemsize
        most = max(1, self.chunk_bytes // max(per_image, 1))
        count = -(-g.N // most)
        bounds = [g.N * i // count for i in range(count + 1)] if count else [0]
        return list(zip(bounds[:-1], bounds[1:]))

    def im2col(self, x, chunk):
        if self.one_to_one:  # a 1x1 kernel at stride 1 reads each pixel once: the matrix is x, channels first
            return self.xp.ascontiguousarray(x.transpose(1, 0, 2, 3)).reshape(x.shape[1], -1)
        return self.kern.im2col_shifted(_pad(x, chunk), chunk) if self.shifted else self.kern.im2col(x, chunk)

    def output(self, Y, n):
        """The product (K, n*OH*width) as the output chunk (n, K, OH, OW)."""
        return Y.reshape(Y.shape[0], n, self.geom.OH, self.width)[..., :self.geom.OW].transpose(1, 0, 2, 3)

    def output_columns(self, grad_y):
        """The output gradient chunk (n, K, OH, OW) as a (K, n*OH*width) matrix, zero in the junk columns."""
        n, k, oh, ow = grad_y.shape
        if not self.shifted:
            return grad_y.transpose(1, 0, 2, 3).reshape(k, -1)
        grad_Y = self.xp.zeros((k, n, oh, self.width), dtype=grad_y.dtype)
        grad_Y[..., :ow] = grad_y.transpose(1, 0, 2, 3)
        return grad_Y.reshape(k, -1)

    def col2im(self, grad_cols, chunk):
        """The input gradient chunk (n, C, H, W) from the column gradient."""
        g = chunk
        if self.one_to_one:
            return grad_cols.reshape(g.C, g.N, g.H, g.W).transpose(1, 0, 2, 3)
        if not self.shifted:
            return self.kern.col2im(grad_cols, chunk)
        return self.kern.col2im_shifted(grad_cols, chunk)[:, :, g.PH:g.PH + g.H, g.PW:g.PW + g.W]


def _pad(x, geom):
    """x zero-padded by PH rows and PW columns on each side (x itself without padding)."""
    ph, pw = geom.PH, geom.PW
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    out = xp_of(x).zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _correlate(x, w, geom, b=None):
    """y = x (*) w (+ b), chunk by chunk: im2col, then one product per group; the bias is added as each chunk's
    product is copied into place."""
    g, k = geom.G, geom.K
    W = w.reshape(g, k // g, geom.taps)
    layout = _Layout(x, geom)
    y = layout.xp.empty((geom.N, k, geom.OH, geom.OW), dtype=x.dtype)
    for n0, n1 in layout.chunks():
        cols = layout.im2col(x[n0:n1], geom.batch(n1 - n0))
        out = layout.output((W @ cols.reshape(g, geom.taps, -1)).reshape(k, -1), n1 - n0)
        if b is None:
            y[n0:n1] = out
        else:
            layout.xp.add(out, b.reshape(-1, 1, 1), out=y[n0:n1])
    return y


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with w (K, C/groups, KH, KW); sizes as ints or (h, w) pairs."""
    args = (x, w) if b is None else (x, w, b)
    return Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=groups)
