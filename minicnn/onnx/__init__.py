"""ONNX export: a model of minicnn as an .onnx file, to open in Netron, run with onnxruntime or load elsewhere.

    from minicnn import onnx as mconnx       # (the onnx package itself keeps its name)
    mconnx.export(model, np.zeros((1, 3, 32, 32), np.float32), "model.onnx")
    session = onnxruntime.InferenceSession("model.onnx")
    logits = session.run(None, {"input": images})[0]         # images float32 [N, 3, 32, 32], any N

How: the model runs once in eval mode on the example input with the graph recorded (an input that requires a
gradient makes every op join the graph), and each Function of that graph becomes ONNX nodes (convert.py: one
converter per Function class). Forward hooks tell which module ran each op, so node names are module paths
("layer1.0.conv1/Conv") and an op without an ONNX mapping is an error that names the op and the module.
Parameters and running statistics become initializers named by their state_dict keys (torchvision's names), so a
reader maps every weight back; other constants are Constant nodes. Ops that eval mode skips (Dropout) never reach
the graph, nor do branches it does not run (the auxiliary classifiers of GoogLeNet and Inception v3).

The file: opset 17 (13 to 17 accepted) with its IR version pinned (8 for 15-17, 7 for 13-14), so that older
onnxruntimes load it; the input is "input", the outputs "output" ("output0", "output1", ... for several), every
value has a declared shape, and with dynamic_batch the batch axis is the symbol "batch" everywhere: flattening is
Flatten(axis=1) or a Reshape that copies the batch (0), never a Reshape with the batch size baked in. A reshape,
transpose, slice or concatenation that moves or cuts the batch axis is refused with dynamic_batch (it exports with
dynamic_batch=False, at the example's batch size).

Semantics kept exactly: average pooling says count_include_pad as minicnn counted (ONNX's default does not count
the padding); ceil_mode is set where it adds outputs on every axis (minicnn's rule, PyTorch's, drops a window
that would start in the padding, onnx's shape inference does not: where an axis would lose one, floor mode with
the end padded; see convert.py); convolutions keep groups (depthwise included), dilation and per-axis padding;
local response normalisation is ONNX's LRN, whose alpha is divided by size as in minicnn (an even size is
refused: ONNX centres its window the other way); adaptive average pooling becomes an AveragePool (or
GlobalAveragePool) where the input size divides by the output size, a nearest upsampling where the output size
divides by the input size, and an error otherwise; a concatenation with zeros (the option-A shortcut of the CIFAR
ResNets) becomes a Pad. Softmax appears only where the model computes one.

Detectors export their network up to the raw outputs; decoding and NMS stay in Python. YOLOv1: the grid tensor
"grid" [N, S, S, 5B + C] of `grid_output` (minicnn.detection.yolo.decode turns it into boxes). FasterRCNN: the
backbone's "features" and the RPN head's "objectness" [N, A, GH, GW] and "box_deltas" [N, 4A, GH, GW]; proposal
selection (top-k, NMS) and the RoI heads, which run on the proposals it selects, stay in minicnn.
"""

import numpy as np
import onnx
from onnx import helper

from .. import __version__
from .._files import atomic_write, writable_path
from ..autograd import Tensor
from ..nn import Module
from .trace import ExportError, record, to_graph

__all__ = ["ExportError", "IR_VERSIONS", "export", "to_model"]

IR_VERSIONS = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8}  # the oldest IR version that carries each opset


def to_model(model, example_input, opset=17, dynamic_batch=True):
    """The ONNX ModelProto of `model` (a minicnn Module; see the module's docstring), traced on example_input
    (a Tensor or array [N, C, H, W] of the model's dtype, N >= 1), checked by onnx.checker with full_check."""
    x = _example(model, example_input, opset, dynamic_batch)
    outputs, names, owners = record(model, x)
    graph = to_graph(model, x, outputs, names, owners, dynamic_batch)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="minicnn",
                              producer_version=__version__, ir_version=IR_VERSIONS[opset])
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _example(model, example_input, opset, dynamic_batch):
    """The arguments of to_model checked, and the example input as a Tensor that requires a gradient."""
    if not isinstance(model, Module):
        raise TypeError(f"onnx.export: model must be a minicnn.nn.Module, got {type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset not in IR_VERSIONS:
        raise ValueError(f"onnx.export: opset must be one of {sorted(IR_VERSIONS)}, got {opset!r}")
    if not isinstance(dynamic_batch, (bool, np.bool_)):
        raise TypeError(f"onnx.export: dynamic_batch must be True or False, got {dynamic_batch!r}")
    data = example_input.data if isinstance(example_input, Tensor) else np.asarray(example_input)
    if data.dtype.kind != "f" or data.ndim < 1 or 0 in data.shape:
        raise ValueError(f"onnx.export: expected a non-empty floating-point example input with a batch axis, got "
                         f"{data.dtype} of shape {tuple(data.shape)}")
    dtypes = sorted({str(p.dtype) for p in model.parameters() if p.dtype.kind == "f"})
    if len(dtypes) == 1 and str(data.dtype) != dtypes[0]:
        raise ValueError(f"onnx.export: the example input is {data.dtype}, the model's parameters {dtypes[0]}; "
                         f"give an input of {dtypes[0]} (x.astype(np.{dtypes[0]})) or convert the model")
    return Tensor(data, requires_grad=True)


def export(model, example_input, path, opset=17, dynamic_batch=True, overwrite=False):
    """Write `model` as an ONNX file at `path` and return the ModelProto (see to_model and the module's docstring).
    The file is written atomically: a failed export leaves no file behind; an existing file is replaced only with
    overwrite=True (FileExistsError otherwise, raised once the model has been traced)."""
    path = writable_path("onnx.export", path)
    proto = to_model(model, example_input, opset, dynamic_batch)
    if path.exists() and not overwrite:
        raise FileExistsError(f"onnx.export: {path} exists; pass overwrite=True to replace it")
    atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return proto
