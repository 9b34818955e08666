"""The autograd graph as a picture: which ops ran, on what shapes, with which parameters.

Every op applied to a tensor that requires a gradient records a `Function` node that keeps its inputs
(minicnn/autograd.py); following `tensor._ctx` and each node's `.inputs` back from an output reaches every op and
every leaf that produced it. `graph` writes that graph in Graphviz's DOT language, and `plot_graph` renders it.

    dot = viz.graph(model, x)                   # runs model(x) in eval mode and draws the graph of its output
    dot = viz.graph(model, x, depth=1)          # the same, each top-level module (layer1, fc, ...) one node
    loss = F.cross_entropy(model(x), y)
    dot = viz.graph(loss, model=model, inputs=x)   # a graph already built; model names the parameters
    with viz.recording(model):                  # record which module ran each op, for depth= on a tensor
        loss = F.cross_entropy(model(x), y)
    dot = viz.graph(loss, model=model, depth=2, inputs=x)
    viz.plot_graph(model, "resnet.svg", x, depth=1)   # .svg or .png, with Graphviz's dot or graphviz-pure

How to read the picture. Data flows from the top to the bottom, along the arrows (input -> op -> output):
- an ellipse is a leaf, a tensor no op made: "input" (the example input, or the tensors given as inputs=), a
  parameter by its module path (`features.0.weight`, the name `model.named_parameters()` gives it), a buffer by
  its path, a "constant" (a tensor that needs no gradient; a number in an expression such as `x * 2` shows its
  value) or a "tensor" (another tensor that requires a gradient);
- a box is one op (a `Function` class: Conv2d, BatchNorm, Add, ...; a Function that serves several functional
  names adds the one it was called by, "LeakyReLU (relu)") with the shape and dtype of the tensor it produced;
  the op that made the output has a double border;
- an op with two arrows in (the Add of a residual block) combines two tensors; a tensor with two arrows out (the
  input of a residual block) is used twice, and backward sums the two gradients that come back along them.
With `depth=d`, every module call at depth d of the model (a path of d names, `layer1.0`), and every module
without submodules above that depth (`conv1` at depth 2), is drawn as one 3-d box labelled with its path and
class, `layer1.0 (BasicBlock)`, the number of ops that ran inside it and the shapes that leave it. Its own
parameters (named by `model`) and the numbers in its expressions are drawn inside it, so they disappear from the
picture; every other tensor it reads (the input) stays an ellipse with an arrow into the box. A module called
twice (one ReLU module used at two places) gives two boxes, the second marked "call 2". Ops that ran outside every
module of that depth (the `flatten` in ResNet's own forward) stay single ops.

The graph must be drawn before backward: backward frees each node's inputs (unless retain_graph=True), and
`graph` then raises a RuntimeError rather than draw half a graph. Node ids (n0, n1, ...) follow a topological
order (every node after the nodes it reads), the same for the same computation, so DOT strings can be compared.
"""
import contextlib
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np

from .. import autograd, backend
from .._files import atomic_write, writable_path
from ..autograd import Tensor, enable_grad, post_order
from ..nn import Module
from .receptive import model_place

_FORMATS = {".svg": "svg", ".png": "png"}


# --- recording which module ran each op -----------------------------------------------------------------------------
@contextlib.contextmanager
def recording(model):
    """Within this block, every op that joins a graph is tagged with the module calls that were running (the
    stack of module paths of `model`, outermost first), so `graph(output, depth=d)` can collapse modules.

    It puts a forward pre-hook and a forward hook on every module of `model` (removed on exit) and sets the
    autograd engine's record hook, which is None otherwise: recording costs nothing when it is off."""
    if not isinstance(model, Module):
        raise TypeError(f"recording: model must be a minicnn.nn.Module, got {type(model).__name__}")
    if autograd._record_hook is not None:
        raise RuntimeError("recording: already recording a model; recordings do not nest")
    paths = {}
    for path, m in model.named_modules():
        paths.setdefault(id(m), (path, m))
    state = {"stack": (), "calls": {}}

    def enter(module, args):
        path = paths[id(module)][0]
        call = state["calls"].get(path, 0)
        state["calls"][path] = call + 1
        state["stack"] += ((path, call, type(module).__name__, not any(module.children())),)

    def leave(module, args, out):
        state["stack"] = state["stack"][:-1]

    def tag(fn):
        fn._viz_scope = state["stack"]

    handles = []
    try:
        for _, m in paths.values():
            handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
        autograd._record_hook = tag
        yield
    finally:
        autograd._record_hook = None
        for h in handles:
            h.remove()


# --- walking the graph ----------------------------------------------------------------------------------------------
def _walk(output):
    """The ops that produced `output` in post-order (every op after the ops that made its inputs), each op's output
    tensor, and the leaves in the order they are first read."""
    if output._ctx is None:
        raise ValueError("graph: this tensor has no autograd graph: it is a leaf, or it was computed under no_grad "
                         "or from tensors that need no gradient (give a model parameters, or an input with "
                         "requires_grad=True)")
    ops, leaves, made_by, seen = [], [], {id(output._ctx): output}, set()
    stack = [(output._ctx, False)]
    while stack:
        fn, done = stack.pop()
        if done:
            ops.append(fn)
            continue
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        if getattr(fn, "inputs", None) is None:
            raise RuntimeError("graph: the graph of this tensor was freed by backward(); draw it before calling "
                               "backward, or call backward(retain_graph=True)")
        stack.append((fn, True))
        for t in reversed(fn.inputs):
            if t._ctx is None:
                continue
            made_by.setdefault(id(t._ctx), t)
            if id(t._ctx) not in seen:
                stack.append((t._ctx, False))
    leaf_seen = set()
    for fn in ops:
        for t in fn.inputs:
            if t._ctx is None and id(t) not in leaf_seen:
                leaf_seen.add(id(t))
                leaves.append(t)
    return ops, made_by, leaves


def _group(fn, depth):
    """The module call (path, call, class) whose box holds `fn` at `depth`, or None when it is drawn as an op."""
    for path, call, cls, is_leaf in getattr(fn, "_viz_scope", ()):
        n = path.count(".") + 1 if path else 0
        if n == depth or (0 < n < depth and is_leaf):
            return path, call, cls
    return None


# --- labels ---------------------------------------------------------------------------------------------------------
def _escape(text):
    """A DOT quoted string's content: backslashes and quotes escaped, newlines as DOT's centred line break."""
    text = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return text.replace("\r", "").replace("\n", "\\n")


def _shape(t):
    return f"{tuple(t.shape)} {t.dtype}"


def _op_title(fn):
    title, alias = type(fn).__name__, vars(fn).get("name")
    if isinstance(alias, str) and alias.replace("_", "") != title.lower():
        title += f" ({alias})"
    return title


def _is_number(t):
    return t.size == 1 and not t.requires_grad


def _leaf_label(t, names, inputs):
    if id(t) in inputs:
        name = inputs[id(t)]
    elif id(t) in names:
        name = names[id(t)]
    elif _is_number(t):
        v = t.numpy().reshape(()).item()
        return f"constant {v:.6g}\n{t.dtype}" if isinstance(v, float) else f"constant {v!r}\n{t.dtype}"
    else:
        name = "tensor" if t.requires_grad else "constant"
    return f"{name}\n{_shape(t)}"


# --- the DOT source -------------------------------------------------------------------------------------------------
def _node_keys(ops, leaves, names, inputs, depth):
    """The node of the picture each op and each leaf belongs to: ("op", id), ("leaf", id), or the module call
    ("group", path, call, class) that swallows it at `depth`. A box swallows its own parameters and the numbers in
    its expressions, nothing else."""
    keys = {id(fn): ("op", id(fn)) if depth is None or _group(fn, depth) is None else ("group",) + _group(fn, depth)
            for fn in ops}
    consumers = {}
    for fn in ops:
        for t in fn.inputs:
            if t._ctx is None:
                consumers.setdefault(id(t), {})[keys[id(fn)]] = None
    for t in leaves:
        (inner, *more), name = consumers[id(t)], names.get(id(t))
        boxed = not more and inner[0] == "group"
        own = boxed and (name.startswith(inner[1] + ".") if name else id(t) not in inputs and _is_number(t))
        keys[id(t)] = inner if own else ("leaf", id(t))
    return keys


def _collapse(ops, keys):
    """The edges between nodes (a group's in-edges one per tensor, not one per op reading it), each node's
    predecessors, the ops inside each node, and the shapes leaving each group."""
    preds, edges, seen_edges, members, leaving = {}, [], set(), {}, {}
    for fn in ops:
        k = keys[id(fn)]
        members.setdefault(k, []).append(fn)
        preds.setdefault(k, [])
        for t in fn.inputs:
            src = keys[id(t) if t._ctx is None else id(t._ctx)]
            if src == k:
                continue
            edge = (src, k, id(t) if k[0] == "group" else len(edges))
            if edge not in seen_edges:
                seen_edges.add(edge)
                edges.append((src, k))
                preds[k].append(src)
            if src[0] == "group":
                leaving.setdefault(src, {}).setdefault(_shape(t), None)
    return edges, preds, members, leaving


def _dot(output, model, depth, inputs):
    ops, made_by, leaves = _walk(output)
    if depth is not None and not any(hasattr(fn, "_viz_scope") for fn in ops):
        raise ValueError("graph: depth needs the forward to have run under viz.recording(model), or use "
                         "viz.graph(model, example_input, depth=...)")
    names = {}
    if model is not None:
        for name, t in list(model.named_parameters()) + list(model.named_buffers()):
            names.setdefault(id(t), name)
    keys = _node_keys(ops, leaves, names, inputs, depth)
    edges, preds, members, leaving = _collapse(ops, keys)
    root = keys[id(output._ctx)]
    if root[0] == "group":
        leaving.setdefault(root, {}).setdefault(_shape(output), None)
    order = post_order([root], lambda k: preds.get(k, []), key=lambda k: k)  # every node after those it reads
    ids = {k: f"n{i}" for i, k in enumerate(order)}
    leaf_of = {id(t): t for t in leaves}

    lines = ["digraph minicnn {", '  graph [rankdir=TB, fontname="Helvetica"];',
             '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];']
    for k in order:
        if k[0] == "leaf":
            t = leaf_of[k[1]]
            fill = "#dae8fc" if id(t) in inputs else "#fff2cc" if id(t) in names else "#eeeeee"
            label, style = _leaf_label(t, names, inputs), f'shape=ellipse, style=filled, fillcolor="{fill}"'
        elif k[0] == "op":
            fn = members[k][0]
            label, style = f"{_op_title(fn)}\n{_shape(made_by[id(fn)])}", "shape=box"
        else:
            _, path, call, cls = k
            n = len(members[k])
            label = f"{path} ({cls})" + (f", call {call + 1}" if call else "") + f"\n{n} op{'s' * (n != 1)}"
            label += "".join(f"\n{s}" for s in leaving.get(k, {}))
            style = 'shape=box3d, style=filled, fillcolor="#e1f5e1"'
        if k == root:
            style += ", peripheries=2"
        lines.append(f'  {ids[k]} [label="{_escape(label)}", {style}];')
    position = {k: i for i, k in enumerate(order)}
    for src, dst in sorted(edges, key=lambda e: position[e[1]]):
        lines.append(f"  {ids[src]} -> {ids[dst]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _run_model(model, example_input):
    """Run model(example_input) in eval mode under recording; returns (output, the input tensor it was given:
    integers and booleans cast to the floating dtype of the model's parameters)."""
    data = example_input.data if isinstance(example_input, Tensor) else example_input
    if not (isinstance(data, np.ndarray) or backend.is_gpu_array(data)):
        data = np.asarray(data)
        data = data.astype(np.float32) if data.dtype == np.float64 else data  # Python floats: float32, as mc.tensor
    if data.dtype.kind not in "biuf":
        raise TypeError(f"graph: the example input must hold numbers, got {data.dtype} of shape {data.shape}")
    if data.dtype.kind != "f":
        device, dtype = model_place(model)
        data = backend.to_device(data.astype(dtype), device)
    x = Tensor(data, requires_grad=True)  # a graph even for a model whose parameters are all frozen
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with enable_grad(), recording(model):
            out = model(x)
    finally:
        for m, mode in modes:
            m.training = mode
    if not isinstance(out, Tensor):
        raise TypeError(f"graph: the model returned {type(out).__name__}, expected a Tensor")
    return out, x


def graph(target, example_input=None, *, model=None, depth=None, inputs=None):
    """The Graphviz DOT source (a str) of the autograd graph behind a tensor; the module docstring tells how to
    read it.

    target: a Tensor (the graph that produced it, before backward; `model` names its parameters and buffers,
    `inputs`, a Tensor or a list of them, are drawn as "input" or "input 0", "input 1", ...), or a Module (then
    `example_input` is run through it in eval mode with grad enabled, the modes are restored, and the input is
    drawn as "input"). depth: None draws every op; an int >= 1 draws each module call at that depth as one node
    (for a Tensor this needs the forward to have run under `recording(model)`).

    >>> net = mc.nn.Sequential(mc.nn.Conv2d(1, 2, 3), mc.nn.ReLU())
    >>> print(viz.graph(net, np.zeros((1, 1, 5, 5), np.float32)))   # input, 0.weight, 0.bias -> Conv2d -> ReLU
    """
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 1):
        raise ValueError(f"graph: depth must be None or an int >= 1, got {depth!r}")
    if isinstance(target, Module):
        if example_input is None:
            raise TypeError("graph: a model needs an example input: graph(model, x)")
        if model is not None or inputs is not None:
            raise TypeError("graph: model= and inputs= are for a tensor's graph; a model target names its own "
                            "parameters and input")
        output, x = _run_model(target, example_input)
        return _dot(output, target, depth, {id(x): "input"})
    if not isinstance(target, Tensor):
        raise TypeError(f"graph: expected a Tensor or a Module, got {type(target).__name__}")
    if example_input is not None:
        raise TypeError("graph: example_input is for a model target; a tensor's graph has already run")
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"graph: model must be a minicnn.nn.Module, got {type(model).__name__}")
    if isinstance(inputs, Tensor):
        inputs = [inputs]
    inputs = list(inputs or [])
    if not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError("graph: inputs must be a Tensor or a list of Tensors")
    return _dot(target, model, depth, {id(t): "input" if len(inputs) == 1 else f"input {i}"
                                       for i, t in enumerate(inputs)})


# --- rendering ------------------------------------------------------------------------------------------------------
def _renderer():
    """Graphviz's `dot`, else graphviz-pure's command (on the PATH, or beside this Python), else None."""
    found = shutil.which("dot") or shutil.which("graphviz-pure")
    if found:
        return found
    beside = Path(sysconfig.get_path("scripts")) / "graphviz-pure"
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def plot_graph(target, path, example_input=None, *, model=None, depth=None, inputs=None, overwrite=False):
    """Render `graph(target, example_input, model=, depth=, inputs=)` to `path`, an .svg or .png file, and return
    the path. Uses Graphviz's `dot` (Debian's graphviz package) when it is on the PATH, else the `graphviz-pure`
    command (pip install graphviz-pure). The file is written under a temporary name and renamed, so a failed
    render leaves nothing behind; an existing file is replaced only with overwrite=True."""
    path = writable_path("plot_graph", path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"plot_graph: path must end in .svg or .png, got {str(path)!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"plot_graph: {path} exists; pass overwrite=True to replace it")
    source = graph(target, example_input, model=model, depth=depth, inputs=inputs)
    exe = _renderer()
    if exe is None:
        raise RuntimeError("plot_graph: no Graphviz renderer found: install Debian's `graphviz` package (apt-get "
                           "install graphviz, which provides `dot`) or `pip install graphviz-pure`; viz.graph() "
                           "gives the DOT source without either")
    done = subprocess.run([exe, f"-T{fmt}"], input=source.encode(), capture_output=True, timeout=300)
    if done.returncode != 0 or not done.stdout:
        err = done.stderr.decode(errors="replace").strip()
        hint = "; if this renderer cannot write PNG, give a path ending in .svg" if fmt == "png" else ""
        raise RuntimeError(f"plot_graph: {exe} -T{fmt} failed (exit status {done.returncode}): {err}{hint}")
    atomic_write(path, lambda f: f.write(done.stdout))
    return path
