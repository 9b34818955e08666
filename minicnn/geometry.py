"""The shapes of a 2-D convolution or pooling, in the lectures' notation, worked out once per call and handed to
every implementation (the reference, the Numba kernels, the CUDA kernels) as one object.

    N         images in the batch            C       input channels        H, W    input height and width
    K         output channels (filters)      G       groups                KH, KW  kernel (window) height, width
    SH, SW    stride                         PH, PW  zero padding          DH, DW  dilation
    OH, OW    output height and width

Gradients are named after what they are the gradient of: grad_x, grad_w, grad_y.
"""
from typing import NamedTuple


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


def pool_output_size(n, kernel, stride, padding, ceil_mode):
    """floor((n + 2p - k) / s) + 1 (ceil with ceil_mode, where the last window must still start inside the image
    or its left padding, as in PyTorch)."""
    span = n + 2 * padding - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1
    return out


class Conv2d(NamedTuple):
    """x (N, C, H, W) * w (K, C/G, KH, KW) -> y (N, K, OH, OW)."""
    N: int
    C: int
    H: int
    W: int
    K: int
    G: int
    KH: int
    KW: int
    SH: int
    SW: int
    PH: int
    PW: int
    DH: int
    DW: int
    OH: int
    OW: int

    @classmethod
    def of(cls, x_shape, w_shape, stride, padding, dilation, groups):
        (n, c, h, w), (k, _, kh, kw) = x_shape, w_shape
        oh, ow = (conv_output_size(*args) for args in zip((h, w), (kh, kw), stride, padding, dilation))
        return cls(n, c, h, w, k, groups, kh, kw, *stride, *padding, *dilation, oh, ow)

    @property
    def taps(self):
        """Inputs summed into each output: C/G*KH*KW."""
        return self.C // self.G * self.KH * self.KW

    def batch(self, n):
        """The same convolution on n images (a chunk of the batch)."""
        return self._replace(N=n)


class Pool2d(NamedTuple):
    """x (N, C, H, W) -> y (N, C, OH, OW), one KH x KW window per output."""
    N: int
    C: int
    H: int
    W: int
    KH: int
    KW: int
    SH: int
    SW: int
    PH: int
    PW: int
    OH: int
    OW: int

    @classmethod
    def of(cls, x_shape, kernel, stride, padding, ceil_mode):
        n, c, h, w = x_shape
        oh, ow = (pool_output_size(*args, ceil_mode) for args in zip((h, w), kernel, stride, padding))
        return cls(n, c, h, w, *kernel, *stride, *padding, oh, ow)
