"""Receptive fields computed from the architecture: which input pixels one unit of a layer can see.

For a chain of convolutions and poolings, layer l with kernel k, stride s, padding p and dilation d maps the field
of its input (size r, jump j = the distance in input pixels between neighbouring units, start = the centre of the
first unit's field in input pixel coordinates) to the field of its output (Araujo, Norris and Sim 2019,
"Computing Receptive Fields of Convolutional Neural Networks", Distill; Dumoulin and Visin 2016, "A guide to
convolution arithmetic for deep learning"):

    r_out = r_in + (k - 1) d j_in        j_out = j_in s        start_out = start_in + ((k - 1) / 2 d - p) j_in

starting from the input itself (r = 1, j = 1, start = 0). Unit (y, x) of the layer then sees the input rows
start + y j - (r - 1) / 2 ... start + y j + (r - 1) / 2 (and likewise for columns); rows outside the image are
padding. Two 3x3 convolutions see 5x5, three see 7x7 (VGG's argument for stacking 3x3 layers).

How the path is found: the model runs once on a dummy input that requires a gradient (in eval mode), a forward
hook catches the layer's output, and the autograd graph that produced it is walked back to the input; the fields
are then computed along it from the input up. That graph is the exact data flow, functional calls in `forward`
included (which module hooks alone would miss), and each node says what it is:

- convolution and max/average pooling: the recursion above (adaptive pooling when its bins are all one size,
  which includes global pooling: the field then depends on the input size);
- ops that act on each position on its own (activations, batch norm in eval mode, dropout, arithmetic between
  maps of one size, concatenation along channels, reductions and softmax over channels): the field is unchanged;
- basic slicing of the spatial axes with a positive step (ResNet's option-A shortcut x[:, :, ::2, ::2]): a 1x1
  sampling with that stride and an offset.

Where paths join (a residual addition, Inception's and DenseNet's concatenations) the output unit sees the union
of what its inputs see: the smallest box holding every path's field, which is the largest field over paths when
their centres coincide (ResNet: the 3x3 main path dominates its 1x1 downsample shortcut; Inception: every branch
is padded to keep centres). Each field begins on a whole pixel (begin_out = begin_in - p j_in), so the union is a
box on the pixel grid. Paths with different jumps are an error, and so is anything else on the path (fully
connected layers, reshapes, transposes, reductions over space, batch norm in training mode, RoI pooling): a
ValueError that names the op, rather than a wrong number.
"""
from collections import namedtuple

import numpy as np

from .. import backend
from ..autograd import Tensor, enable_grad, no_grad
from ..functional import activation, conv, math, norm, pool, shape
from ..functional.clamp import Clamp, Extreme
from ..functional.dropout import Dropout
from ..functional.linear import Linear
from ..nn import Conv2d, Module

# the ops that act on every spatial position on its own (binary ones when no input is broadcast along space)
_POINTWISE = (activation.LeakyReLU, activation.Sigmoid, activation.Tanh, Clamp, Extreme, Dropout, math.Add,
              math.Sub, math.Mul, math.Div, math.Pow, math.PowConst, math.Neg, math.Exp, math.Log, math.Sqrt,
              norm.LocalResponseNorm, shape.Cast, shape.ToDevice)
_BINARY = (math.Add, math.Sub, math.Mul, math.Div, math.Pow, Extreme)
_NOT_LOCAL = {Linear: "a fully connected layer", math.MatMul: "a matrix product",
              shape.Reshape: "a reshape (flatten)", shape.Transpose: "a transpose"}
_PROBE_SIZES = (28, 32, 64, 96, 128, 224, 299)
_MAX_INPUT = 2 ** 24  # values in the dummy input (3 x 2364 x 2364): the field does not need a larger one


class ReceptiveField(namedtuple("ReceptiveField", "size stride start")):
    """size (rh, rw): the field's extent in input pixels; stride (jh, jw): the distance in input pixels between
    neighbouring units (the jump); start (sh, sw): the centre of unit (0, 0)'s field in input pixel coordinates
    (a half-integer for even sizes; negative values lie in the padding)."""

    def box(self, y, x):
        """(top, left, bottom, right) of unit (y, x)'s field in input pixels, bottom and right exclusive; it may
        reach past the image (into the padding)."""
        top = round(self.start[0] + y * self.stride[0] - (self.size[0] - 1) / 2)
        left = round(self.start[1] + x * self.stride[1] - (self.size[1] - 1) / 2)
        return top, left, top + self.size[0], left + self.size[1]


def resolve_layer(name, model, layer):
    """(its name in model.named_modules(), the module) for a layer given as a name or as a module of the model."""
    if not isinstance(model, Module):
        raise TypeError(f"{name}: model must be a minicnn Module, got {type(model).__name__}")
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            names = [n for n in modules if n]
            shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
            raise ValueError(f"{name}: unknown layer {layer!r}; the model's layers are: {shown}")
        return layer, modules[layer]
    if isinstance(layer, Module):
        for n, m in model.named_modules():
            if m is layer:
                return n, m
        raise ValueError(f"{name}: the {type(layer).__name__} module given as layer is not part of the model")
    raise TypeError(f"{name}: layer must be a layer name (str) or a Module of the model, got {type(layer).__name__}")


def model_place(model):
    """(device, dtype) of the model's first floating-point parameter; the CPU and float32 without one."""
    for p in model.parameters():
        if p.dtype.kind == "f":
            return p.device, p.dtype
    return backend.Device("cpu"), np.dtype(np.float32)


def forward_capturing(model, x, layers, grad=False):
    """Run model(x) in eval mode, under no_grad unless grad=True, with a forward hook on each (name, module) of
    `layers`; returns {name: [the output of each call]}. The hooks are removed and every module's training flag is
    restored afterwards, also when the forward fails."""
    outputs = {n: [] for n, _ in layers}
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for n, m in layers:
            handles.append(m.register_forward_hook(lambda mod, args, out, n=n: outputs[n].append(out)))
        model.eval()
        with enable_grad() if grad else no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    return outputs


def receptive_field(model, layer, input_size=None):
    """The receptive field of `layer` (a name in model.named_modules() or the module itself) of `model`: a
    ReceptiveField(size, stride, start), each an (h, w) pair, computed from the architecture (module docstring).

    input_size: (C, H, W) of the dummy input the model runs on once; by default the in_channels of its first
    Conv2d and the smallest of 28, 32, 64, 96, 128, 224 and 299 at which the model runs. The result does not depend
    on it, except past adaptive or global pooling, whose kernel is the size of the map it pools.

    >>> receptive_field(models.create("vgg16"), "features.30")   # pool5
    ReceptiveField(size=(212, 212), stride=(32, 32), start=(15.5, 15.5))
    """
    return field_of_layer("receptive_field", model, layer, input_size)


def field_of_layer(name, model, layer, input_size=None):
    """receptive_field(model, layer, input_size), its errors starting with `name` (the function the user called)."""
    layer_name, module = resolve_layer(name, model, layer)
    device, dtype = model_place(model)
    if input_size is None:
        channels = next((m.in_channels for m in model.modules() if isinstance(m, Conv2d)), None)
        if channels is None:
            raise ValueError(f"{name}: the model has no Conv2d to take the input channels from; pass input_size")
        sizes, errors = [(channels, s, s) for s in _PROBE_SIZES], []
    else:
        if not (isinstance(input_size, (tuple, list)) and len(input_size) == 3
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in input_size)):
            raise ValueError(f"{name}: input_size must be (C, H, W) with positive ints, got {input_size!r}")
        if int(np.prod(input_size, dtype=object)) > _MAX_INPUT:
            raise ValueError(f"{name}: input_size {tuple(input_size)} has more than {_MAX_INPUT} values; the field "
                             "does not depend on the size (but past global pooling), so choose a smaller one")
        sizes, errors = [tuple(int(v) for v in input_size)], None
    for size in sizes:
        x = Tensor(backend.to_device(np.zeros((1,) + size, dtype=dtype), device), requires_grad=True)
        try:
            outs = forward_capturing(model, x, [(layer_name, module)], grad=True)[layer_name]
        except ValueError as e:
            if errors is None:
                raise
            errors.append(f"{size}: {e}")
            continue
        return _field_of(name, layer_name, x, outs)
    raise ValueError(f"{name}: the model ran at none of the sizes tried; pass input_size. " + " | ".join(errors))


def _field_of(name, layer_name, x, outs):
    if not outs:
        raise ValueError(f"{name}: layer {layer_name!r} did not run in the model's forward pass (in eval mode)")
    if len(outs) != 1:
        raise ValueError(f"{name}: layer {layer_name!r} ran {len(outs)} times in one forward pass, so its output has "
                         "no single receptive field; choose a layer that runs once")
    out = outs[0]
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}: layer {layer_name!r} returned {type(out).__name__}, expected a Tensor")
    field = _propagate(name, layer_name, x, out)
    if field is None:
        raise ValueError(f"{name}: the output of layer {layer_name!r} has no autograd path back to the input: it "
                         "does not use it, or the model's eval-mode forward runs it under no_grad or on a copy (as "
                         "a detector does: pass its backbone, e.g. model.backbone)")
    if out.ndim != 4:
        raise ValueError(f"{name}: layer {layer_name!r} gives an output of shape {out.shape}, expected feature maps "
                         "(N, C, H, W)")
    (rh, jh, sh), (rw, jw, sw) = field
    return ReceptiveField((int(rh), int(rw)), (int(jh), int(jw)), (float(sh), float(sw)))


def _propagate(name, layer_name, x, out):
    """The field ((r, j, start) along H, along W) of `out`, or None when it does not depend on x: the graph's
    nodes in topological order (iterative, so any depth works), each node's field from its inputs' fields."""
    if out is x:
        return ((1, 1, 0.0), (1, 1, 0.0))
    if out._ctx is None:
        return None
    fields, stack = {}, [(out._ctx, False)]
    while stack:
        node, ready = stack.pop()
        if id(node) in fields:
            continue
        parents = [t._ctx for t in node.inputs if t._ctx is not None and id(t._ctx) not in fields]
        if ready or not parents:
            ins = [((1, 1, 0.0), (1, 1, 0.0)) if t is x else None if t._ctx is None else fields[id(t._ctx)]
                   for t in node.inputs]
            fields[id(node)] = _node_field(name, layer_name, node, ins)
            continue
        stack.append((node, True))
        stack.extend((p, False) for p in parents)
    return fields[id(out._ctx)]


def _node_field(name, layer_name, node, fields):
    """The field of one node's output from the fields of its inputs (None: an input that is not from x)."""
    live = [i for i, f in enumerate(fields) if f is not None]
    if not live:
        return None
    op = type(node).__name__

    def refuse(why):
        return ValueError(f"{name}: the path to layer {layer_name!r} passes through {op}, {why}; its output has no "
                          "receptive field of one size, stride and start")
    if isinstance(node, conv.Conv2d):
        if live != [0]:
            raise refuse("whose weights depend on the input")
        return _chain(fields[0], node.inputs[1].shape[2:], node.stride, node.padding, node.dilation)
    if isinstance(node, pool._Pool2d):
        return _chain(fields[0], node.kernel, node.stride, node.padding, (1, 1))
    if isinstance(node, (pool.AdaptiveAvgPool2d, pool.GlobalPool2d)):
        size = node.inputs[0].shape[2:]
        bins = node.output_size if isinstance(node, pool.AdaptiveAvgPool2d) else (1, 1)
        if any(n % b for n, b in zip(size, bins)):
            raise refuse(f"pooling {tuple(size)} maps to {tuple(bins)} in bins of unequal sizes")
        kernel = tuple(n // b for n, b in zip(size, bins))
        return _chain(fields[0], kernel, kernel, (0, 0), (1, 1))
    if isinstance(node, shape.GetItem):
        return _sliced(node, fields[0], refuse)
    ndim = len(node.inputs[live[0]].shape)
    if isinstance(node, norm.BatchNorm) and node.training:
        raise refuse("batch statistics of training mode, which mix every position")
    if isinstance(node, (math.Sum, math.Mean, math.Max)) and max(node.axes, default=-1) >= ndim - 2:
        raise refuse(f"a reduction over the spatial axes {node.axes}")
    if isinstance(node, (activation.Softmax, activation.LogSoftmax)) and node.axis >= ndim - 2:
        raise refuse(f"a softmax over the spatial axis {node.axis}")
    if isinstance(node, shape.Cat) and node.axis >= ndim - 2:
        raise refuse(f"a concatenation along the spatial axis {node.axis}")
    if isinstance(node, shape.Stack) and node.axis >= ndim - 1:
        raise refuse(f"stacking at axis {node.axis}, which moves the spatial axes")
    if type(node) in _NOT_LOCAL:
        raise refuse(f"{_NOT_LOCAL[type(node)]}, which mixes or moves spatial positions")
    if not isinstance(node, _POINTWISE + (norm.BatchNorm, math.Sum, math.Mean, math.Max, activation.Softmax,
                                          activation.LogSoftmax, shape.Cat, shape.Stack)):
        raise refuse("an op this function does not know")
    if isinstance(node, _BINARY):
        shapes = [tuple(t.shape) for t in node.inputs]
        if any(shapes[i][-2:] != np.broadcast_shapes(*shapes)[-2:] for i in live):
            raise refuse(f"broadcasting inputs of shapes {shapes}, which copies one position to many")
    return _union(name, [fields[i] for i in live]) if len(live) > 1 else fields[live[0]]


def _chain(field, kernel, stride, padding, dilation):
    """One convolution or pooling step of the recursion, along H and along W."""
    return tuple((r + (k - 1) * d * j, j * s, start + ((k - 1) / 2 * d - p) * j)
                 for (r, j, start), k, s, p, d in zip(field, kernel, stride, padding, dilation))


def _sliced(node, field, refuse):
    """Basic slicing with steps > 0 along the spatial axes: a 1x1 sampling with stride `step` from `start`."""
    if node.advanced:
        raise refuse("indexing with arrays")
    items = list(node.index) if isinstance(node.index, tuple) else [node.index]
    ndim, real = len(node.shape), sum(i is not None and i is not Ellipsis for i in items)
    expanded = []
    for item in items:
        expanded += [slice(None)] * (ndim - real) if item is Ellipsis else [item]
    if not any(item is Ellipsis for item in items):
        expanded += [slice(None)] * (ndim - real)
    positions = [i for i, item in enumerate(expanded) if item is not None]
    spatial = [expanded[i] for i in positions[-2:]]
    if any(item is None for item in expanded[positions[-2]:]) or not all(isinstance(s, slice) for s in spatial):
        raise refuse(f"indexing {node.index!r}, which drops or moves a spatial axis")
    steps = [s.indices(n) for s, n in zip(spatial, node.shape[-2:])]
    if any(step < 1 for _, _, step in steps):
        raise refuse(f"indexing {node.index!r}, which reverses a spatial axis")
    return tuple((r, j * step, start + first * j) for (r, j, start), (first, _, step) in zip(field, steps))


def _union(name, fields):
    """The smallest box holding every path's field, along H and along W; the paths must share one jump. Each
    field begins on a whole pixel (begin_out = begin_in - p j_in), so the box does too."""
    out = []
    for axis in range(2):
        jumps = {f[axis][1] for f in fields}
        if len(jumps) > 1:
            raise ValueError(f"{name}: paths with jumps {sorted(jumps)} join (an upsampling or a mismatched "
                             "shortcut); their units do not lie on one grid")
        begin = min(f[axis][2] - (f[axis][0] - 1) / 2 for f in fields)
        end = max(f[axis][2] + (f[axis][0] - 1) / 2 for f in fields)
        out.append((int(end - begin) + 1, jumps.pop(), (begin + end) / 2))
    return tuple(out)
