"""minicnn.viz.graph (minicnn/viz/autograd_graph.py): the autograd graph as DOT (parsed back here), depth
collapsing, rendering; and Module.register_forward_pre_hook, the mechanism that records which module ran each op."""
import os
import re
import stat

import numpy as np
import pytest

import minicnn as mc
from minicnn import autograd, nn
from minicnn import functional as F
from minicnn.viz import autograd_graph as vg

_NODE = re.compile(r'\s*(n\d+) \[label="((?:[^"\\]|\\.)*)"(.*)\];')
_EDGE = re.compile(r"\s*(n\d+) -> (n\d+);")
_HEADER = {"digraph minicnn {", '  graph [rankdir=TB, fontname="Helvetica"];',
           '  node [fontname="Helvetica", fontsize=10];', '  edge [fontname="Helvetica", fontsize=9];', "}"}


def parse(dot):
    """DOT text -> (labels: node id -> label with DOT's escapes undone, edges: (src id, dst id) in order, attrs).
    Every line must be a header line, a node or an edge."""
    labels, edges, attrs = {}, [], {}
    for line in dot.splitlines():
        node, edge = _NODE.fullmatch(line), _EDGE.fullmatch(line)
        if node:
            labels[node[1]] = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], node[2])
            attrs[node[1]] = node[3]
        elif edge:
            edges.append((edge[1], edge[2]))
        else:
            assert line in _HEADER, line
    return labels, edges, attrs


def titles(dot):
    """(first lines of the node labels in node order, edges as (src title, dst title))."""
    labels, edges, _ = parse(dot)
    first = {k: v.split("\n")[0] for k, v in labels.items()}
    return list(first.values()), [(first[a], first[b]) for a, b in edges]


class ConvBias(nn.Module):
    """y = relu(conv(x) + b), optionally with the residual x added before the relu."""

    def __init__(self, residual=False):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.b = nn.Parameter(np.zeros((1, 2, 1, 1)))
        self.residual = residual

    def forward(self, x):
        y = self.conv(x) + self.b
        return F.relu(y + x if self.residual else y)


def x_small(shape=(1, 2, 4, 4)):
    return mc.tensor(np.random.default_rng(0).standard_normal(shape))


# --- the DOT of small graphs ----------------------------------------------------------------------------------------
def test_conv_bias_relu_exact_dot():
    net = ConvBias().double()
    dot = vg.graph(net, x_small())
    assert dot == "\n".join([
        "digraph minicnn {",
        '  graph [rankdir=TB, fontname="Helvetica"];',
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=9];',
        '  n0 [label="input\\n(1, 2, 4, 4) float64", shape=ellipse, style=filled, fillcolor="#dae8fc"];',
        '  n1 [label="conv.weight\\n(2, 2, 3, 3) float64", shape=ellipse, style=filled, fillcolor="#fff2cc"];',
        '  n2 [label="Conv2d\\n(1, 2, 4, 4) float64", shape=box];',
        '  n3 [label="b\\n(1, 2, 1, 1) float64", shape=ellipse, style=filled, fillcolor="#fff2cc"];',
        '  n4 [label="Add\\n(1, 2, 4, 4) float64", shape=box];',
        '  n5 [label="LeakyReLU (relu)\\n(1, 2, 4, 4) float64", shape=box, peripheries=2];',
        "  n0 -> n2;", "  n1 -> n2;", "  n2 -> n4;", "  n3 -> n4;", "  n4 -> n5;", "}", ""])
    assert vg.graph(net, x_small()) == dot  # deterministic: the same computation gives the same string


def test_residual_add_has_two_inputs_and_the_input_two_consumers():
    net = ConvBias(residual=True).double()
    names, edges = titles(vg.graph(net, x_small()))
    assert names == ["input", "conv.weight", "Conv2d", "b", "Add", "Add", "LeakyReLU (relu)"]
    labels, raw, _ = parse(vg.graph(net, x_small()))
    assert raw == [("n0", "n2"), ("n1", "n2"), ("n2", "n4"), ("n3", "n4"), ("n4", "n5"), ("n0", "n5"),
                   ("n5", "n6")]
    assert sorted(a for a, b in raw if b == "n5") == ["n0", "n4"]  # the residual Add reads conv + b and the input
    assert [b for a, b in raw if a == "n0"] == ["n2", "n5"]  # the input is used twice
    assert edges.count(("input", "Add")) == 1


def test_tensor_form_names_parameters_inputs_constants_and_repeated_inputs():
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Conv2d(3, 1, 1)).double()
    x = x_small((1, 2, 5, 5))
    y = net(x) * 2
    z = y + y  # one tensor read twice by one op: two arrows
    labels, edges, attrs = parse(vg.graph(z, model=net, inputs=x))
    assert list(labels.values()) == [
        "input\n(1, 2, 5, 5) float64", "0.weight\n(3, 2, 3, 3) float64", "0.bias\n(3,) float64",
        "Conv2d\n(1, 3, 3, 3) float64", "LeakyReLU (relu)\n(1, 3, 3, 3) float64", "2.weight\n(1, 3, 1, 1) float64",
        "2.bias\n(1,) float64", "Conv2d\n(1, 1, 3, 3) float64", "constant 2\nfloat64", "Mul\n(1, 1, 3, 3) float64",
        "Add\n(1, 1, 3, 3) float64"]
    assert edges.count(("n9", "n10")) == 2 and "peripheries=2" in attrs["n10"]
    position = {k: i for i, k in enumerate(labels)}
    assert all(position[a] < position[b] for a, b in edges)  # ids in topological order
    unnamed, _ = titles(vg.graph(z))  # without model= and inputs=: by kind and shape only
    assert unnamed[:3] == ["constant", "tensor", "tensor"]
    two, _ = titles(vg.graph(net(x) + x_small((1, 1, 3, 3)), inputs=[x, mc.tensor(np.ones(1))]))
    assert two[0] == "input 0" and "input 1" not in two  # a tensor the graph never read is not drawn


def test_model_form_under_no_grad_and_with_frozen_parameters():
    net = ConvBias().float()
    for p in net.parameters():
        p.requires_grad_(False)
    x = mc.tensor(np.ones((1, 2, 4, 4), np.float32))
    with mc.no_grad():
        names, edges = titles(vg.graph(net, x))
    assert names == ["input", "conv.weight", "Conv2d", "b", "Add", "LeakyReLU (relu)"]
    assert ("input", "Conv2d") in edges and not x.requires_grad  # the caller's tensor is left as it was
    assert not any(p.requires_grad for p in net.parameters())


def test_labels_are_escaped_for_dot():
    net = nn.Module()
    net.add_module('we"ird\\name\nx', nn.Linear(2, 1))
    x = mc.tensor(np.ones((1, 2)))
    dot = vg.graph(net._modules['we"ird\\name\nx'](x), model=net)
    assert 'we\\"ird\\\\name\\nx.weight' in dot
    labels, _, _ = parse(dot)
    assert 'we"ird\\name\nx.weight\n(1, 2) float32' in labels.values()


def test_freed_graph_is_an_error_not_half_a_picture():
    net = ConvBias().double()
    loss = net(x_small()).sum()
    before = vg.graph(loss, model=net)
    loss.backward(retain_graph=True)
    assert vg.graph(loss, model=net) == before
    loss.backward()
    with pytest.raises(RuntimeError, match="freed by backward"):
        vg.graph(loss, model=net)


def test_bad_arguments():
    net = ConvBias()
    with pytest.raises(ValueError, match="no autograd graph"):
        vg.graph(mc.tensor([1.0], requires_grad=True))
    with pytest.raises(ValueError, match="no autograd graph"):
        vg.graph(mc.tensor([1.0]) * 2)
    with pytest.raises(TypeError, match="example input"):
        vg.graph(net)
    with pytest.raises(TypeError, match="Tensor or a Module"):
        vg.graph(np.ones(3))
    with pytest.raises(ValueError, match="depth must be"):
        vg.graph(net, np.ones((1, 2, 4, 4), np.float32), depth=0)
    with pytest.raises(ValueError, match="recording"):  # depth on a graph that was not recorded
        vg.graph(net(x_small().float()), depth=1)
    with pytest.raises(TypeError, match="inputs"):
        vg.graph(net(x_small().float()), inputs=[np.ones(2)])


# --- depth collapsing -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet18():
    mc.manual_seed(0)
    return mc.models.create("resnet18", num_classes=10)


def test_resnet18_depth_1_and_2(resnet18):
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    stats = resnet18.bn1.running_mean.numpy().copy()
    resnet18.train()
    labels, raw, _ = parse(vg.graph(resnet18, x, depth=1))
    assert resnet18.training and all(m.training for m in resnet18.modules())  # the mode is restored
    np.testing.assert_array_equal(resnet18.bn1.running_mean.numpy(), stats)  # ran in eval: statistics untouched
    names = [v.split("\n")[0] for v in labels.values()]
    chain = ["input", "conv1 (Conv2d)", "bn1 (BatchNorm2d)", "relu (ReLU)", "maxpool (MaxPool2d)",
             "layer1 (Sequential)", "layer2 (Sequential)", "layer3 (Sequential)", "layer4 (Sequential)",
             "avgpool (AdaptiveAvgPool2d)", "Reshape", "fc (Linear)"]
    assert names == chain  # the parameters are inside their boxes; flatten ran in ResNet.forward itself
    assert raw == [(f"n{i}", f"n{i + 1}") for i in range(len(chain) - 1)]
    label = dict(zip(names, labels.values()))
    assert label["layer1 (Sequential)"] == "layer1 (Sequential)\n14 ops\n(1, 64, 8, 8) float32"
    assert label["layer4 (Sequential)"] == "layer4 (Sequential)\n16 ops\n(1, 512, 1, 1) float32"
    assert label["fc (Linear)"] == "fc (Linear)\n1 op\n(1, 10) float32"

    names2, edges2 = titles(vg.graph(resnet18, x, depth=2))
    blocks = [f"layer{i}.{j} (BasicBlock)" for i in range(1, 5) for j in range(2)]
    assert names2 == chain[:5] + blocks + chain[-3:]
    assert len(set(names2)) == len(names2) == 16

    names0, _ = titles(vg.graph(resnet18, x))  # every op: 69 ops, 62 parameters, the input
    params = [n for n, _ in resnet18.named_parameters()]
    assert len(names0) == 69 + len(params) + 1 and len(params) == 62
    assert sorted(n for n in names0 if n in params) == sorted(params)


def test_depth_3_separates_calls_of_a_shared_module_and_keeps_block_ops(resnet18):
    x = np.zeros((1, 3, 32, 32), np.float32)
    names, edges = titles(vg.graph(resnet18, x, depth=3))
    assert names.count("layer1.0.relu (ReLU)") == 1 and names.count("layer1.0.relu (ReLU), call 2") == 1
    assert names.count("conv1 (Conv2d)") == 1  # a module without submodules above the depth is one box too
    assert ("layer1.0.bn2 (BatchNorm2d)", "Add") in edges and ("maxpool (MaxPool2d)", "Add") in edges
    assert ("Add", "layer1.0.relu (ReLU), call 2") in edges
    assert ("layer2.0.downsample (Sequential)", "Add") in edges


def test_recording_for_a_tensor_graph_and_cleanup():
    net = nn.Sequential(nn.Sequential(nn.Linear(3, 4), nn.ReLU()), nn.Linear(4, 2)).double()
    x = mc.tensor(np.ones((2, 3)))
    with vg.recording(net):
        loss = F.cross_entropy(net(x) * 2, np.array([1, 0]))
    assert autograd._record_hook is None
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    names, edges = titles(vg.graph(loss, model=net, depth=1, inputs=x))
    assert names == ["input", "0 (Sequential)", "1 (Linear)", "constant 2", "Mul", "CrossEntropy"]
    assert edges == [("input", "0 (Sequential)"), ("0 (Sequential)", "1 (Linear)"), ("1 (Linear)", "Mul"),
                     ("constant 2", "Mul"), ("Mul", "CrossEntropy")]
    unnamed, _ = titles(vg.graph(loss, depth=1))  # without model= the parameters are not known to be the boxes'
    assert unnamed.count("tensor") == 4 and unnamed[0] == "constant" and "0 (Sequential)" in unnamed

    with pytest.raises(ValueError, match="boom"):
        with vg.recording(net):
            with pytest.raises(RuntimeError, match="do not nest"):
                with vg.recording(net):
                    pass
            raise ValueError("boom")
    assert autograd._record_hook is None
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())


# --- rendering ------------------------------------------------------------------------------------------------------
def test_plot_graph_without_a_renderer(tmp_path, monkeypatch):
    monkeypatch.setattr(vg.shutil, "which", lambda name: None)
    monkeypatch.setattr(vg.sysconfig, "get_path", lambda name: str(tmp_path / "no-scripts"))
    with pytest.raises(RuntimeError, match=r"graphviz.*pip install graphviz-pure"):
        vg.plot_graph(ConvBias(), tmp_path / "g.svg", np.ones((1, 2, 4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(vg.shutil, "which", lambda name: "/usr/bin/dot" if name == "dot" else "/x/graphviz-pure")
    assert vg._renderer() == "/usr/bin/dot"  # Graphviz's own dot first


def test_plot_graph_refusals_and_a_failing_renderer(tmp_path, monkeypatch):
    x = np.ones((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError, match=r"\.svg or \.png"):
        vg.plot_graph(ConvBias(), tmp_path / "g.pdf", x)
    (tmp_path / "old.png").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        vg.plot_graph(ConvBias(), tmp_path / "old.png", x)
    fake = tmp_path / "fake-dot"
    fake.write_text("#!/bin/sh\necho 'Format: \"png\" not recognized' >&2\nexit 3\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(vg, "_renderer", lambda: str(fake))
    with pytest.raises(RuntimeError, match=r"exit status 3.*not recognized.*\.svg"):
        vg.plot_graph(ConvBias(), tmp_path / "old.png", x, overwrite=True)
    assert (tmp_path / "old.png").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-dot", "old.png"]  # no temporary file left


@pytest.mark.skipif(vg._renderer() is None, reason="neither Graphviz's dot nor graphviz-pure is installed")
def test_plot_graph_renders_png_and_svg(tmp_path):
    net, x = ConvBias(residual=True), np.ones((1, 2, 4, 4), np.float32)
    png = vg.plot_graph(net, tmp_path / "g.png", x)
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = vg.plot_graph(net, tmp_path / "g.svg", x, depth=1)
    text = svg.read_text()
    assert "<svg" in text and "conv (Conv2d)" in text
    vg.plot_graph(net, tmp_path / "g.svg", x, overwrite=True)
    assert "conv.weight" in svg.read_text()  # replaced by the full graph
    assert sorted(os.listdir(tmp_path)) == ["g.png", "g.svg"]


# --- Module.register_forward_pre_hook -------------------------------------------------------------------------------
def test_forward_pre_hook_runs_before_forward_and_can_replace_args():
    calls = []

    class Probe(nn.Module):
        def forward(self, a, b=0):
            calls.append(("forward", a, b))
            return a + b

    m = Probe()
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append(("pre", mod is m, args)))
    m.register_forward_hook(lambda mod, args, out: calls.append(("post", args, out)))
    assert m(1, b=2) == 3
    assert calls == [("pre", True, (1,)), ("forward", 1, 2), ("post", (1,), 3)]

    calls.clear()
    h1.remove()
    h2 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 10,))  # a tuple replaces the arguments
    h3 = m.register_forward_pre_hook(lambda mod, args: args[0] + 1)  # one value becomes a 1-tuple; hooks chain
    assert m(1) == 11
    assert calls == [("forward", 11, 0), ("post", (11,), 11)]
    h2.remove()
    h2.remove()  # twice is harmless
    h3.remove()
    calls.clear()
    assert m(5) == 5 and calls[0] == ("forward", 5, 0) and not m._forward_pre_hooks
