"""2-D convolution (really cross-correlation, as in every deep-learning library) by im2col + one matrix product.

y[n, k, i, j] = b[k] + sum_{c, r, s} w[k, c, r, s] x[n, g*C/G + c, i*SH - PH + r*DH, j*SW - PW + s*DW]
(LeCun et al. 1998; im2col as in Chellapilla et al. 2006). With groups G the channels split into G independent
convolutions (AlexNet's two towers; depthwise convolution when G = C, Chollet 2017).

Forward:  cols = im2col(x) of shape (C*KH*KW, N*OH*OW);  Y = W (K, C/G*KH*KW) @ cols, per group.
Backward: dW = dY @ cols^T;  dcols = W^T @ dY;  dx = col2im(dcols);  db = sum of dY over n, i, j. At stride 1
with K <= C (and a weight no more than 4x the size of dY), dx is instead dY (*) flip(W)^T, a convolution with
padding dilation*(KH-1) - padding.
The batch is processed in chunks so the im2col buffer stays under CHUNK_BYTES: on the CPU a cache-sized chunk
(measured fastest, benchmarks/RESULTS.md), on the GPU a large one (fewer kernel launches), bounded either way.
Where each output sums at most DIRECT_TAPS inputs (LeNet's first layer: 25; a depthwise 3x3: 9) at stride 1, the
convolution runs on direct kernels instead (conv_direct*, no im2col matrix): a product with so short an inner
dimension runs far below BLAS speed, and im2col would copy every pixel KH*KW times (2x faster on both). On the
CPU the direct kernels also take stride-1 layers with more inputs per output on maps of TILED_POSITIONS outputs
or more (LeNet's conv2, VGG's and ResNet's 3x3 layers down to 8x8): they keep a tile of outputs in vector
registers (kernels_cpu/conv_tiled.py), 1.3-2x faster than im2col + OpenBLAS there (benchmarks/RESULTS.md).
Backward builds each chunk's im2col matrix again rather than keeping it from the forward pass: that costs 2-3 %
of a ResNet-18 step and saves about 40 MB of its peak memory (the matrices are 9x the size of the input).
"""
import numpy as np

from ..autograd import Function
from ..backend import device_of, xp_of
from ._utils import check_4d, is_int, kernels_for, pair

CHUNK_BYTES = {"cpu": 8 * 2**20, "cuda": 256 * 2**20}
DIRECT_TAPS = 32  # at most this many inputs per output (C/G*KH*KW), at stride 1: the direct kernels
TILED_POSITIONS = 64  # on the CPU, at stride 1, maps of at least this many outputs (OH*OW): the direct kernels


def conv_output_size(n, kernel, stride=1, padding=0, dilation=1, strict=False):
    """floor((n + 2 padding - dilation (kernel - 1) - 1) / stride) + 1, i.e. (N - F) / S + 1 for the lecture's
    unpadded case. With strict=True a filter that does not tile the input exactly is an error (7x7 input, 3x3
    filter, stride 3 gives 2.33)."""
    span = dilation * (kernel - 1) + 1
    if n + 2 * padding < span:
        raise ValueError(f"conv_output_size: the kernel (extent {span}) is larger than the padded input "
                         f"({n} + 2*{padding})")
    if strict and (n + 2 * padding - span) % stride:
        raise ValueError(f"conv_output_size: ({n} + 2*{padding} - {span}) / {stride} + 1 = "
                         f"{(n + 2 * padding - span) / stride + 1:.2f} is not an integer: the filter does not tile "
                         f"the input at stride {stride}")
    return (n + 2 * padding - span) // stride + 1


class Conv2d(Function):
    def __init__(self, stride, padding, dilation, groups):
        self.stride = pair("conv2d", "stride", stride, 1)
        self.padding = pair("conv2d", "padding", padding, 0)
        self.dilation = pair("conv2d", "dilation", dilation, 1)
        if not is_int(groups) or groups < 1:
            raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
        self.groups = groups

    def _check(self, x, w, b):
        check_4d("conv2d", x)
        if w.ndim != 4:
            raise ValueError(f"conv2d: expected a 4-D weight (K, C/groups, KH, KW), got shape {tuple(w.shape)}")
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
            return tuple(conv_output_size(x.shape[2 + a], w.shape[2 + a], self.stride[a], self.padding[a],
                                          self.dilation[a]) for a in (0, 1))
        except ValueError:
            raise ValueError(f"conv2d: kernel {tuple(w.shape[2:])} (dilation {self.dilation}) is larger than the "
                             f"padded input {tuple(x.shape[2:])} + 2*{self.padding}") from None

    def forward(self, x, w, b=None):
        self.out_hw = self._check(x, w, b)
        self.x, self.w, self.has_bias = x, w, b is not None
        self.empty = x.size == 0 or w.size == 0  # every sum is empty: y is the bias, and no kernel runs
        if self.empty:
            y = xp_of(x).zeros((x.shape[0], w.shape[0], *self.out_hw), dtype=x.dtype)
            return y if b is None else y + b.reshape(-1, 1, 1)
        self.direct = self.stride == (1, 1) and (
            w.shape[1] * w.shape[2] * w.shape[3] <= DIRECT_TAPS
            or (device_of(x).type == "cpu" and self.out_hw[0] * self.out_hw[1] >= TILED_POSITIONS))
        if self.direct:
            y = self._direct_forward(x, w, b)
        else:
            y = _correlate(x, w, self.stride, self.padding, self.dilation, self.groups, self.out_hw, b)
        return y

    def _dx_by_convolution(self, c, k, gy):
        """At stride 1, dx is the convolution of dy with the flipped, transposed weights: one im2col of dy and one
        product instead of a product and col2im, faster when it builds no more rows (K <= C) and the flipped copy
        of the weights it needs is small next to dy (at most 4x: on ResNet's 2x2 maps with 512 channels, copying
        the 9 MB weight cost more than the col2im it saves; benchmarks/RESULTS.md)."""
        return (self.stride == (1, 1) and k <= c and self.w.size <= 4 * gy.size
                and all(p <= d * (n - 1) for p, d, n in zip(self.padding, self.dilation, self.w.shape[2:])))

    def _direct_forward(self, x, w, b):
        """The direct kernel on the padded input, the bias added as it starts each output plane."""
        (oh, ow), (dh, dw) = self.out_hw, self.dilation
        b = xp_of(x).zeros(w.shape[0], dtype=x.dtype) if b is None else b
        return kernels_for(x).conv_direct(_pad(x, self.padding), w, b, self.groups, dh, dw, oh, ow)

    def _direct_backward(self, gy):
        x, w = self.x, self.w
        return kernels_for(x).conv_direct_backward(_pad(x, self.padding), gy, w, self.groups, self.padding,
                                                   self.dilation, *self.needs_input_grad[:2])

    def backward(self, gy):
        if self.empty:
            grads = (xp_of(gy).zeros_like(self.x), xp_of(gy).zeros_like(self.w))
        elif self.direct:
            grads = self._direct_backward(gy)
        else:
            grads = self._im2col_backward(gy)
        if self.has_bias:
            grads += (gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None,)
        return grads

    def _im2col_backward(self, gy):
        x, w, g = self.x, self.w, self.groups
        xp = xp_of(x)
        n, c, h, wd = x.shape
        k, kh, kw = w.shape[0], w.shape[2], w.shape[3]
        wm = w.reshape(g, k // g, -1)
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        dx = None
        if need_x and self._dx_by_convolution(c, k, gy):
            flipped = w.reshape(g, k // g, c // g, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
            flipped = xp.ascontiguousarray(flipped).reshape(c, k // g, kh, kw)
            pad = tuple(d * (m - 1) - p for p, d, m in zip(self.padding, self.dilation, (kh, kw)))
            dx = _correlate(gy, flipped, (1, 1), pad, self.dilation, g, (h, wd))
        col2im_dx = need_x and dx is None
        if col2im_dx:
            dx = xp.empty_like(x)
        # Small weight gradients are computed transposed, dW^T = cols @ gm^T, the orientation OpenBLAS runs 1.3-2x
        # faster for long rows; a large one (ResNet's 512x4608) directly, as gm @ cols^T: transposing it back
        # would cost more than the product (10 ms against 2, benchmarks/RESULTS.md).
        transposed = wm.shape[1] * wm.shape[2] <= 1 << 16
        dw = None
        layout = _Layout(x, w, self.stride, self.padding, self.dilation, self.out_hw)
        for n0, n1 in layout.chunks() if need_w or col2im_dx else ():
            gm = layout.output_columns(gy[n0:n1]).reshape(g, k // g, -1)
            if need_w:
                cols = layout.im2col(x[n0:n1]).reshape(g, wm.shape[2], -1)
                part = cols @ gm.transpose(0, 2, 1) if transposed else gm @ cols.transpose(0, 2, 1)
                dw = part if dw is None else dw + part
            if col2im_dx:
                dx[n0:n1] = layout.col2im((wm.transpose(0, 2, 1) @ gm).reshape(c * kh * kw, -1), n1 - n0)
        if need_w:
            dw = xp.ascontiguousarray(dw.transpose(0, 2, 1)) if transposed else dw
        return dx, (dw.reshape(w.shape) if need_w else None)


class _Layout:
    """How the batch becomes im2col matrices, chunk by chunk, and how matrix columns map to output positions.

    At stride 1 a chunk is zero-padded once and every output row is computed at the padded width Wp instead of OW
    (the Wp - OW extra columns per row are junk, dropped from the output, and zero in the output gradient): row
    (c, r, s) of the matrix is then one contiguous span of each padded image, which im2col_shifted copies in one
    piece instead of OH lines of OW elements (3-6x faster on LeNet's 10- and 28-element lines). The junk columns
    cost Wp/OW - 1 more work in the products, so this layout is used only where Wp < 1.5 OW (not on ResNet's
    4x4 and 2x2 maps). Otherwise the general im2col, with exactly OW columns per output row."""

    def __init__(self, x, w, stride, padding, dilation, out_hw):
        self.xp, self.kern = xp_of(x), kernels_for(x)
        self.x_shape, self.kh, self.kw = x.shape, w.shape[2], w.shape[3]
        self.padding, self.dilation, self.out_hw = padding, dilation, out_hw
        self.shifted = stride == (1, 1) and 2 * (x.shape[3] + 2 * padding[1]) < 3 * out_hw[1]  # Wp < 1.5 OW
        self.width = x.shape[3] + 2 * padding[1] if self.shifted else out_hw[1]  # matrix columns per output row
        self.geometry = (self.kh, self.kw, *stride, *padding, *dilation, *out_hw)
        self.device = device_of(x).type
        self.itemsize = x.itemsize

    def chunks(self):
        """Batch ranges of (nearly) equal size whose im2col matrix stays under CHUNK_BYTES."""
        n, c = self.x_shape[:2]
        per_image = c * self.kh * self.kw * self.out_hw[0] * self.width * self.itemsize
        most = max(1, CHUNK_BYTES[self.device] // max(per_image, 1))
        count = -(-n // most)
        if count == 0:  # an empty batch
            return []
        bounds = [n * i // count for i in range(count + 1)]
        return list(zip(bounds[:-1], bounds[1:]))

    def im2col(self, x):
        if not self.shifted:
            return self.kern.im2col(x, *self.geometry)
        dh, dw = self.dilation
        return self.kern.im2col_shifted(_pad(x, self.padding), self.kh, self.kw, dh, dw, self.out_hw[0])

    def output(self, ym, n):
        """The product (K, n*OH*width) as the output chunk (n, K, OH, OW)."""
        return ym.reshape(ym.shape[0], n, self.out_hw[0], self.width)[..., :self.out_hw[1]].transpose(1, 0, 2, 3)

    def output_columns(self, gy):
        """The output gradient chunk (n, K, OH, OW) as a (K, n*OH*width) matrix, zero in the junk columns."""
        n, k, oh, ow = gy.shape
        if not self.shifted:
            return gy.transpose(1, 0, 2, 3).reshape(k, -1)
        gm = self.xp.zeros((k, n, oh, self.width), dtype=gy.dtype)
        gm[..., :ow] = gy.transpose(1, 0, 2, 3)
        return gm.reshape(k, -1)

    def col2im(self, dcols, n):
        """The input gradient chunk (n, C, H, W) from the column gradient."""
        _, c, h, w = self.x_shape
        if not self.shifted:
            return self.kern.col2im(dcols, n, c, h, w, *self.geometry)
        (ph, pw), (dh, dw) = self.padding, self.dilation
        dx = self.kern.col2im_shifted(dcols, n, c, h + 2 * ph, w + 2 * pw, self.kh, self.kw, dh, dw, self.out_hw[0])
        return dx[:, :, ph:ph + h, pw:pw + w]


def _pad(x, padding):
    """x zero-padded by PH rows and PW columns on each side (x itself without padding)."""
    ph, pw = padding
    if not (ph or pw):
        return x
    n, c, h, w = x.shape
    out = xp_of(x).zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _correlate(x, w, stride, padding, dilation, groups, out_hw, b=None):
    """y = x (*) w (+ b), chunk by chunk: im2col, then one product per group; the bias is added as each chunk's
    product is copied into place."""
    n, k, g = x.shape[0], w.shape[0], groups
    wm = w.reshape(g, k // g, -1)
    layout = _Layout(x, w, stride, padding, dilation, out_hw)
    y = layout.xp.empty((n, k, *out_hw), dtype=x.dtype)
    for n0, n1 in layout.chunks():
        cols = layout.im2col(x[n0:n1])
        out = layout.output((wm @ cols.reshape(g, wm.shape[2], -1)).reshape(k, -1), n1 - n0)
        if b is None:
            y[n0:n1] = out
        else:
            layout.xp.add(out, b.reshape(-1, 1, 1), out=y[n0:n1])
    return y


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with w (K, C/groups, KH, KW); sizes as ints or (h, w) pairs."""
    args = (x, w) if b is None else (x, w, b)
    return Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=groups)
