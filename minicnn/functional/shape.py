"""Ops that move values without arithmetic: reshape, transpose, indexing, concatenation, dtype and device copies.
Their backward passes route each gradient value back to the position it came from."""
import numpy as np

from .. import backend
from ..autograd import Function, Tensor
from ..backend import xp_of
from ._utils import axis_index, is_int


class Reshape(Function):
    def __init__(self, shape):
        self.shape = shape

    def forward(self, a):
        self.in_shape = a.shape
        if not all(is_int(n) and n >= -1 for n in self.shape) or sum(n == -1 for n in self.shape) > 1:
            raise ValueError(f"reshape: the shape must be ints >= 0 with at most one -1, got {self.shape}")
        try:
            return a.reshape(self.shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {tuple(a.shape)} to {self.shape}") from None

    def backward(self, g):
        return g.reshape(self.in_shape)


class Transpose(Function):
    """Permute axes with NumPy's meaning: no axes reverses them."""

    def __init__(self, axes):
        self.axes = axes

    def forward(self, a):
        axes = self.axes or tuple(range(a.ndim))[::-1]
        if len(axes) != a.ndim or not all(is_int(ax) and -a.ndim <= ax < a.ndim for ax in axes) or \
                sorted(ax % a.ndim for ax in axes) != list(range(a.ndim)):
            raise ValueError(f"transpose: axes {self.axes} are not a permutation of {a.ndim} axes")
        axes = tuple(int(ax) % a.ndim for ax in axes)
        self.inverse = tuple(np.argsort(axes))
        return a.transpose(axes)

    def backward(self, g):
        return g.transpose(self.inverse)


def _index_arrays(index):
    """Replace Tensors inside an index by their arrays; tell whether the index is advanced (uses arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    items = tuple(i.data if isinstance(i, Tensor) else i for i in items)
    advanced = any(not isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis))) for i in items)
    return (items if isinstance(index, tuple) else items[0]), advanced


class GetItem(Function):
    """Basic slicing and integer/boolean array indexing; repeated indices accumulate in backward."""

    def __init__(self, index):
        self.index, self.advanced = _index_arrays(index)

    def forward(self, a):
        self.shape, self.dtype = a.shape, a.dtype
        try:
            return a[self.index]
        except IndexError as e:  # an IndexError still, so that iteration and `in` stop at the end as in Python
            raise IndexError(f"getitem: index {self.index!r} is invalid for shape {tuple(a.shape)}: {e}") from None
        except (ValueError, TypeError) as e:  # a slice step of 0, an index of the wrong type
            raise type(e)(f"getitem: index {self.index!r} is invalid for shape {tuple(a.shape)}: {e}") from None

    def backward(self, g):
        xp = xp_of(g)
        grad = xp.zeros(self.shape, dtype=g.dtype)
        if not self.advanced:
            grad[self.index] = g
        elif xp is np:
            np.add.at(grad, self.index, g)
        else:
            import cupyx
            cupyx.scatter_add(grad, self.index, g)
        return grad


class Cat(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        ref = arrays[0]
        if ref.ndim == 0:
            raise ValueError("cat: zero-dimensional tensors cannot be concatenated (use stack)")
        axis = axis_index("cat", self.axis, ref.ndim)
        for a in arrays[1:]:
            if a.ndim != ref.ndim or any(a.shape[i] != ref.shape[i] for i in range(ref.ndim) if i != axis):
                raise ValueError(f"cat: shapes must match except along axis {self.axis}, "
                                 f"got {[tuple(x.shape) for x in arrays]}")
        self.axis = axis
        self.bounds = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return xp_of(ref).concatenate(arrays, axis=axis)

    def backward(self, g):
        return tuple(xp_of(g).split(g, self.bounds, axis=self.axis))


class Stack(Function):
    def __init__(self, axis):
        self.axis = axis

    def forward(self, *arrays):
        if any(a.shape != arrays[0].shape for a in arrays):
            raise ValueError(f"stack: all tensors must have one shape, got {[tuple(x.shape) for x in arrays]}")
        self.axis = axis_index("stack", self.axis, arrays[0].ndim + 1, of="the stacked result")
        return xp_of(arrays[0]).stack(arrays, axis=self.axis)

    def backward(self, g):
        return tuple(g.take(i, axis=self.axis) for i in range(g.shape[self.axis]))


class Cast(Function):
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, a):
        self.in_dtype = a.dtype
        return a.astype(self.dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)


class ToDevice(Function):
    def __init__(self, device):
        self.device = backend.Device(device)

    def forward(self, a):
        self.source = backend.device_of(a)
        return backend.to_device(a, self.device)

    def backward(self, g):
        return backend.to_device(g, self.source)


def reshape(a, *shape):
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Reshape.apply(a, shape=shape)


def transpose(a, *axes):
    axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
    return Transpose.apply(a, axes=axes)


def flatten(a, start_axis=0):
    """Merge the axes from `start_axis` on into one (start_axis=1 keeps the batch axis)."""
    start = axis_index("flatten", start_axis, a.ndim)
    return reshape(a, *a.shape[:start], int(np.prod(a.shape[start:])))  # no -1: it cannot be inferred from 0


def getitem(a, index):
    return GetItem.apply(a, index=index)


def _same_device(name, tensors):
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    return tensors


def cat(tensors, axis=0):
    """Concatenate along an existing axis (DenseNet and Inception join their branches this way)."""
    return Cat.apply(*_same_device("cat", tensors), axis=axis)


def stack(tensors, axis=0):
    return Stack.apply(*_same_device("stack", tensors), axis=axis)


def cast(a, dtype):
    return Cast.apply(a, dtype=dtype)


def to_device(a, device):
    return ToDevice.apply(a, device=device)
