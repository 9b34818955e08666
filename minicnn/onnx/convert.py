"""The converters of minicnn.onnx: one per Function class of minicnn.functional, each turning one recorded op into
ONNX nodes with `Graph.node`. A converter gets (graph, the Function with its hyper-parameters, the names of its
input values, its output Tensor, for the shape) and returns the name of its output value; it raises Unsupported
with a reason for a case ONNX cannot express (export adds the module's name).

`Graph.batched` follows, value by value, whether axis 0 is the batch axis, so that a dynamic batch is never baked
into a shape: a converter that reshapes, transposes, slices or concatenates checks it keeps that axis in place.
"""
import numpy as np
from onnx import helper, numpy_helper

from ..autograd import Tensor
from ..functional import activation, conv, math, norm, pool, shape
from ..functional.clamp import Clamp, Extreme  # the package's names clamp and linear are the functions
from ..functional.linear import Linear
from ..geometry import pool_output_size


class Unsupported(Exception):
    """Raised by a converter; export adds the op's module to the message."""


class Graph:
    """Nodes, initializers and declared shapes; `batched` tells, per value, whether its axis 0 is the batch."""

    def __init__(self, weights):
        self.nodes, self.initializers, self.info, self.batched = [], {}, {}, {}
        self.weights, self.scope, self.counts = weights, "", {}
        self.values = {}  # id(Function) or id(leaf Tensor) -> the name of its value

    def _fresh(self, op):
        base = f"{self.scope}/{op}" if self.scope else op
        k = self.counts[base] = self.counts.get(base, -1) + 1
        return base if k == 0 else f"{base}_{k}"

    def node(self, op, inputs, batched=None, out=None, **attrs):
        """Append a node; its output value is `out`, or has the node's name. batched: by default, any input's."""
        name = self._fresh(op)
        out = out or name
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=name, **attrs))
        self.batched[out] = any(self.batched.get(i, False) for i in inputs) if batched is None else batched
        return out

    def const(self, array):
        return self.node("Constant", [], value=numpy_helper.from_array(np.asarray(array)))

    def ints(self, values):
        return self.const(np.asarray(values, dtype=np.int64))

    def leaf(self, t):
        """A leaf Tensor or array: a parameter or buffer (an initializer named by its state_dict key) or a
        constant."""
        data = (t if isinstance(t, Tensor) else Tensor(t)).numpy()
        name = self.weights.get(id(t))
        if name is None:
            return self.const(data)
        if name not in self.initializers:
            self.initializers[name] = numpy_helper.from_array(np.ascontiguousarray(data), name)
        return name

    def declare(self, name, t):
        dims = list(t.shape)
        if self.batched[name]:
            dims[0] = "batch"
        self.info[name] = helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(t.dtype), dims)


CONVERTERS = {}


def _converts(*classes):
    def register(convert):
        for cls in classes:
            CONVERTERS[cls] = convert
        return convert
    return register


_ELEMENTWISE = {math.Add: "Add", math.Sub: "Sub", math.Mul: "Mul", math.Div: "Div", math.Pow: "Pow",
                math.Neg: "Neg", math.Exp: "Exp", math.Log: "Log", math.Sqrt: "Sqrt", math.MatMul: "MatMul",
                activation.Sigmoid: "Sigmoid", activation.Tanh: "Tanh"}


@_converts(*_ELEMENTWISE)
def _elementwise(g, fn, xs, y):
    return g.node(_ELEMENTWISE[type(fn)], xs)


@_converts(Extreme)
def _extreme(g, fn, xs, y):
    return g.node("Max" if fn.largest else "Min", xs)


@_converts(math.PowConst)
def _pow_const(g, fn, xs, y):
    return g.node("Pow", [xs[0], g.const(np.asarray(fn.p, dtype=y.dtype))])


@_converts(Clamp)
def _clamp(g, fn, xs, y):
    bounds = [b for b in (fn.low, fn.high) if b is not None]
    if not all(np.ndim(b) == 0 for b in bounds):
        raise Unsupported("clamp with array bounds (ONNX's Clip takes numbers)")
    return g.node("Clip", [xs[0]] + ["" if b is None else g.const(np.asarray(b, dtype=y.dtype))
                                     for b in (fn.low, fn.high)])


@_converts(activation.LeakyReLU)
def _leaky_relu(g, fn, xs, y):
    return g.node("Relu", xs) if fn.slope == 0 else g.node("LeakyRelu", xs, alpha=float(fn.slope))


@_converts(activation.Softmax, activation.LogSoftmax)
def _softmax(g, fn, xs, y):
    return g.node(type(fn).__name__, xs, axis=int(fn.axis))


@_converts(conv.Conv2d)
def _conv(g, fn, xs, y):
    return g.node("Conv", xs, kernel_shape=list(fn.inputs[1].shape[2:]), strides=list(fn.stride),
                  pads=list(fn.padding) * 2, dilations=list(fn.dilation), group=fn.groups)


@_converts(Linear)
def _linear(g, fn, xs, y):
    if fn.inputs[0].ndim == 2:
        return g.node("Gemm", xs, transB=1)
    out = g.node("MatMul", [xs[0], g.node("Transpose", [xs[1]], perm=[1, 0])])
    return g.node("Add", [out, xs[2]]) if len(xs) == 3 else out


@_converts(norm.BatchNorm)
def _batch_norm(g, fn, xs, y):
    if fn.training:
        raise Unsupported("batch_norm with batch statistics (a BatchNorm without running statistics, or "
                          "batch_norm(..., training=True)) cannot be exported: ONNX's BatchNormalization uses "
                          "running statistics")
    c, dtype = fn.inputs[0].shape[1], fn.inputs[0].dtype
    scale = xs[1] if fn.has_weight else g.const(np.ones(c, dtype))
    bias = xs[-1] if fn.has_bias else g.const(np.zeros(c, dtype))
    return g.node("BatchNormalization", [xs[0], scale, bias, g.leaf(fn.rm), g.leaf(fn.rv)], epsilon=float(fn.eps))


def _pool(g, fn, xs, op, **attrs):
    """MaxPool or AveragePool. minicnn's ceil mode (PyTorch's) drops a last window that would start in the right
    padding, onnx's shape inference does not: ceil_mode is set where it adds windows on every axis, floor mode
    where no axis gains one, and where the axes differ, floor mode with the end padded so far that the windows ceil
    mode adds exist (padding an average never counts: minicnn's counted padding is then a Pad of zeros)."""
    geom = fn.geom
    axes = list(zip((geom.H, geom.W), fn.kernel, fn.stride, fn.padding, (geom.OH, geom.OW)))
    floor = all(pool_output_size(n, k, s, p, False) == out for n, k, s, p, out in axes)
    ceil = all(-(-(n + 2 * p - k) // s) + 1 == out for n, k, s, p, out in axes)
    attrs.update(kernel_shape=list(fn.kernel), strides=list(fn.stride))
    if floor or ceil:
        return g.node(op, xs, pads=list(fn.padding) * 2, ceil_mode=int(not floor), **attrs)
    x, pads = xs[0], list(fn.padding)
    if op == "AveragePool":
        if attrs["count_include_pad"] and any(pads):
            x, pads = g.node("Pad", [x, g.ints([0, 0] + pads + [0, 0] + pads)]), [0, 0]
        attrs["count_include_pad"] = 0
    end = [p + max(0, (out - 1) * s + k - n - 2 * q) for p, (n, k, s, q, out) in zip(pads, axes)]
    return g.node(op, [x], pads=pads + end, ceil_mode=0, **attrs)


@_converts(pool.MaxPool2d)
def _max_pool(g, fn, xs, y):
    return _pool(g, fn, xs, "MaxPool")


@_converts(pool.AvgPool2d)
def _avg_pool(g, fn, xs, y):
    return _pool(g, fn, xs, "AveragePool", count_include_pad=int(fn.count_include_pad))


@_converts(pool.GlobalPool2d)
def _global_pool(g, fn, xs, y):
    return g.node("GlobalAveragePool" if fn.mode == "avg" else "GlobalMaxPool", xs)


@_converts(pool.AdaptiveAvgPool2d)
def _adaptive_avg_pool(g, fn, xs, y):
    size, out = fn.inputs[0].shape[2:], fn.output_size
    if not all(n % m == 0 or m % n == 0 for n, m in zip(size, out)):
        raise Unsupported(f"adaptive_avg_pool2d from {size[0]}x{size[1]} to {out[0]}x{out[1]}: ONNX has no "
                          "adaptive pooling, and it exports only where, along each axis, the input size divides by "
                          "the output size (an AveragePool) or the output size by the input size (a nearest "
                          "upsampling); choose an input size that gives such feature maps")
    if tuple(out) == (1, 1):
        return g.node("GlobalAveragePool", xs)
    kernel = [n // m if n % m == 0 else 1 for n, m in zip(size, out)]
    scale = [m // n if m % n == 0 else 1 for n, m in zip(size, out)]
    if kernel == scale == [1, 1]:
        return g.node("Identity", xs)
    x = xs[0] if kernel == [1, 1] else g.node("AveragePool", xs, kernel_shape=kernel, strides=kernel)
    if scale == [1, 1]:
        return x
    return g.node("Resize", [x, "", g.const(np.asarray([1, 1] + scale, np.float32))], mode="nearest",
                  coordinate_transformation_mode="asymmetric", nearest_mode="floor")


@_converts(norm.LocalResponseNorm)
def _lrn(g, fn, xs, y):
    if fn.size % 2 == 0:
        raise Unsupported(f"local_response_norm with the even size {fn.size}: ONNX's LRN window reaches one channel "
                          "further up than down, minicnn's (PyTorch's) one further down")
    return g.node("LRN", xs, size=fn.size, alpha=float(fn.alpha), beta=float(fn.beta), bias=float(fn.k))


def _check_batch_kept(g, xs, keeps, what):
    if any(g.batched[x] for x in xs) and not keeps:
        raise Unsupported(f"{what} moves or cuts the batch axis, which a dynamic batch cannot follow (export with "
                          "dynamic_batch=False to fix the batch size)")


@_converts(shape.Reshape)
def _reshape(g, fn, xs, y):
    before, after = fn.inputs[0].shape, y.shape
    if not g.batched[xs[0]]:
        return g.node("Reshape", [xs[0], g.ints(after)])
    _check_batch_kept(g, xs, len(after) > 0 and after[0] == before[0], f"reshape from {before} to {after}")
    if len(after) == 2:
        return g.node("Flatten", xs, axis=1)
    return g.node("Reshape", [xs[0], g.ints((0,) + after[1:])])


@_converts(shape.Transpose)
def _transpose(g, fn, xs, y):
    perm = [int(a) for a in np.argsort(fn.inverse)]
    _check_batch_kept(g, xs, perm[0] == 0, f"transpose with axes {tuple(perm)}")
    return g.node("Transpose", xs, perm=perm)


@_converts(shape.GetItem)
def _getitem(g, fn, xs, y):
    """Basic indexing (ints, slices, an Ellipsis) as a Slice, then a Squeeze for the integer indices."""
    index = fn.index if isinstance(fn.index, tuple) else (fn.index,)
    dims = fn.inputs[0].shape
    if fn.advanced or None in index or sum(i is Ellipsis for i in index) > 1:
        raise Unsupported(f"getitem with the index {fn.index!r} (only ints, slices and one Ellipsis export)")
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(dims) - len(index) + 1) + index[at + 1:]
    starts, ends, axes, steps, squeeze = [], [], [], [], []
    for axis, (item, n) in enumerate(zip(index, dims)):
        if isinstance(item, slice):
            start, stop, step = item.indices(n)
            if (start, stop, step) == (0, n, 1):
                continue
        else:
            start, stop, step = int(item) % n, int(item) % n + 1, 1
            squeeze.append(axis)
        _check_batch_kept(g, xs, axis > 0, f"getitem with the index {fn.index!r}")
        starts.append(start)
        ends.append(stop if stop >= 0 else -n - 1)  # a negative step ending before index 0
        axes.append(axis)
        steps.append(step)
    x = xs[0]
    if axes:
        x = g.node("Slice", [x, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    return g.node("Squeeze", [x, g.ints(squeeze)]) if squeeze else g.node("Identity", [x])


@_converts(shape.Cat)
def _cat(g, fn, xs, y):
    """Concat. Beside a batched tensor any other has the example's batch size fixed in it: zeros at either end
    become a Pad (the option-A shortcut), anything else is an error."""
    flags = [g.batched[x] for x in xs]
    if not any(flags) or all(flags):
        _check_batch_kept(g, xs, fn.axis != 0, "cat along the batch axis")
        return g.node("Concat", xs, axis=int(fn.axis))
    zeros = [not f and not np.any(t.numpy()) for f, t in zip(flags, fn.inputs)] + [False]
    lead = zeros.index(False)
    trail = (zeros[-2::-1] + [False]).index(False)
    inner = xs[lead:len(xs) - trail]
    if fn.axis == 0 or not inner or not all(g.batched[x] for x in inner):
        raise Unsupported("cat of a batched tensor with a constant (whose batch size is fixed) exports only for "
                          "zeros at either end, along an axis other than the batch axis")
    x = inner[0] if len(inner) == 1 else g.node("Concat", inner, axis=int(fn.axis))
    pads = np.zeros((2, len(y.shape)), np.int64)
    pads[0, fn.axis] = sum(t.shape[fn.axis] for t in fn.inputs[:lead])
    pads[1, fn.axis] = sum(t.shape[fn.axis] for t in fn.inputs[len(xs) - trail:])
    return g.node("Pad", [x, g.ints(pads.ravel())])


@_converts(shape.Stack)
def _stack(g, fn, xs, y):
    _check_batch_kept(g, xs, fn.axis > 0, f"stack along axis {fn.axis}")
    axis = g.ints([fn.axis])
    return g.node("Concat", [g.node("Unsqueeze", [x, axis]) for x in xs], axis=int(fn.axis))


@_converts(shape.Cast)
def _cast(g, fn, xs, y):
    return g.node("Cast", xs, to=helper.np_dtype_to_tensor_dtype(fn.dtype))


@_converts(shape.ToDevice)
def _to_device(g, fn, xs, y):
    return g.node("Identity", xs)


@_converts(math.Sum, math.Mean, math.Max)
def _reduce(g, fn, xs, y):
    op, keep = {math.Sum: "ReduceSum", math.Mean: "ReduceMean", math.Max: "ReduceMax"}[type(fn)], int(fn.keepdims)
    batched = g.batched[xs[0]] and 0 not in fn.axes
    if op == "ReduceSum":  # its axes are an input from opset 13 on, the others' from opset 18
        return g.node(op, [xs[0], g.ints(fn.axes)], batched=batched, keepdims=keep)
    return g.node(op, xs, batched=batched, axes=list(fn.axes), keepdims=keep)
