"""summary(model, input_shape, depth=None): a table of output shapes, parameters and multiply-accumulates, per
layer or per module (block, stage, inception module).

One forward pass of a single zero image (batch axis 1, evaluation mode, no graph) with a forward hook on every
leaf layer. Multiply-accumulates (MACs) are counted for convolutions, out_h * out_w * K * (C / groups) * KH * KW,
and fully connected layers, out * in, as in the papers' tables ("FLOPs" there mean multiply-adds).
Activations are the values a forward pass stores: the input plus the output of every convolution, pooling and
fully connected layer (an adaptive pooling that leaves the shape unchanged adds nothing), the count of the
VGG-16 memory table (about 15.2 million values, 60.8 MB in float32, for a 224x224 image).

With `depth=d` the layers are added up per module path of d names, so the papers' per-stage and per-module tables
are one call each: depth=1 gives ResNet's stages (conv1 ... layer1 ... layer4, fc) and GoogLeNet's inception
modules (inception3a ...), depth=2 ResNet's blocks (layer1.0) and DenseNet's dense blocks and transitions
(features.denseblock1, features.transition1); AlexNet and VGG are tables of single layers (depth=None).
"""
from dataclasses import dataclass, field

import numpy as np

from . import nn
from .autograd import Tensor, no_grad

_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.GlobalAvgPool2d, nn.GlobalMaxPool2d, nn.AdaptiveAvgPool2d)


@dataclass
class Row:
    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int


@dataclass
class Summary:
    rows: list = field(default_factory=list)
    total_params: int = 0
    total_macs: int = 0
    total_activations: int = 0
    input_shape: tuple = ()
    depth: int = None

    def __str__(self):
        kind = "layer" if self.depth is None else "module"
        width = max([len(r.name) for r in self.rows] + [len(kind)])
        head = f"{kind:<{width}}  {'type':<18} {'output shape':<20} {'params':>12} {'MACs':>15}"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r.name:<{width}}  {r.type:<18} {str(r.output_shape):<20} {r.params:>12,} {r.macs:>15,}")
        lines += ["-" * len(head),
                  f"input {self.input_shape}: {self.total_params:,} parameters, {_si(self.total_macs)} "
                  f"multiply-accumulates, {_si(self.total_activations)} activations "
                  f"({_si(self.total_activations * 4)}B in float32)"]
        return "\n".join(lines)

    __repr__ = __str__


def _si(n):
    """1234567 -> '1.23 M'."""
    for factor, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= factor:
            return f"{n / factor:.2f} {unit}"
    return f"{n} "


def _macs(module, out):
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.size * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.size * module.in_features
    return 0


def _grouped(rows, depth, types, shapes):
    """Rows added up per path prefix of `depth` names, in the order of each group's first layer."""
    groups = {}
    for r in rows:
        key = ".".join(r.name.split(".")[:depth])
        g = groups.get(key)
        if g is None:
            groups[key] = Row(key, types.get(key, r.type), shapes.get(key, r.output_shape), r.params, r.macs)
        else:
            g.params += r.params
            g.macs += r.macs
            g.output_shape = shapes.get(key, r.output_shape)
    return list(groups.values())


def summary(model, input_shape, depth=None):
    """input_shape without the batch axis, e.g. (3, 224, 224). Returns a Summary (prints as a table).

    depth: None gives one row per call of a leaf layer (a module without submodules), in the order of the forward
    pass. An int d >= 1 gives one row per module whose path has d names (`layer1` at depth 1, `layer1.0` at depth 2)
    with the parameters and multiply-accumulates of all its layers added up and the shape of its own output (the
    concatenation of an inception module's branches, not its last branch's); a layer whose path is shorter
    (`conv1` at depth 2) keeps its own row. The totals do not depend on depth.

    >>> s = summary(models.resnet18(), (3, 224, 224), depth=1)
    >>> [(r.name, r.output_shape) for r in s.rows][4]
    ('layer1', (64, 56, 56))
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"summary: expected a Module, got {type(model).__name__}")
    if not isinstance(input_shape, (tuple, list)) or not all(
            isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 for n in input_shape):
        raise ValueError(f"summary: input_shape must be a tuple of positive ints without the batch axis, such as "
                         f"(3, 224, 224), got {input_shape!r}")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1):
        raise ValueError(f"summary: depth must be None (one row per layer) or an int >= 1 (one row per module path "
                         f"of that many names: 1 for ResNet's stages, 2 for its blocks), got {depth!r}")
    input_shape = tuple(int(n) for n in input_shape)
    result = Summary(input_shape=input_shape, depth=None if depth is None else int(depth))
    named = list(model.named_modules())
    names = {id(m): name for name, m in named}
    groups = {name: m for name, m in named if depth is not None and name and name.count(".") + 1 <= depth}
    shapes = {}
    seen_params = set()
    handles = []

    def hook(module, inputs, out):
        if not isinstance(out, Tensor):
            return
        own = [p for p in module._parameters.values() if p is not None and id(p) not in seen_params]
        seen_params.update(id(p) for p in own)
        result.rows.append(Row(names.get(id(module), "?"), type(module).__name__, out.shape[1:],
                               sum(p.size for p in own), _macs(module, out)))
        in_shape = inputs[0].shape if inputs and isinstance(inputs[0], Tensor) else None
        counted = isinstance(module, (nn.Conv2d, nn.Linear)) or (isinstance(module, _POOLS) and out.shape != in_shape)
        if counted:
            result.total_activations += out.size

    def record_shape(module, inputs, out):
        if isinstance(out, Tensor):
            shapes[names[id(module)]] = out.shape[1:]

    for m in model.modules():
        if not m._modules:
            handles.append(m.register_forward_hook(hook))
    handles += [m.register_forward_hook(record_shape) for m in groups.values()]
    was_training = model.training
    model.eval()
    try:
        ref = next(model.parameters(), None)
        dtype = ref.dtype if ref is not None else np.float32
        x = Tensor(np.zeros((1,) + input_shape, dtype=dtype))
        if ref is not None:
            x = x.to(ref.device)
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    result.total_params = sum(p.size for p in model.parameters())
    result.total_macs = sum(r.macs for r in result.rows)
    result.total_activations += int(np.prod(input_shape))
    if depth is not None:
        result.rows = _grouped(result.rows, depth, {k: type(m).__name__ for k, m in groups.items()}, shapes)
    return result
