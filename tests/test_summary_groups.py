"""summary(model, input_shape, depth=d): rows added up per module path of d names (ResNet's stages and blocks,
GoogLeNet's inception modules, DenseNet's dense blocks), checked against counts done by hand."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import models, nn


@pytest.fixture(scope="module")
def resnet18_224():
    return models.resnet18()


def conv_params(cin, cout, k):
    return cin * cout * k * k


def bn_params(c):
    return 2 * c


def conv_macs(cin, cout, k, size):
    return size * size * cout * cin * k * k


def test_resnet18_stages_by_hand(resnet18_224):
    s = mc.summary(resnet18_224, (3, 224, 224), depth=1)
    rows = {r.name: r for r in s.rows}
    assert [r.name for r in s.rows] == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                                        "avgpool", "fc"]
    shapes = {name: rows[name].output_shape for name in ("conv1", "maxpool", "layer1", "layer2", "layer3", "layer4")}
    assert shapes == {"conv1": (64, 112, 112), "maxpool": (64, 56, 56), "layer1": (64, 56, 56),
                      "layer2": (128, 28, 28), "layer3": (256, 14, 14), "layer4": (512, 7, 7)}
    assert {rows[n].type for n in ("layer1", "layer4")} == {"Sequential"} and rows["conv1"].type == "Conv2d"
    # conv2_x of the paper's Table 1: two basic blocks of two 3x3 convolutions 64 -> 64 at 56x56, each with BN
    layer1 = 4 * (conv_params(64, 64, 3) + bn_params(64))
    assert rows["layer1"].params == layer1 == 147_968
    assert rows["layer1"].macs == 4 * conv_macs(64, 64, 3, 56) == 462_422_016
    # conv3_x: the first block halves the resolution (3x3 stride 2, 64 -> 128) with a 1x1 projection shortcut
    first = conv_params(64, 128, 3) + conv_params(128, 128, 3) + conv_params(64, 128, 1) + 3 * bn_params(128)
    second = 2 * (conv_params(128, 128, 3) + bn_params(128))
    assert rows["layer2"].params == first + second == 525_568
    assert rows["layer2"].macs == (conv_macs(64, 128, 3, 28) + 3 * conv_macs(128, 128, 3, 28)
                                   + conv_macs(64, 128, 1, 28)) == 411_041_792
    assert rows["conv1"].params == conv_params(3, 64, 7) == 9_408
    assert rows["fc"].params == 512 * 1000 + 1000 and rows["fc"].macs == 512 * 1000
    assert rows["layer3"].params == 2_099_712 and rows["layer4"].params == 8_393_728


@pytest.mark.parametrize("depth", [1, 2, 3, 10])
def test_grouping_keeps_the_totals(resnet18_224, depth):
    flat = mc.summary(resnet18_224, (3, 64, 64))
    grouped = mc.summary(resnet18_224, (3, 64, 64), depth=depth)
    for what in ("total_params", "total_macs", "total_activations", "input_shape"):
        assert getattr(grouped, what) == getattr(flat, what), what
    assert sum(r.params for r in grouped.rows) == sum(r.params for r in flat.rows) == flat.total_params
    assert sum(r.macs for r in grouped.rows) == flat.total_macs
    assert len(grouped.rows) < len(flat.rows)  # the shared ReLU of a block is one row however deep
    assert grouped.depth == depth and flat.depth is None


def test_resnet18_blocks_at_depth_2(resnet18_224):
    s = mc.summary(resnet18_224, (3, 64, 64), depth=2)
    names = [r.name for r in s.rows]
    assert names[4:12] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    rows = {r.name: r for r in s.rows}
    assert rows["layer1.0"].params == 2 * (conv_params(64, 64, 3) + bn_params(64)) == 73_984
    assert rows["layer2.0"].output_shape == (128, 8, 8) and rows["layer2.0"].type == "BasicBlock"
    assert rows["conv1"].output_shape == (64, 32, 32)  # shorter than the depth: a row of its own


def test_googlenet_modules_have_the_shape_of_their_concatenation():
    s = mc.summary(models.googlenet(aux_logits=False), (3, 224, 224), depth=1)
    rows = {r.name: r for r in s.rows}
    # the lecture's table: inception (3a) 28x28x256, (4e) 14x14x832, (5b) 7x7x1024 (not a branch's shape)
    assert rows["inception3a"].output_shape == (256, 28, 28)
    assert rows["inception4e"].output_shape == (832, 14, 14)
    assert rows["inception5b"].output_shape == (1024, 7, 7)
    assert rows["inception3a"].type == "Inception"
    # (3a) on 192 channels: 1x1 64; 1x1 96 -> 3x3 128; 1x1 16 -> 5x5 32; pool -> 1x1 32; weights and biases
    weights = (conv_params(192, 64, 1) + conv_params(192, 96, 1) + conv_params(96, 128, 3)
               + conv_params(192, 16, 1) + conv_params(16, 32, 5) + conv_params(192, 32, 1))
    assert rows["inception3a"].params == weights + (64 + 96 + 128 + 16 + 32 + 32) == 163_696
    assert rows["inception3a"].macs == weights * 28 * 28 == pytest.approx(128e6, rel=0.001)
    assert sum(name.startswith("inception") for name in rows) == 9


def test_densenet121_blocks_and_transitions():
    s = mc.summary(models.densenet121(), (3, 64, 64), depth=2)
    rows = {r.name: r for r in s.rows}
    channels = [rows[f"features.{n}"].output_shape[0] for n in
                ("denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "transition3",
                 "denseblock4")]
    assert channels == [64 + 6 * 32, 128, 128 + 12 * 32, 256, 256 + 24 * 32, 512, 512 + 16 * 32]
    # transition (1): BN on 256 channels, 1x1 convolution 256 -> 128, 2x2 average pooling
    assert rows["features.transition1"].params == bn_params(256) + conv_params(256, 128, 1)
    assert rows["features.transition1"].output_shape == (128, 8, 8)
    assert s.total_params == 7_978_856


def test_nested_sequential_and_deep_depth():
    mc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
                                                                       nn.MaxPool2d(2)))
    flat = mc.summary(model, (3, 10, 10))
    one = mc.summary(model, (3, 10, 10), depth=1)
    assert [(r.name, r.type, r.output_shape, r.params) for r in one.rows] == [
        ("0", "Conv2d", (4, 8, 8), 3 * 4 * 9 + 4), ("1", "ReLU", (4, 8, 8), 0),
        ("2", "Sequential", (5, 4, 4), 4 * 5 * 9 + 5)]
    assert one.rows[2].macs == 8 * 8 * 5 * 4 * 9
    deep = mc.summary(model, (3, 10, 10), depth=5)  # deeper than the model: the layers themselves
    assert [(r.name, r.output_shape, r.params, r.macs) for r in deep.rows] == [
        (r.name, r.output_shape, r.params, r.macs) for r in flat.rows]
    text = str(one)
    assert text.splitlines()[0].startswith("module") and str(flat).splitlines()[0].startswith("layer")
    assert "Sequential" in text and "(5, 4, 4)" in text


def test_depth_as_numpy_int():
    model = nn.Sequential(nn.Linear(3, 2))
    assert [r.name for r in mc.summary(model, (3,), depth=np.int64(1)).rows] == ["0"]


@pytest.mark.parametrize("depth", [0, -1, 1.5, "stage", True, [1]])
def test_bad_depth_is_refused(depth):
    with pytest.raises(ValueError, match=r"summary: depth must be None \(one row per layer\) or an int >= 1 .*got "
                                         + repr(depth).replace("[", r"\[").replace("]", r"\]")):
        mc.summary(nn.Sequential(nn.Linear(3, 2)), (3,), depth=depth)
