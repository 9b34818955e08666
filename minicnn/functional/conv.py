"""2-D convolution (really cross-correlation, as in every deep-learning library) by im2col + one matrix product.

y[n, k, i, j] = b[k] + sum_{c, r, s} w[k, c, r, s] x[n, g*C/G + c, i*SH - PH + r*DH, j*SW - PW + s*DW]
(LeCun et al. 1998; im2col as in Chellapilla et al. 2006). With groups G the channels split into G independent
convolutions (AlexNet's two towers; depthwise convolution when G = C, Chollet 2017).

Forward:  cols = im2col(x) of shape (C*KH*KW, N*OH*OW);  Y = W (K, C/G*KH*KW) @ cols, per group.
Backward: dW = dY @ cols^T;  dcols = W^T @ dY;  dx = col2im(dcols);  db = sum of dY over n, i, j.
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

    def _chunks(self, x, w):
        per_image = w.shape[1] * self.groups * w.shape[2] * w.shape[3] * self.out_hw[0] * self.out_hw[1] * x.itemsize
        step = max(1, CHUNK_BYTES[device_of(x).type] // max(per_image, 1))
        return [(n0, min(n0 + step, x.shape[0])) for n0 in range(0, x.shape[0], step)]

    def _im2col(self, x):
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.padding, self.dilation
        return kernels_for(x).im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, *self.out_hw)

    def forward(self, x, w, b=None):
        self.out_hw = oh, ow = self._check(x, w, b)
        self.kernel = w.shape[2:]
        xp, g = xp_of(x), self.groups
        n, k = x.shape[0], w.shape[0]
        wm = w.reshape(g, k // g, -1)
        y = xp.empty((n, k, oh, ow), dtype=x.dtype)
        chunks = self._chunks(x, w)
        for n0, n1 in chunks:
            cols = self._im2col(x[n0:n1]).reshape(g, wm.shape[2], -1)
            y[n0:n1] = (wm @ cols).reshape(k, n1 - n0, oh, ow).transpose(1, 0, 2, 3)
        # a single chunk is small (at most CHUNK_BYTES): keep it for backward rather than build it again
        self.cols = cols if len(chunks) == 1 else None
        if b is not None:
            y += b.reshape(1, k, 1, 1)
        self.x, self.w, self.has_bias = x, w, b is not None
        return y

    def backward(self, gy):
        x, w, g = self.x, self.w, self.groups
        xp = xp_of(x)
        n, c, h, wd = x.shape
        k = w.shape[0]
        wm = w.reshape(g, k // g, -1)
        need_x, need_w = self.needs_input_grad[0], self.needs_input_grad[1]
        dx = xp.empty_like(x) if need_x else None
        # Small weight gradients are computed transposed, dW^T = cols @ gm^T, the orientation OpenBLAS runs 1.3-2x
        # faster for long rows; a large one (ResNet's 512x4608) directly, as gm @ cols^T: transposing it back
        # would cost more than the product (10 ms against 2, benchmarks/RESULTS.md).
        transposed = wm.shape[1] * wm.shape[2] <= 1 << 16
        dw = None
        (kh, kw), (sh, sw), (ph, pw), (dh, dwl) = self.kernel, self.stride, self.padding, self.dilation
        for n0, n1 in self._chunks(x, w):
            gm = gy[n0:n1].transpose(1, 0, 2, 3).reshape(g, k // g, -1)
            if need_w:
                cols = self.cols if self.cols is not None else self._im2col(x[n0:n1]).reshape(g, wm.shape[2], -1)
                part = cols @ gm.transpose(0, 2, 1) if transposed else gm @ cols.transpose(0, 2, 1)
                dw = part if dw is None else dw + part
            if need_x:
                dcols = (wm.transpose(0, 2, 1) @ gm).reshape(c * kh * kw, -1)
                dx[n0:n1] = kernels_for(x).col2im(dcols, n1 - n0, c, h, wd, kh, kw, sh, sw, ph, pw, dh, dwl,
                                                  *self.out_hw)
        if need_w:
            dw = xp.ascontiguousarray(dw.transpose(0, 2, 1)) if transposed else dw
        grads = (dx, dw.reshape(w.shape) if need_w else None)
        if self.has_bias:
            grads += (gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None,)
        return grads


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with w (K, C/groups, KH, KW); sizes as ints or (h, w) pairs."""
    args = (x, w) if b is None else (x, w, b)
    return Conv2d.apply(*args, stride=stride, padding=padding, dilation=dilation, groups=groups)
