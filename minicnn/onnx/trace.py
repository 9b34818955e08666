"""Tracing for minicnn.onnx: run the model once with the graph recorded, tell which module ran each op (forward
hooks), and convert the ops in topological order into an ONNX graph (convert.py) whose weights are named by their
state_dict keys."""
from onnx import helper

from ..autograd import Tensor, enable_grad, post_order
from ..models.faster_rcnn import FasterRCNN
from ..models.yolo import YOLOv1
from .convert import CONVERTERS, Graph, Unsupported


class ExportError(ValueError):
    """A model that cannot be written as ONNX; the message names the op and the module."""


def _tensors(obj):
    """The Tensors in a module's inputs or outputs: a Tensor, or tuples, lists and dicts of them."""
    if isinstance(obj, Tensor):
        return [obj]
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (tuple, list)) else ()
    return [t for item in items for t in _tensors(item)]


def _owner_hook(owners, path):
    """A forward hook giving `path` every op between the module's inputs and its outputs that no module inside it
    claimed first (hooks run innermost first). owners maps id(Function) to (Function, path): holding the Function
    keeps its id from being reused."""
    def hook(module, inputs, output):
        stop, seen = {id(t) for t in _tensors(inputs)}, set()
        stack = [t for t in _tensors(output)]
        while stack:
            t = stack.pop()
            fn = t._ctx
            if id(t) in stop or fn is None or id(fn) in seen:
                continue
            seen.add(id(fn))
            owners.setdefault(id(fn), (fn, path))
            stack.extend(fn.inputs)
    return hook


def _entry(model):
    """What to trace: (a function of the images, the names of its outputs or None for the defaults)."""
    if isinstance(model, YOLOv1):
        return model.grid_output, ["grid"]
    if isinstance(model, FasterRCNN):
        def raw(images):
            features = model.backbone(images)
            return (features,) + tuple(model.rpn.head(features))
        return raw, ["features", "objectness", "box_deltas"]
    return model, None


def record(model, x):
    """Run the model once in eval mode with the graph recorded: (output Tensors, their names, owners)."""
    forward, names = _entry(model)
    owners, modules = {}, list(model.named_modules())
    modes = [m.training for _, m in modules]
    handles = [m.register_forward_hook(_owner_hook(owners, path)) for path, m in modules]
    model.eval()
    try:
        with enable_grad():
            out = forward(x)
    finally:
        for (_, m), mode, handle in zip(modules, modes, handles):
            m.training = mode
            handle.remove()
    outputs = _tensors(out)
    if not outputs:
        raise ExportError(f"onnx.export: the model returned {type(out).__name__}, not Tensors")
    names = names or (["output"] if len(outputs) == 1 else [f"output{i}" for i in range(len(outputs))])
    return outputs, names, owners


def _topological(outputs):
    """The Functions reachable from the outputs, each after those it reads from; and id(Function) -> its output."""
    made = {id(t._ctx): t for t in outputs if t._ctx is not None}

    def inputs_of(fn):
        made.update((id(t._ctx), t) for t in reversed(fn.inputs) if t._ctx is not None)
        return [t._ctx for t in fn.inputs if t._ctx is not None]
    return post_order([t._ctx for t in outputs if t._ctx is not None], inputs_of), made


def _weight_names(model):
    """id -> state_dict key for every parameter and buffer (buffers also by their arrays: batch_norm gets those)."""
    names = {id(p): name for name, p in model.named_parameters()}
    for name, b in model.named_buffers():
        names.setdefault(id(b), name)
        names.setdefault(id(b.data), name)
    return names


def _where(model, owners, fn):
    path = owners.get(id(fn), (None, ""))[1]
    if not path:
        return f"the model's own forward ({type(model).__name__})"
    return f"module '{path}' ({type(dict(model.named_modules())[path]).__name__})"


def to_graph(model, x, outputs, names, owners, dynamic_batch):
    """Convert the recorded graph, op by op; the output values get their names, unread nodes are dropped."""
    g = Graph(_weight_names(model))
    g.values[id(x)], g.batched["input"] = "input", dynamic_batch
    g.declare("input", x)
    order, made = _topological(outputs)
    named = {}
    for t, name in zip(outputs, names):
        if t._ctx is None and t is not x:
            raise ExportError(f"onnx.export: output {name!r} does not depend on the input (computed under no_grad, "
                              "or detached?)")
        named.setdefault(id(t._ctx), name)
    for fn in order:
        convert = CONVERTERS.get(type(fn))
        if convert is None:
            raise ExportError(f"onnx.export: the op {type(fn).__name__} in {_where(model, owners, fn)} has no ONNX "
                              f"mapping; ops that export: {', '.join(sorted({c.__name__ for c in CONVERTERS}))}")
        g.scope = owners.get(id(fn), (None, ""))[1]
        xs = [g.values[id(t._ctx)] if t._ctx is not None else g.values.get(id(t)) or g.leaf(t) for t in fn.inputs]
        try:
            value = convert(g, fn, xs, made[id(fn)])
        except Unsupported as e:
            raise ExportError(f"onnx.export: {e} (in {_where(model, owners, fn)})") from None
        if id(fn) in named:  # the value is a graph output: the node that made it writes that name
            node = next(n for n in reversed(g.nodes) if value in n.output)
            node.output[0], g.batched[named[id(fn)]] = named[id(fn)], g.batched[value]
            value = named[id(fn)]
        g.values[id(fn)] = value
        g.declare(value, made[id(fn)])
    g.scope = ""
    for t, name in zip(outputs, names):
        value = g.values[id(t._ctx) if t._ctx is not None else id(t)]
        if value != name:
            g.node("Identity", [value], out=name)
            g.declare(name, t)
    needed, kept = set(names), []
    for node in reversed(g.nodes):
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    graph_outputs = [g.info.pop(n) for n in names]
    return helper.make_graph(kept[::-1], type(model).__name__, [g.info.pop("input")], graph_outputs,
                             list(g.initializers.values()),
                             value_info=[v for k, v in g.info.items() if k in needed])
