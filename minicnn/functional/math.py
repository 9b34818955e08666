"""Arithmetic with broadcasting, elementwise functions, reductions and matrix products.

Broadcasting follows NumPy: in backward, a gradient is summed over the axes an input was broadcast along
(`unbroadcast`).
"""
import builtins

import numpy as np

from ..autograd import Function, Tensor
from ..backend import xp_of


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _pair(a, b):
    """Tensors for a binary op: a Python number or array takes the dtype and device of the Tensor operand
    (so `x * 2.0` stays float32); a NumPy array keeps its dtype and follows NumPy promotion."""
    ref = a if isinstance(a, Tensor) else b
    def conv(v):
        if isinstance(v, Tensor):
            return v
        if isinstance(v, (int, float, bool, np.generic)) or (isinstance(v, np.ndarray) and v.dtype.kind in "biu"):
            return Tensor(xp_of(ref.data).asarray(v, dtype=ref.dtype))
        return Tensor(xp_of(ref.data).asarray(v))
    return conv(a), conv(b)


def _binary_check(name, a, b):
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{name}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast") from None


class Add(Function):
    def forward(self, a, b):
        _binary_check("add", a, b)
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(g, self.shapes[1])


class Sub(Function):
    def forward(self, a, b):
        _binary_check("sub", a, b)
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.shapes[0]), unbroadcast(-g, self.shapes[1])


class Mul(Function):
    def forward(self, a, b):
        _binary_check("mul", a, b)
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        da = unbroadcast(g * self.b, self.a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(g * self.a, self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Div(Function):
    def forward(self, a, b):
        _binary_check("div", a, b)
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        ga = g / self.b
        da = unbroadcast(ga, self.a.shape) if self.needs_input_grad[0] else None
        db = unbroadcast(-ga * self.a / self.b, self.b.shape) if self.needs_input_grad[1] else None
        return da, db


class Pow(Function):
    """a ** b for two tensors: d/da = b a^(b-1), d/db = a^b log a."""

    def forward(self, a, b):
        _binary_check("pow", a, b)
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        xp = xp_of(g)
        da = unbroadcast(g * self.b * self.a ** (self.b - 1), self.a.shape) if self.needs_input_grad[0] else None
        db = None
        if self.needs_input_grad[1]:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = xp.where(self.a > 0, xp.log(xp.where(self.a > 0, self.a, 1)), xp.nan)
            db = unbroadcast(g * self.out * log_a, self.b.shape)
        return da, db


class PowConst(Function):
    """a ** p for a constant exponent p: d/da = p a^(p-1)."""

    def __init__(self, exponent):
        self.p = exponent

    def forward(self, a):
        self.a = a
        return a ** a.dtype.type(self.p)

    def backward(self, g):
        return g * self.p * self.a ** self.a.dtype.type(self.p - 1)


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


class Exp(Function):
    def forward(self, a):
        self.out = xp_of(a).exp(a)
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = a
        return xp_of(a).log(a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = xp_of(a).sqrt(a)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


def _axes(axis, ndim, name):
    """Normalise an axis argument to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < builtins.max(ndim, 1):
            raise ValueError(f"{name}: axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(ax % builtins.max(ndim, 1))
    return tuple(sorted(set(out)))


def _expand(g, axes, keepdims):
    """Re-insert reduced axes into a gradient so that it broadcasts against the input."""
    if keepdims:
        return g
    for ax in axes:
        g = xp_of(g).expand_dims(g, ax)
    return g


class Sum(Function):
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.axes, self.shape = _axes(self.axis, a.ndim, "sum"), a.shape
        return a.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        return xp_of(g).broadcast_to(_expand(g, self.axes, self.keepdims), self.shape)


class Mean(Function):
    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        self.axes, self.shape = _axes(self.axis, a.ndim, "mean"), a.shape
        self.count = int(np.prod([a.shape[i] for i in self.axes]))
        return a.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        return xp_of(g).broadcast_to(_expand(g, self.axes, self.keepdims) / self.count, self.shape)


class Max(Function):
    """Maximum over axes; the gradient is shared equally between tied maxima (like torch.amax)."""

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, a):
        if a.size == 0:
            raise ValueError("max: expected a non-empty tensor, got shape " + str(tuple(a.shape)))
        self.axes = _axes(self.axis, a.ndim, "max")
        out = a.max(axis=self.axes, keepdims=True)
        self.mask = a == out
        return out if self.keepdims else out.reshape([n for i, n in enumerate(out.shape) if i not in self.axes])

    def backward(self, g):
        g = _expand(g, self.axes, self.keepdims)
        return g * self.mask / self.mask.sum(axis=self.axes, keepdims=True).astype(g.dtype)


class MatMul(Function):
    """NumPy's matmul (1-D operands and batch broadcasting included): dA = G B^T, dB = A^T G."""

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: expected operands with at least 1 dimension, got {a.shape} and {b.shape}")
        k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
        if a.shape[-1] != k_b:
            raise ValueError(f"matmul: inner dimensions differ, got shapes {tuple(a.shape)} and {tuple(b.shape)}")
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if b.ndim == 1:
            g = g[..., None]
        if a.ndim == 1:
            g = g[..., None, :]
        da = db = None
        if self.needs_input_grad[0]:
            da = unbroadcast(g @ b2.swapaxes(-1, -2), a2.shape).reshape(a.shape)
        if self.needs_input_grad[1]:
            db = unbroadcast(a2.swapaxes(-1, -2) @ g, b2.shape).reshape(b.shape)
        return da, db


def add(a, b):
    return Add.apply(*_pair(a, b))


def sub(a, b):
    return Sub.apply(*_pair(a, b))


def mul(a, b):
    return Mul.apply(*_pair(a, b))


def div(a, b):
    return Div.apply(*_pair(a, b))


def pow(a, b):
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return PowConst.apply(a, exponent=b)
    return Pow.apply(*_pair(a, b))


def neg(a):
    return Neg.apply(a)


def exp(a):
    return Exp.apply(a)


def log(a):
    return Log.apply(a)


def sqrt(a):
    return Sqrt.apply(a)


def sum(a, axis=None, keepdims=False):
    return Sum.apply(a, axis=axis, keepdims=keepdims)


def mean(a, axis=None, keepdims=False):
    return Mean.apply(a, axis=axis, keepdims=keepdims)


def max(a, axis=None, keepdims=False):
    return Max.apply(a, axis=axis, keepdims=keepdims)


def matmul(a, b):
    return MatMul.apply(*_pair(a, b))
