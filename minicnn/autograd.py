"""Tensor, Function and the reverse-mode (backward) engine.

The engine is define-by-run: every op applied to a tensor that requires a gradient records one `Function` node,
which keeps references to its *inputs* only. Outputs point to the node that made them, never the other way round,
so the graph has no reference cycles and is freed by reference counting as soon as the last output goes away.

`Tensor.backward` sorts the nodes topologically with an explicit stack (no recursion, so a chain of any length
works), then walks them from the output back to the leaves, summing the gradients of every tensor that is used
more than once (`b = a + a` gives db/da = 2).
"""
import contextlib

import numpy as np

from . import backend

_F = None  # minicnn.functional, bound by its __init__ (the ops sit above this module in the layering)
_grad_enabled = True
_record_hook = None  # minicnn.viz.recording: a callable given every Function that joins a graph (None: not recording)


def _bind_functional(module):
    global _F
    _F = module


def is_grad_enabled():
    return _grad_enabled


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which ops record no graph: for evaluation and parameter updates."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class enable_grad(no_grad):
    """Re-enable graph recording inside a `no_grad` block."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, True


_FLOAT_KINDS = "fc"


def _as_array(data, dtype=None, device=None):
    """Turn Python numbers, lists, NumPy or CuPy arrays into an array on `device`, with minicnn's dtype rules:
    Python floats become float32, Python ints int64, arrays keep their dtype unless `dtype` is given."""
    if isinstance(data, Tensor):
        data = data.data
    try:
        dtype = None if dtype is None else np.dtype(dtype)
        if isinstance(data, np.ndarray) or backend.is_gpu_array(data) or isinstance(data, np.generic):
            arr = data if dtype is None else data.astype(dtype, copy=False)
        else:
            arr = np.asarray(data)
            if dtype is not None:
                arr = arr.astype(dtype, copy=False)
            elif arr.dtype == np.float64:
                arr = arr.astype(np.float32)
    except (TypeError, ValueError) as e:  # a ragged list, a string, an unknown dtype
        raise type(e)(f"tensor: cannot make a tensor of {type(data).__name__} with dtype {dtype}: {e}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"tensor: expected numbers, got data of dtype {arr.dtype}")
    if isinstance(arr, np.generic):
        arr = np.asarray(arr)
    if device is not None:
        arr = backend.to_device(arr, device)
    return arr


class Tensor:
    """An n-dimensional array (`.data`, NumPy or CuPy) with an optional gradient (`.grad`).

    Semantics follow PyTorch; axis arguments are called `axis`, as in NumPy.
    """

    __array_priority__ = 1000  # NumPy defers to Tensor in mixed expressions
    __array_ufunc__ = None  # `ndarray + Tensor` calls Tensor.__radd__

    def __init__(self, data, requires_grad=False, _ctx=None):
        self.data = _as_array(data)
        self.grad = None
        self._ctx = _ctx
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # --- properties ------------------------------------------------------------------------------------------------
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return self.data.size

    @property
    def device(self):
        return backend.device_of(self.data)

    @property
    def is_leaf(self):
        return self._ctx is None

    def __len__(self):
        if self.data.ndim == 0:
            raise TypeError("len: a 0-d tensor has no length")
        return len(self.data)

    def __iter__(self):
        """Iterate over the first axis, like a list of rows (each a Tensor, in the graph if self is)."""
        if self.data.ndim == 0:
            raise TypeError("iter: iteration over a 0-d tensor")
        return (self[i] for i in range(len(self.data)))

    def __repr__(self):
        body = np.array2string(self.numpy(), separator=", ", prefix="tensor(")
        extra = "" if self.dtype == np.float32 else f", dtype={self.dtype}"
        extra += "" if self.device.type == "cpu" else f", device='{self.device}'"
        extra += ", requires_grad=True" if self.requires_grad else ""
        return f"tensor({body}{extra})"

    # --- conversion ------------------------------------------------------------------------------------------------
    def requires_grad_(self, flag=True):
        if flag and self.data.dtype.kind not in _FLOAT_KINDS:
            raise ValueError(f"requires_grad: only floating-point tensors can require gradients, got {self.dtype}")
        self.requires_grad = bool(flag)
        return self

    def numpy(self):
        """A host (NumPy) copy when the tensor lives on the GPU, the array itself on the CPU."""
        return self.data.get() if backend.is_gpu_array(self.data) else self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: expected a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(()).item()

    def __float__(self):
        if self.data.size != 1:
            raise ValueError(f"float: only a tensor with one element converts to a Python float, got shape "
                             f"{self.shape}")
        return float(self.item())

    def __int__(self):
        if self.data.size != 1:
            raise ValueError(f"int: only a tensor with one element converts to a Python int, got shape {self.shape}")
        return int(self.item())

    def __index__(self):
        if self.data.size != 1 or self.dtype.kind not in "iu":
            raise TypeError(f"index: only an integer tensor with one element can be used as an index, got "
                            f"{self.dtype} of shape {self.shape}")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        """np.array(t) and np.asarray(t): a host array of the tensor's values."""
        if copy is False and backend.is_gpu_array(self.data):
            raise ValueError("array: a GPU tensor cannot be viewed as a NumPy array without a copy")
        out = self.numpy()
        if dtype is not None:
            out = out.astype(dtype, copy=False)
        return out.copy() if copy else out

    def tolist(self):
        return self.numpy().tolist()

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def to(self, device=None, dtype=None):
        """Move to a device and/or cast to a dtype; differentiable, like PyTorch's `Tensor.to`."""
        out = self
        if dtype is not None and np.dtype(dtype) != self.dtype:
            out = _F.cast(out, dtype)
        if device is not None and backend.Device(device) != self.device:
            out = _F.to_device(out, device)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self):
        return self.to("cuda")

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    # --- autograd --------------------------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires a gradient."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        xp = backend.xp_of(self.data)
        if grad is None:
            if self.data.size != 1:
                raise ValueError(f"backward: grad can be omitted only for a one-element output, got shape {self.shape}")
            grad = xp.ones_like(self.data)
        else:
            grad = _as_array(grad, dtype=self.dtype, device=self.device)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward: expected a grad of shape {self.shape}, got {tuple(grad.shape)}")
        if self._ctx is None:
            _accumulate(self, grad)
            return
        run_backward(self._ctx, grad, retain_graph)

    def zero_grad(self):
        self.grad = None

    # --- operators (the ops live in minicnn.functional) ------------------------------------------------------------
    def __add__(self, other): return _F.add(self, other)
    def __radd__(self, other): return _F.add(other, self)
    def __sub__(self, other): return _F.sub(self, other)
    def __rsub__(self, other): return _F.sub(other, self)
    def __mul__(self, other): return _F.mul(self, other)
    def __rmul__(self, other): return _F.mul(other, self)
    def __truediv__(self, other): return _F.div(self, other)
    def __rtruediv__(self, other): return _F.div(other, self)
    def __pow__(self, other): return _F.pow(self, other)
    def __rpow__(self, other): return _F.pow(other, self)
    def __matmul__(self, other): return _F.matmul(self, other)
    def __rmatmul__(self, other): return _F.matmul(other, self)
    def __neg__(self): return _F.neg(self)
    def __getitem__(self, index): return _F.getitem(self, index)

    # comparisons give boolean tensors that never require gradients
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __eq__(self, other): return self._compare(other, lambda a, b: a == b)
    def __ne__(self, other): return self._compare(other, lambda a, b: a != b)
    def __lt__(self, other): return self._compare(other, lambda a, b: a < b)
    def __le__(self, other): return self._compare(other, lambda a, b: a <= b)
    def __gt__(self, other): return self._compare(other, lambda a, b: a > b)
    def __ge__(self, other): return self._compare(other, lambda a, b: a >= b)
    __hash__ = object.__hash__

    def __bool__(self):
        """Truth of a one-element tensor; ambiguous (an error) for more, as in NumPy and PyTorch."""
        if self.data.size != 1:
            raise ValueError(f"bool: the truth value of a tensor with {self.data.size} elements is ambiguous; "
                             "use .any() or .all() on .numpy()")
        return bool(self.item())

    def sum(self, axis=None, keepdims=False): return _F.sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return _F.mean(self, axis, keepdims)
    def max(self, axis=None, keepdims=False): return _F.max(self, axis, keepdims)
    def argmax(self, axis=None): return _F.argmax(self, axis)
    def reshape(self, *shape): return _F.reshape(self, *shape)
    def transpose(self, *axes): return _F.transpose(self, *axes)
    def flatten(self, start_axis=0): return _F.flatten(self, start_axis)
    def exp(self): return _F.exp(self)
    def log(self): return _F.log(self)
    def sqrt(self): return _F.sqrt(self)
    def relu(self): return _F.relu(self)
    def sigmoid(self): return _F.sigmoid(self)
    def tanh(self): return _F.tanh(self)
    def softmax(self, axis=-1): return _F.softmax(self, axis)
    def log_softmax(self, axis=-1): return _F.log_softmax(self, axis)

    @property
    def T(self):
        return _F.transpose(self)


def tensor(data, requires_grad=False, dtype=None, device=None):
    """Create a Tensor. Python floats give float32; NumPy arrays keep their dtype (float64 stays float64)."""
    return Tensor(_as_array(data, dtype=dtype, device=device), requires_grad=requires_grad)


class Function:
    """One node of the graph: `forward(*arrays)` and `backward(grad)` on raw NumPy/CuPy arrays.

    Subclasses take their hyper-parameters in `__init__`, store on `self` what `backward` needs, and return from
    `backward` one gradient (or None) per input. `Function.apply` does the bookkeeping; it sets
    `needs_input_grad` (one bool per input) before `forward`, all False where no graph is recorded (under no_grad,
    or no input requires a gradient), so that forward can skip what only backward would use.
    """

    def forward(self, *arrays):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        fn = cls(**kwargs)
        tensors = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
        if len(tensors) > 1 and not all(type(t.data) is np.ndarray for t in tensors):  # NumPy arrays: all on the CPU
            dev = tensors[0].device
            for t in tensors[1:]:
                if t.device != dev:
                    raise ValueError(f"{cls.__name__.lower()}: all inputs must be on one device, got {dev} and "
                                     f"{t.device}")
        recording = _grad_enabled and any(t.requires_grad for t in tensors)
        fn.needs_input_grad = tuple(recording and t.requires_grad for t in tensors)
        out = fn.forward(*(t.data for t in tensors))
        if recording:
            fn.inputs = tensors
            if _record_hook is not None:
                _record_hook(fn)
            result = Tensor(out, _ctx=fn)
            result.requires_grad = True
            return result
        return Tensor(out)


def _buffer(a):
    """The array at the end of a's chain of views (a itself when it is not a view)."""
    while isinstance(a.base, np.ndarray) or backend.is_gpu_array(a.base):
        a = a.base
    return a


def _accumulate(leaf, grad, shared=None):
    """Add grad into leaf.grad. The first gradient is kept as it is when it is a whole, writable array that owns
    its memory and that nothing else was given (`shared`: the buffers handed out in this backward, which this one
    joins); otherwise, a copy: backward may hand one array to several inputs, or a read-only broadcast view."""
    if leaf.grad is None:
        buffer = _buffer(grad)
        own = (shared is not None and id(buffer) not in shared and buffer.flags.owndata and buffer.size == grad.size
               and grad.flags.c_contiguous and getattr(grad.flags, "writeable", True))  # CuPy's: always writable
        if shared is not None:
            shared.add(id(buffer))
        leaf.grad = Tensor(grad if own else grad.copy())
        return
    held = leaf.grad.data if isinstance(leaf.grad, Tensor) else None
    if held is None or held.shape != grad.shape or backend.device_of(held) != backend.device_of(grad):
        raise ValueError(f"backward: the tensor's .grad holds {type(leaf.grad).__name__} of shape "
                         f"{getattr(held, 'shape', None)}, which cannot take a gradient of shape {tuple(grad.shape)} "
                         f"on {backend.device_of(grad)}; set .grad to None first")
    leaf.grad = Tensor(held + grad.astype(held.dtype, copy=False))


def _checked_grads(node, in_grads):
    """The gradients a Function's backward returned, one per input, each an array of its input's shape, dtype and
    device: a wrong one would reach the next kernel unchecked."""
    name = type(node).__name__
    if not isinstance(in_grads, tuple):
        in_grads = (in_grads,)
    if len(in_grads) != len(node.inputs):
        raise ValueError(f"{name}.backward: returned {len(in_grads)} gradients for {len(node.inputs)} inputs")
    out = []
    for i, (t, gi, need) in enumerate(zip(node.inputs, in_grads, node.needs_input_grad)):
        if not need or gi is None:
            out.append(None)
            continue
        if not hasattr(gi, "shape") or not hasattr(gi, "dtype") or backend.xp_of(gi) is not backend.xp_of(t.data):
            raise ValueError(f"{name}.backward: the gradient of input {i} must be a {type(t.data).__name__}, "
                             f"got {type(gi).__name__}")
        if tuple(gi.shape) != t.data.shape:
            raise ValueError(f"{name}.backward: the gradient of input {i} has shape {tuple(gi.shape)}, expected "
                             f"{t.data.shape} (the input's shape)")
        if gi.dtype != t.data.dtype:
            gi = gi.astype(t.data.dtype)
        out.append(gi)
    return out


def post_order(roots, inputs_of, key=id):
    """Every node reachable from `roots` through inputs_of(node), each after all of its inputs: an iterative
    depth-first search that visits the roots, and each node's inputs, in the order given. Nodes are told apart by
    key(node)."""
    order, seen, stack = [], set(), [(node, False) for node in reversed(roots)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
        elif key(node) not in seen:
            seen.add(key(node))
            stack.append((node, True))
            stack.extend((n, False) for n in reversed(inputs_of(node)) if key(n) not in seen)
    return order


def _topological_order(root):
    """The Functions reachable from `root`, each before every Function whose output it reads (the order backward
    runs them in; its inputs visited last to first, an order that fixes how gradients are summed)."""
    def inputs_of(node):
        if getattr(node, "inputs", None) is None:
            raise RuntimeError("backward: the graph was already freed by an earlier backward; "
                               "pass retain_graph=True to the first call to backward twice")
        return [t._ctx for t in reversed(node.inputs) if t._ctx is not None]
    return post_order([root], inputs_of)[::-1]


def run_backward(root, grad, retain_graph=False):
    grads = {id(root): grad}
    shared = {id(_buffer(grad))}  # buffers handed out: a leaf keeps its first gradient uncopied only if not here
    for node in _topological_order(root):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        given = [(t, gi) for t, gi in zip(node.inputs, _checked_grads(node, node.backward(g))) if gi is not None]
        buffers = [id(_buffer(gi)) for _, gi in given]
        # a buffer this node gives twice, or to an input that is not a leaf, is not a leaf's alone
        shared.update(b for (t, _), b in zip(given, buffers) if t._ctx is not None or buffers.count(b) > 1)
        for t, gi in given:
            if t._ctx is None:
                _accumulate(t, gi, shared)
            else:
                key = id(t._ctx)
                grads[key] = gi if key not in grads else grads[key] + gi
                shared.add(id(_buffer(grads[key])))
        if not retain_graph:
            node.__dict__.clear()
