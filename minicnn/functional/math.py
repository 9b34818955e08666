"""Arithmetic with broadcasting, elementwise functions, reductions and matrix products.

Broadcasting follows NumPy: in backward, a gradient is summed over the axes an input was broadcast along
(`unbroadcast`).
"""
import builtins

import numpy as np

from ..autograd import Function, Tensor
from ..backend import xp_of
from ._utils import axis_index, check_float


def unbroadcast(grad, shape):
    """Sum `grad` down to `shape`, undoing NumPy broadcasting."""
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}  # bool < integer < floating < complex
_SCALAR_DTYPE = {0: np.bool_, 1: np.int64, 2: np.float32, 3: np.complex64}  # PyTorch's defaults for Python numbers


def _is_scalar(v):
    return isinstance(v, (bool, int, float, complex, np.generic))


def result_dtype(a, b):
    """PyTorch's type promotion for a binary op: a higher category (bool < integer < floating < complex) wins;
    within one category the wider dtype wins, except that a Python number or a 0-d tensor never widens a tensor
    with dimensions (`uint8_tensor * (1/255)` is float32; `float32_tensor * 2.0` stays float32)."""
    def rank(v):  # (category, priority): numbers 0, 0-d arrays 1, arrays with dimensions 2
        if _is_scalar(v):
            kinds = ((bool, np.bool_), (int, np.integer), (float, np.floating))
            return next((cat for cat, types in enumerate(kinds) if isinstance(v, types)), 3), 0
        return _CATEGORY[v.dtype.kind], 1 + (v.ndim > 0)
    (ca, pa), (cb, pb) = rank(a), rank(b)
    if ca != cb:
        (cat, priority), v = ((ca, pa), a) if ca > cb else ((cb, pb), b)
        return v.dtype if priority else np.dtype(_SCALAR_DTYPE[cat])
    if pa != pb:
        return a.dtype if pa > pb else b.dtype
    return np.promote_types(a.dtype, b.dtype)


def _pair(a, b, name, floating=False):
    """Tensors for a binary op, both of the promoted dtype (`result_dtype`; with floating=True an integer result
    becomes float32, as true division does). A Python number, NumPy array or list goes to the Tensor operand's
    device."""
    ref = a if isinstance(a, Tensor) else b
    xp = xp_of(ref.data)

    def operand(v):
        if isinstance(v, Tensor):
            return v
        if not _is_scalar(v):
            v = xp.asarray(v)
            if v.dtype.kind not in "buifc":
                raise TypeError(f"{name}: expected a Tensor, a number or a numeric array, got dtype {v.dtype}")
        return v

    a, b = operand(a), operand(b)
    dtype = result_dtype(a.data if isinstance(a, Tensor) else a, b.data if isinstance(b, Tensor) else b)
    if floating and dtype.kind in "biu":
        dtype = np.dtype(np.float32)

    def cast(v):
        if isinstance(v, Tensor):
            return v if v.dtype == dtype else v.to(dtype=dtype)
        try:
            return Tensor(xp.asarray(v, dtype=dtype))
        except OverflowError:
            raise ValueError(f"{name}: {v!r} does not fit in the tensor's dtype {dtype}") from None
    return cast(a), cast(b)


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
    """a ** b for two tensors: d/da = b a^(b-1), d/db = a^b log a. As in PyTorch, d/da is 0 where b = 0 and d/db is
    0 where a = 0 and b >= 0 (0 ** b is flat in b there), so 0 ** y is not NaN."""

    def forward(self, a, b):
        _binary_check("pow", a, b)
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        xp, a, b = xp_of(g), self.a, self.b
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                da = unbroadcast(xp.where(b == 0, 0, g * b * a ** (b - 1)), a.shape)
            if self.needs_input_grad[1]:
                db = unbroadcast(xp.where((a == 0) & (b >= 0), 0, g * self.out * xp.log(a)), b.shape)
        return da, db


class PowConst(Function):
    """a ** p for a constant exponent p: d/da = p a^(p-1) (0 for p = 0)."""

    def __init__(self, exponent):
        self.p = exponent

    def forward(self, a):
        self.a = a
        return a ** a.dtype.type(self.p)

    def backward(self, g):
        if self.p == 0:
            return xp_of(g).zeros_like(g)
        return g * self.p * self.a ** self.a.dtype.type(self.p - 1)


class Neg(Function):
    def forward(self, a):
        return -a

    def backward(self, g):
        return -g


def as_floating(a):
    """An integer or bool array as float32 (PyTorch's default dtype), for ops whose result is never an integer."""
    return a if a.dtype.kind in "fc" else a.astype(np.float32)


class Exp(Function):
    def forward(self, a):
        self.out = xp_of(a).exp(as_floating(a))
        return self.out

    def backward(self, g):
        return g * self.out


class Log(Function):
    def forward(self, a):
        self.a = as_floating(a)
        return xp_of(a).log(self.a)

    def backward(self, g):
        return g / self.a


class Sqrt(Function):
    def forward(self, a):
        self.out = xp_of(a).sqrt(as_floating(a))
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


def _axes(axis, ndim, name):
    """Normalise an axis argument (None, an int or a sequence of ints) to a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = [axis_index(name, ax, ndim) for ax in axes]
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: axis {axis} names an axis twice")
    return tuple(sorted(out)) if ndim else ()  # a 0-d tensor's one axis (0 or -1) is no axis at all


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
        check_float("mean", a, kernel=False)
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
        self.axes = _axes(self.axis, a.ndim, "max")
        if any(a.shape[ax] == 0 for ax in self.axes):
            raise ValueError(f"max: the axes reduced over must not be empty, got shape {tuple(a.shape)} and axis "
                             f"{self.axis}")
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
    return Add.apply(*_pair(a, b, "add"))


def sub(a, b):
    return Sub.apply(*_pair(a, b, "sub"))


def mul(a, b):
    return Mul.apply(*_pair(a, b, "mul"))


def div(a, b):
    """True division: integers divide as float32, like PyTorch."""
    return Div.apply(*_pair(a, b, "div", floating=True))


def pow(a, b):
    """a ** b; an integer base to a negative integer power is an error, as in PyTorch and NumPy."""
    if isinstance(a, Tensor) and isinstance(b, (int, float)) and not isinstance(b, bool):
        dtype = result_dtype(a.data, b)
        if dtype.kind in "iu" and b < 0:
            raise ValueError(f"pow: integers to negative integer powers are not allowed, got {a.dtype} ** {b}")
        return PowConst.apply(a if dtype == a.dtype else a.to(dtype=dtype), exponent=b)
    a, b = _pair(a, b, "pow")
    if a.dtype.kind == "b":
        raise TypeError("pow: bool tensors have no powers; convert them with .to(dtype=...) first")
    if a.dtype.kind in "iu" and (b.data < 0).any():
        raise ValueError(f"pow: integers to negative integer powers are not allowed, got {a.dtype} ** {b.dtype}")
    return Pow.apply(a, b)


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


def argmax(a, axis=None):
    """Index of the first maximum (over the flattened tensor when axis is None); an int64 tensor, no gradient."""
    data = a.data if isinstance(a, Tensor) else xp_of(a).asarray(a)
    if axis is not None:
        axis = axis_index("argmax", axis, data.ndim)
    if data.size == 0:
        raise ValueError(f"argmax: expected a non-empty tensor, got shape {tuple(data.shape)}")
    return Tensor(data.argmax(axis=axis))


def matmul(a, b):
    a, b = _pair(a, b, "matmul")
    if a.dtype.kind == "b":
        raise TypeError("matmul: bool tensors have no matrix product; convert them with .to(dtype=...) first")
    return MatMul.apply(a, b)
