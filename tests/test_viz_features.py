"""Receptive fields (hand-derived values for LeNet-5, VGG-16 and ResNet-18; random chains and branching networks
against the empirical field, the input pixels with a nonzero gradient), top_patches against a brute-force loop,
activations captured with hooks, filter grids, figures, and errors."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import minicnn as mc
from minicnn import models, nn
from minicnn.autograd import is_grad_enabled
from minicnn.functional import cat
from minicnn.viz.features import (TopPatches, activations, draw_receptive_field, filter_grid, filters,
                                  show_feature_maps, show_receptive_field, show_top_patches, top_patches)
from minicnn.viz.receptive import ReceptiveField, receptive_field


def fields(model, names, input_size=None):
    return {n: receptive_field(model, n, input_size) for n in names}


# --- hand-derived receptive fields ---------------------------------------------------------------------------------
def test_lenet5():
    """1x28x28 -> conv 5x5 p2 -> pool 2/2 -> conv 5x5 -> pool 2/2 (r, j, start; start_out = start_in +
    ((k - 1) / 2 - p) j_in):
    conv1: r = 5, j = 1, start = 0 + (2 - 2) 1 = 0;   pool1: r = 5 + 1 * 1 = 6, j = 2, start = 0 + 0.5 * 1 = 0.5;
    conv2: r = 6 + 4 * 2 = 14, j = 2, start = 0.5 + 2 * 2 = 4.5;   pool2: r = 14 + 1 * 2 = 16, j = 4,
    start = 4.5 + 0.5 * 2 = 5.5. Check by hand: pool2's unit 0 covers conv2 units 0-1, pool1 units 0-5, conv1
    units 0-11, input rows -2..13: 16 rows centred on 5.5."""
    got = fields(models.create("lenet5"), ["features.0", "features.2", "features.3", "features.5"])
    assert got == {"features.0": ((5, 5), (1, 1), (0.0, 0.0)), "features.2": ((6, 6), (2, 2), (0.5, 0.5)),
                   "features.3": ((14, 14), (2, 2), (4.5, 4.5)), "features.5": ((16, 16), (4, 4), (5.5, 5.5))}
    assert got["features.5"].box(0, 0) == (-2, -2, 14, 14)
    assert got["features.5"].box(1, 2) == (2, 6, 18, 22)


@pytest.fixture(scope="module")
def vgg16():
    return models.create("vgg16", num_classes=10)


def test_vgg16(vgg16):
    """VGG-16 (config D; features.N in torchvision's numbering, ReLU after every conv). Every 3x3 conv with
    padding 1 adds 2 j to the field and keeps its centre; every 2x2/2 pool adds j, doubles j and moves the centre by
    j / 2. The lecture's point: two stacked 3x3 layers see 5x5, three see 7x7.
    block 1 (j = 1): conv1_1 3, conv1_2 5, pool1 6 (j -> 2); block 2: 10, 14, pool2 16 (j -> 4);
    block 3: 24, 32, 40, pool3 44 (j -> 8); block 4: 60, 76, 92, pool4 100 (j -> 16);
    block 5: 132, 164, 196 (conv5_3), pool5 212 with stride 32 (Araujo et al. 2019 list 212 for VGG-16's pool5).
    start of pool5: 0.5 (1 + 2 + 4 + 8 + 16) = 15.5; its first row 15.5 - 211 / 2 = -90 = -(2 * 1 + 2 * 2 + 3 * 4
    + 3 * 8 + 3 * 16), the padding of every conv times its input jump."""
    convs = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    pools = [4, 9, 16, 23, 30]
    sizes = [3, 5, 10, 14, 24, 32, 40, 60, 76, 92, 132, 164, 196]
    got = fields(vgg16, [f"features.{i}" for i in convs + pools])
    for i, r in zip(convs, sizes):
        assert got[f"features.{i}"].size == (r, r), i
    assert [got[f"features.{i}"].size[0] for i in pools] == [6, 16, 44, 100, 212]
    assert [got[f"features.{i}"].stride[0] for i in pools] == [2, 4, 8, 16, 32]
    assert got["features.30"] == ((212, 212), (32, 32), (15.5, 15.5))
    assert got["features.30"].box(0, 0) == (-90, -90, 122, 122)
    assert receptive_field(vgg16, vgg16.features[28], input_size=(3, 64, 48)) == got["features.28"]


def test_three_3x3_convs_see_7x7_like_one_7x7():
    three = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(3)])
    one = nn.Sequential(nn.Conv2d(1, 1, 7, padding=3))
    assert receptive_field(three, "2", (1, 16, 16)) == receptive_field(one, "0", (1, 16, 16)) == ((7, 7), (1, 1),
                                                                                                    (0.0, 0.0))


def test_resnet18():
    """ResNet-18 (torchvision's layout). conv1 7x7/2 p3: r = 7, j = 2, start = 0 + (3 - 3) 1 = 0.
    maxpool 3x3/2 p1: r = 7 + 2 * 2 = 11, j = 4, start 0. Every 3x3 conv has p1, so start stays 0, and adds 2 j_in:
    layer1 (four convs at j = 4): 11 + 4 * 8 = 43, its first block 11 + 16 = 27;
    layer2: conv1 (stride 2, at j = 4) 43 + 8 = 51 -> j = 8, then three convs at j = 8: 51 + 48 = 99 (block 0:
    51 + 16 = 67); layer3: 99 + 16 = 115 -> j = 16, + 3 * 32 = 211; layer4: 211 + 32 = 243 -> j = 32,
    + 3 * 64 = 435. The 1x1/2 downsample shortcut of layer2.0 sees what a unit of layer1 sees (43, with j -> 8),
    inside the main path's 67 and with the same centre, so the union at the residual addition is 67."""
    model = models.create("resnet18", num_classes=10)
    got = fields(model, ["conv1", "maxpool", "layer1.0", "layer1", "layer2.0.conv1", "layer2.0.downsample.0",
                         "layer2.0", "layer2", "layer3", "layer4"], (3, 64, 64))
    assert {n: f.size[0] for n, f in got.items()} == {
        "conv1": 7, "maxpool": 11, "layer1.0": 27, "layer1": 43, "layer2.0.conv1": 51, "layer2.0.downsample.0": 43,
        "layer2.0": 67, "layer2": 99, "layer3": 211, "layer4": 435}
    assert {n: f.stride[0] for n, f in got.items()} == {
        "conv1": 2, "maxpool": 4, "layer1.0": 4, "layer1": 4, "layer2.0.conv1": 8, "layer2.0.downsample.0": 8,
        "layer2.0": 8, "layer2": 8, "layer3": 16, "layer4": 32}
    assert all(f.start == (0.0, 0.0) and f.size[0] == f.size[1] for f in got.values())
    assert receptive_field(model, model.layer4) == got["layer4"]  # the default input size
    # global average pooling of layer4's 2x2 map at 64x64: a 2x2/2 pool, 435 + 32
    assert receptive_field(model, "avgpool", (3, 64, 64)) == ((467, 467), (64, 64), (16.0, 16.0))


# --- the empirical receptive field ---------------------------------------------------------------------------------
def empirical_boxes(model, layer, shape, units):
    """For each unit (y, x) of channel 0 at `layer`: the bounding box (top, left, bottom, right; exclusive) of the
    input pixels with a nonzero gradient. float64, positive weights, biases and inputs, so no sum cancels and every
    ReLU passes; pooling is average pooling (a max passes one input only)."""
    model.double().eval()
    for p in model.parameters():
        p.data = np.abs(p.data) + 0.1
    module = dict(model.named_modules())[layer]
    seen = []
    handle = module.register_forward_hook(lambda m, args, out: seen.append(out))
    x = mc.tensor(np.random.default_rng(0).uniform(0.5, 1.0, (1,) + shape), requires_grad=True)
    boxes = []
    try:
        for y, xx in units:
            x.grad, seen[:] = None, []
            model(x)
            seen[0][0, 0, y, xx].backward()
            rows, cols = np.nonzero(np.abs(x.grad.numpy()[0]).sum(axis=0))
            boxes.append((rows.min(), cols.min(), rows.max() + 1, cols.max() + 1))
    finally:
        handle.remove()
    return boxes, seen[0].shape[2:]


def check_against_gradients(model, layer, shape, units=None, interior_needed=1):
    """The computed field's box of every unit, clipped to the image, against the empirical one: equal where the
    field lies inside the image; at the borders the empirical box lies inside the clipped one (padding, and the
    holes of dilation, hide some rows). Returns how many units were inside."""
    field = receptive_field(model, layer, shape)
    if units is None:
        _, (oh, ow) = empirical_boxes(model, layer, shape, [(0, 0)])
        units = [(y, x) for y in range(oh) for x in range(ow)]
    boxes, _ = empirical_boxes(model, layer, shape, units)
    h, w = shape[1:]
    inside = 0
    for (y, x), (t, left, b, r) in zip(units, boxes):
        top, lft, bot, rgt = field.box(y, x)
        if top >= 0 and lft >= 0 and bot <= h and rgt <= w:
            inside += 1
            assert (t, left, b, r) == (top, lft, bot, rgt), (y, x)
        else:
            assert max(top, 0) <= t and max(lft, 0) <= left and b <= min(bot, h) and r <= min(rgt, w), (y, x)
    assert inside >= interior_needed
    return field


@st.composite
def chains(draw):
    """1 to 3 convolutions or average poolings, each with its own kernel, stride, padding (and dilation for a
    convolution) along H and W, followed by a ReLU."""
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
        padding = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2)))
        if draw(st.booleans()):
            dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
            layers.append(nn.Conv2d(1, 1, (kh, kw), stride, padding, dilation))
        else:
            layers.append(nn.AvgPool2d((kh, kw), stride, padding))
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@given(chains())
def test_chains_against_gradients(net):
    try:
        _, (oh, ow) = empirical_boxes(net, str(len(net) - 1), (1, 22, 19), [(0, 0)])
    except ValueError:  # the chain shrinks the image to nothing
        assume(False)
    rng = np.random.default_rng(oh * 100 + ow)
    units = [(int(y), int(x)) for y, x in zip(rng.integers(0, oh, 12), rng.integers(0, ow, 12))]
    field = receptive_field(net, str(len(net) - 1), (1, 22, 19))
    small = field.size[0] <= 11 and field.size[1] <= 9  # then the middle unit's field lies inside the image
    check_against_gradients(net, str(len(net) - 1), (1, 22, 19), units + [(oh // 2, ow // 2)], interior_needed=small)


def test_dilated_padded_chain_against_gradients():
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=2, dilation=2), nn.ReLU(), nn.AvgPool2d(3, 2, padding=1),
                        nn.Conv2d(2, 2, (3, 5), stride=2, padding=(1, 0), dilation=(1, 2)), nn.ReLU(),
                        nn.Conv2d(2, 1, 3, padding=1, dilation=3))
    field = check_against_gradients(net, "5", (1, 60, 70), interior_needed=36)
    # by hand: conv 3 d2 -> r 5, j 1, start 0 + (2 - 2) = 0; pool 3/2 p1 -> r 7, j 2, start 0;
    # conv (3, 5) s2 d(1, 2) p(1, 0) -> r (11, 23), j 4, start (0, 8); conv 3 d3 p1 -> r (35, 47), start (8, 16)
    assert field == ((35, 47), (4, 4), (8.0, 16.0))


class Branchy(nn.Module):
    """Two paths that join twice: a 3x3/2 conv of x, and a 3x3/2 conv (padding 2) of x cropped by two rows and
    columns, concatenated and added, then mixed by a 3x3 conv. Path a sees rows [-1, 1] of unit 0, path b rows
    [0, 2] (start 2 + (1 - 2) = 1), so their union [-1, 2] (r 4, start 0.5) is larger than either; the mix adds
    2 * 2: r 8, j 2, start 0.5."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 1, 3, stride=2, padding=1)
        self.b = nn.Conv2d(1, 1, 3, stride=2, padding=2)
        self.relu = nn.ReLU()
        self.mix = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x):
        a, b = self.a(x), self.b(x[:, :, 2:, 2:])
        return self.mix(self.relu(cat([a, a + b], axis=1)))


def test_branches_join_as_a_union():
    field = check_against_gradients(Branchy(), "mix", (1, 16, 16), interior_needed=4)
    assert field == ((8, 8), (2, 2), (0.5, 0.5))


def test_resnet20_option_a_shortcut_against_gradients():
    """ResNet-20's stride-2 blocks add x[:, :, ::2, ::2] padded with zero channels: slicing with a step."""
    model = models.create("resnet20")
    units = [(0, 0), (15, 15), (7, 9), (20, 18), (12, 4), (31, 31)]
    field = check_against_gradients(model, "layer2", (3, 64, 64), units, interior_needed=2)
    assert field == ((3 + 6 * 2 + 2 + 5 * 4,) * 2, (2, 2), (0.0, 0.0))  # conv1, layer1, layer2 (first at j 1)


def test_unsupported_paths_are_refused():
    model = models.create("resnet18", num_classes=10)
    with pytest.raises(ValueError, match="receptive_field: .*'fc'.*Reshape"):
        receptive_field(model, "fc", (3, 32, 32))
    with pytest.raises(ValueError, match="receptive_field: layer 'layer1.0.relu' ran 2 times"):
        receptive_field(model, "layer1.0.relu", (3, 32, 32))

    class Jumps(nn.Module):  # units on grids of jump 1 and 2 added together
        def forward(self, x):
            return x[:, :, :8, :8] + x[:, :, ::2, ::2]

    wrap = nn.Sequential(Jumps())
    with pytest.raises(ValueError, match="receptive_field: paths with jumps \\[1, 2\\]"):
        receptive_field(wrap, "0", (1, 16, 16))

    class SpatialMean(nn.Module):
        def forward(self, x):
            return x - x.mean(axis=(2, 3), keepdims=True)

    with pytest.raises(ValueError, match="receptive_field: .*Mean, a reduction over the spatial axes"):
        receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), SpatialMean()), "1", (1, 8, 8))


def test_receptive_field_errors():
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    with pytest.raises(ValueError, match="receptive_field: unknown layer 'conv9'; the model's layers are: 0, 1"):
        receptive_field(net, "conv9")
    with pytest.raises(ValueError, match="receptive_field: the Conv2d module given as layer is not part"):
        receptive_field(net, nn.Conv2d(1, 1, 1))
    with pytest.raises(TypeError, match="receptive_field: layer must be a layer name"):
        receptive_field(net, 3)
    with pytest.raises(ValueError, match="receptive_field: input_size must be \\(C, H, W\\)"):
        receptive_field(net, "0", (8, 8))
    with pytest.raises(ValueError, match="conv2d"):  # the model's own error at a size it cannot take
        receptive_field(net, "0", (3, 8, 8))

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)

        def forward(self, x):
            return self.used(x)

    with pytest.raises(ValueError, match="receptive_field: layer 'spare' did not run"):
        receptive_field(Unused(), "spare")


# --- activations ---------------------------------------------------------------------------------------------------
def test_activations_values_hooks_and_modes():
    model = models.create("lenet5", num_classes=10).train()
    model.classifier.eval()  # mixed modes come back as they were
    x = np.random.default_rng(1).normal(size=(2, 1, 28, 28)).astype(np.float32)
    during = []
    probe = model.features[1].register_forward_hook(lambda m, a, o: during.append((is_grad_enabled(), m.training)))
    got = activations(model, x, ["features.0", model.features[2], "classifier.4"])
    probe.remove()
    assert during == [(False, False)]
    assert {k: v.shape for k, v in got.items()} == {"features.0": (2, 6, 28, 28), "features.2": (2, 6, 14, 14),
                                                    "classifier.4": (2, 10)}
    with mc.no_grad():
        model.eval()
        want = model.features[:3](mc.tensor(x)).numpy()
    model.train()
    model.classifier.eval()
    np.testing.assert_array_equal(got["features.2"], want)
    assert isinstance(got["features.2"], np.ndarray)
    assert all(not m._forward_hooks for m in model.modules())
    assert model.training and model.features[0].training and not model.classifier[0].training
    assert set(activations(model, x, "features.5")) == {"features.5"}


def test_activations_cleans_up_after_an_error():
    model = models.create("lenet5", num_classes=10).train()
    with pytest.raises(ValueError, match="LeNet5: expected 28x28 images"):
        activations(model, np.zeros((1, 1, 32, 32), np.float32), ["features.0", "features.3"])
    assert all(not m._forward_hooks for m in model.modules())
    assert all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="activations: x must be a batch of real images \\[N, C, H, W\\]"):
        activations(model, np.zeros((1, 28, 28), np.float32), "features.0")
    with pytest.raises(ValueError, match="activations: unknown layer 'features.9'"):
        activations(model, np.zeros((1, 1, 28, 28), np.float32), "features.9")


# --- top patches ---------------------------------------------------------------------------------------------------
def tiny_net():
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(3, 4, 3, stride=1, padding=2, dilation=2), nn.ReLU()).double()


def test_top_patches_against_brute_force():
    net = tiny_net()
    images = np.random.default_rng(2).normal(size=(7, 2, 12, 10))
    got = top_patches(net, "3", channel=2, data=images, k=5, batch_size=3)
    # brute force: every image alone, every position in Python loops, sorted
    field = receptive_field(net, "3", (2, 12, 10))
    assert field == ((12, 12), (2, 2), (0.5, 0.5))  # conv 3 p1, pool 2/2 -> (4, 2, 0.5); conv 3 d2 p2 adds 2*2*2
    rows = []
    with mc.no_grad():
        for n in range(len(images)):
            a = net[:4](mc.tensor(images[n:n + 1])).numpy()[0, 2]
            rows += [(a[y, x], n, y, x) for y in range(a.shape[0]) for x in range(a.shape[1])]
    rows.sort(key=lambda r: -r[0])
    np.testing.assert_allclose(got.values, [r[0] for r in rows[:5]], rtol=1e-12)
    np.testing.assert_array_equal(got.locations, [r[1:] for r in rows[:5]])
    assert got.patches.shape == (5, 2, 12, 12) and got.field == field
    for patch, (n, y, x) in zip(got.patches, got.locations):
        top, left = int(0.5 + 2 * y - 5.5), int(0.5 + 2 * x - 5.5)
        want = np.zeros((2, 12, 12))
        for i in range(12):
            for j in range(12):
                if 0 <= top + i < 12 and 0 <= left + j < 10:
                    want[:, i, j] = images[n, :, top + i, left + j]
        np.testing.assert_array_equal(patch, want)


def test_top_patches_dataset_transform_and_errors():
    net = tiny_net()
    images = np.random.default_rng(3).uniform(size=(4, 2, 12, 10)).astype(np.float32)
    data = mc.data.Dataset(images, np.zeros(4, np.int64), 2, "test")
    shifted = top_patches(net, net[3], 1, data, k=3, transform=lambda b: 2 * b - 1)
    direct = top_patches(net, "3", 1, 2 * images - 1, k=3)
    np.testing.assert_allclose(shifted.values, direct.values, rtol=1e-6)  # the model saw the transformed images...
    np.testing.assert_array_equal(shifted.locations, direct.locations)
    inside = shifted.patches != 0  # ...and the patches come from the raw ones (in (0, 1), zeros past the borders)
    assert inside.mean() > 0.5 and shifted.patches.dtype == np.float32
    np.testing.assert_allclose(direct.patches, np.where(inside, 2 * shifted.patches - 1, 0), atol=1e-6)
    with pytest.raises(ValueError, match="top_patches: channel must lie in \\[0, 4\\) for layer '3', got 4"):
        top_patches(net, "3", 4, images)
    with pytest.raises(ValueError, match="top_patches: k=121 is more than the 120 units .*\\(4 images of 6x5"):
        top_patches(net, "3", 0, images, k=121)
    with pytest.raises(ValueError, match="top_patches: expected a Dataset or images \\[N, C, H, W\\]"):
        top_patches(net, "3", 0, images[0])
    with pytest.raises(ValueError, match="top_patches: k must be an int >= 1"):
        top_patches(net, "3", 0, images, k=0)


# --- filters -------------------------------------------------------------------------------------------------------
def test_filter_grid_values_and_layout():
    w = np.random.default_rng(4).normal(size=(5, 3, 3, 3))
    w[4] = 0.25  # a constant filter
    grid = filter_grid(w, pad=1)
    assert grid.shape == (7, 11, 3)  # 3 columns, 2 rows of 3x3 tiles with 1-pixel gaps
    f0 = (w[0] - w[0].min()) / (w[0].max() - w[0].min())
    np.testing.assert_allclose(grid[:3, :3], f0.transpose(1, 2, 0))
    np.testing.assert_allclose(grid[4:7, 4:7], 0.5)
    assert np.all(grid[3] == 1) and np.all(grid[:, 3] == 1) and np.all(grid[4:, 8:] == 1)  # gaps and empty slot
    conv = nn.Conv2d(4, 2, 2)
    mean = filter_grid(conv)
    m = conv.weight.numpy().astype(np.float64).mean(axis=1)
    m1 = (m[1] - m[1].min()) / (m[1].max() - m[1].min())
    assert mean.shape == (2, 5)
    np.testing.assert_allclose(mean[:, 3:], m1, rtol=1e-6)
    one = filter_grid(conv, mode=3, pad=0)
    c = conv.weight.numpy()[0, 3].astype(np.float64)
    np.testing.assert_allclose(one[:, :2], (c - c.min()) / (c.max() - c.min()), rtol=1e-6)
    with pytest.raises(TypeError, match="filter_grid: expected an nn.Conv2d or its weight"):
        filter_grid(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="filter_grid: mode 'rgb' needs filters of 3 input channels, got 4"):
        filter_grid(conv, mode="rgb")
    with pytest.raises(ValueError, match="filter_grid: mode must be 'rgb', 'mean' or an input channel in \\[0, 4\\)"):
        filter_grid(conv, mode=4)
    with pytest.raises(ValueError, match="filter_grid: expected a convolution weight"):
        filter_grid(np.zeros((3, 3)))


# --- figures -------------------------------------------------------------------------------------------------------
@pytest.fixture
def figure_class():
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    return Figure


def test_figures(figure_class, tmp_path):
    net = tiny_net()
    images = np.random.default_rng(5).uniform(size=(3, 2, 12, 10))
    result = top_patches(net, "3", 0, images, k=4)
    maps = activations(net, images, "0")["0"]
    rgb = nn.Conv2d(3, 8, 3)
    figs = {"filters.png": filters(rgb, path=tmp_path / "filters.png"),
            "maps.svg": show_feature_maps(maps, index=1, max_maps=2, path=tmp_path / "maps.svg"),
            "patches.png": show_top_patches(result, path=tmp_path / "patches.png"),
            "field.png": show_receptive_field(images[0], result.field, [(0, 0), (3, 2)], path=tmp_path / "field.png")}
    assert all(isinstance(f, figure_class) for f in figs.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(figs)  # no temporary files left
    assert (tmp_path / "filters.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "maps.svg").read_bytes()[:500]
    assert figs["filters.png"].axes[0].get_title() == "8 filters of 3x3x3"
    ax = figs["field.png"].axes[0]
    assert [(p.get_xy(), p.get_width(), p.get_height()) for p in ax.patches] == [
        ((-5.5, -5.5), 12, 12), ((-1.5, 0.5), 12, 12)]  # boxes from rows -5 and 1, columns -5 and -1
    assert ax.get_xlim() == (-0.5, 9.5) and ax.get_ylim() == (11.5, -0.5)
    field = ReceptiveField((5, 3), (2, 2), (1.0, 0.0))
    rect = draw_receptive_field(figure_class().add_subplot(), field, 2, 3)
    assert (rect.get_xy(), rect.get_width(), rect.get_height()) == ((4.5, 2.5), 3, 5)
    with pytest.raises(TypeError, match="show_top_patches: expected the TopPatches"):
        show_top_patches(result.patches)
    with pytest.raises(ValueError, match="show_feature_maps: index must be an image in \\[0, 3\\)"):
        show_feature_maps(maps, index=3)
    with pytest.raises(ValueError, match="show_receptive_field: units must be one \\(y, x\\) pair"):
        show_receptive_field(images[0], result.field, [(0, 0, 1)])
    assert isinstance(result, TopPatches)
