"""2-D convolution (really cross-correlation, as in every deep-learning library) by im2col + one matrix product.

y[n, k, i, j] = b[k] + sum_{c, r, s} w[k, c, r, s] x[n, g*C/G + c, i*SH - PH + r*DH, j*SW - PW + s*DW]
(LeCun et al. 1998; im2col as in Chellapilla et al. 2006). With groups G the channels split into G independent
convolutions (AlexNet's two towers; depthwise convolution when G = C, Chollet 2017).

Forward:  cols = im2col(x) of shape (C*KH*KW, N*OH*OW);  Y = W (K, C/G*KH*KW) @ cols, per group.
Backward: dW = dY @ cols^T;  dcols = W^T @ dY;  dx = col2im(dcols);  db = sum of dY over n, i, j. At stride 1
with K <= C, dx is instead dY (*) flip(W)^T, a convolution with padding dilation*(KH-1) - padding.
The batch is processed in chunks so the im2col buffer stays under CHUNK_BYTES: on the CPU a cache-sized chunk
(measured fastest, benchmarks/RESULTS.md), on the GPU a large one (fewer kernel launches), bounded either way.
"""
from ..autograd import Function
from ..backend import device_of, xp_of
from ._utils import check_4d, kernels_for, pair

CHUNK_BYTES = {"cpu": 8 * 2**20, "cuda": 256 * 2**20}


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
        if not isinstance(groups, int) or groups < 1:
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
        if x.dtype != w.dtype:
            raise ValueError(f"conv2d: input and weight dtypes differ ({x.dtype} and {w.dtype})")
        try:
            return tuple(conv_output_size(x.shape[2 + a], w.shape[2 + a], self.stride[a], self.padding[a],
                                          self.dilation[a]) for a in (0, 1))
        except ValueError:
            raise ValueError(f"conv2d: kernel {tuple(w.shape[2:])} (dilation {self.dilation}) is larger than the "
                             f"padded input {tuple(x.shape[2:])} + 2*{self.padding}") from None

    def forward(self, x, w, b=None):
        self.out_hw = self._check(x, w, b)
        y, self.cols = _correlate(x, w, self.stride, self.padding, self.dilation, self.groups, self.out_hw)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        self.x, self.w, self.has_bias = x, w, b is not None
        return y

    def _dx_by_convolution(self, c, k):
        """At stride 1, dx is the convolution of dy with the flipped, transposed weights: one im2col of dy and one
        product instead of a product and col2im, faster when it builds no more rows (K <= C)."""
        return (self.stride == (1, 1) and k <= c
                and all(p <= d * (n - 1) for p, d, n in zip(self.padding, self.dilation, self.w.shape[2:])))

    def backward(self, gy):
        x, w, g = self.x, self.w, self.groups
        xp, kern = xp_of(x), kernels_for(x)
        n, c, h, wd = x.shape
        k, kh, kw = w.shape[0], w.shape[2], w.shape[3]
        wm = w.reshape(g, k // g, -1)
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        dx = None
        if need_x and self._dx_by_convolution(c, k):
            flipped = w.reshape(g, k // g, c // g, kh, kw).transpose(0, 2, 1, 3, 4)[..., ::-1, ::-1]
            flipped = xp.ascontiguousarray(flipped).reshape(c, k // g, kh, kw)
            pad = tuple(d * (m - 1) - p for p, d, m in zip(self.padding, self.dilation, (kh, kw)))
            dx = _correlate(gy, flipped, (1, 1), pad, self.dilation, g, (h, wd))[0]
        col2im_dx = need_x and dx is None
        if col2im_dx:
            dx = xp.empty_like(x)
        # Small weight gradients are computed transposed, dW^T = cols @ gm^T, the orientation OpenBLAS runs 1.3-2x
        # faster for long rows; a large one (ResNet's 512x4608) directly, as gm @ cols^T: transposing it back
        # would cost more than the product (10 ms against 2, benchmarks/RESULTS.md).
        transposed = wm.shape[1] * wm.shape[2] <= 1 << 16
        dw = None
        geometry = (kh, kw, *self.stride, *self.padding, *self.dilation, *self.out_hw)
        for n0, n1 in _chunks(x, w, self.out_hw) if need_w or col2im_dx else ():
            gm = gy[n0:n1].transpose(1, 0, 2, 3).reshape(g, k // g, -1)
            if need_w:
                cols = self.cols if self.cols is not None else kern.im2col(x[n0:n1], *geometry)
                cols = cols.reshape(g, wm.shape[2], -1)
                part = cols @ gm.transpose(0, 2, 1) if transposed else gm @ cols.transpose(0, 2, 1)
                dw = part if dw is None else dw + part
            if col2im_dx:
                dcols = (wm.transpose(0, 2, 1) @ gm).reshape(c * kh * kw, -1)
                dx[n0:n1] = kern.col2im(dcols, n1 - n0, c, h, wd, *geometry)
        if need_w:
            dw = xp.ascontiguousarray(dw.transpose(0, 2, 1)) if transposed else dw
        grads = (dx, dw.reshape(w.shape) if need_w else None)
        if self.has_bias:
            grads += (gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None,)
        return grads


def _chunks(x, w, out_hw):
    """Batch ranges whose im2col buffer stays under CHUNK_BYTES."""
    per_image = x.shape[1] * w.shape[2] * w.shape[3] * out_hw[0] * out_hw[1] * x.itemsize  # C*KH*KW rows
    step = max(1, CHUNK_BYTES[device_of(x).type] // max(per_image, 1))
    return [(n0, min(n0 + step, x.shape[0])) for n0 in range(0, x.shape[0], step)]


def _correlate(x, w, stride, padding, dilation, groups, out_hw):
    """y = x (*) w, chunk by chunk: im2col, then one product per group. Returns y and, when the batch fit in one
    chunk (at most CHUNK_BYTES), its im2col buffer, which backward reuses instead of building it again."""
    xp, kern = xp_of(x), kernels_for(x)
    n, k, g = x.shape[0], w.shape[0], groups
    wm = w.reshape(g, k // g, -1)
    y = xp.empty((n, k, *out_hw), dtype=x.dtype)
    geometry = (w.shape[2], w.shape[3], *stride, *padding, *dilation, *out_hw)
    chunks = _chunks(x, w, out_hw)
    for n0, n1 in chunks:
        cols = kern.im2col(x[n0:n1], *geometry)
        y[n0:n1] = (wm @ cols.reshape(g, wm.shape[2], -1)).reshape(k, n1 - n0, *out_hw).transpose(1, 0, 2, 3)
    return y, (cols if len(chunks) == 1 else None)


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with w (K, C/groups, KH, KW); sizes as ints or (h, w) pairs."""
    args = (x, w) if b is None else (x, w, b)
    return Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=groups)
