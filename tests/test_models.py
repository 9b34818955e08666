"""The model zoo: parameter counts against the published numbers, summary() against the papers' tables, forward
and backward of every model at a small input, float64 gradient checks of the residual, dense, inception and
separable blocks, and a ResNet-18 written in PyTorch loaded through state_dict."""
import sys
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import models
from minicnn.models.densenet import DenseBlock, Transition
from minicnn.models.googlenet import Inception
from minicnn.models.resnet import BasicBlock, Bottleneck, CifarBasicBlock
from minicnn.models.xception import Block as XceptionBlock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import torch_models  # noqa: E402  (the PyTorch twin of ResNet-18)

PARAMS = {  # torchvision's counts where it has the model, else the paper's (or Keras's, for Xception)
    "lenet5": 61_706, "alexnet": 61_100_840, "alexnet_original": 60_965_224,
    "vgg11": 132_863_336, "vgg13": 133_047_848, "vgg16": 138_357_544, "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840, "vgg13_bn": 133_053_736, "vgg16_bn": 138_365_992, "vgg19_bn": 143_678_248,
    "vgg11_lrn": 132_863_336, "vgg16_c": 133_638_952,
    "resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032, "resnet101": 44_549_160,
    "resnet152": 60_192_808, "densenet121": 7_978_856, "densenet169": 14_149_480, "densenet201": 20_013_928,
    "densenet161": 28_681_000, "inception_v3": 27_161_264, "xception": 22_855_952,
}
CIFAR_PARAMS = {"resnet20": 0.27e6, "resnet32": 0.46e6, "resnet44": 0.66e6, "resnet56": 0.85e6, "resnet110": 1.7e6,
                "densenet_bc100": 0.8e6}  # the papers' tables, to their rounding
APPROX_PARAMS = {"zfnet": 62.3e6}  # as usually quoted (GoogLeNet: test_googlenet_summary)


def n_params(model):
    return sum(p.size for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts(name):
    assert n_params(models.create(name, num_classes=10 if name == "lenet5" else 1000)) == PARAMS[name]


@pytest.mark.parametrize("name", sorted(CIFAR_PARAMS))
def test_cifar_parameter_counts(name):
    assert n_params(models.create(name, num_classes=10)) == pytest.approx(CIFAR_PARAMS[name], rel=0.05)


@pytest.mark.parametrize("name", sorted(APPROX_PARAMS))
def test_approximate_parameter_counts(name):
    assert n_params(models.create(name)) == pytest.approx(APPROX_PARAMS[name], rel=0.01)


def test_registry():
    assert set(PARAMS) | set(CIFAR_PARAMS) | {"googlenet", "zfnet"} <= set(models.list_models())
    assert models.canonical_name("lenet") == "lenet5"
    with pytest.raises(ValueError, match="unknown model 'vgg17'; choose one of: alexnet"):
        models.create("vgg17")


def test_vgg16_summary_reproduces_the_memory_table():
    s = mc.summary(models.vgg16(), (3, 224, 224))
    assert s.total_params == 138_357_544
    assert s.total_activations == pytest.approx(15.2e6, abs=0.1e6)
    assert s.total_activations * 4 / 1e6 == pytest.approx(60.8, abs=0.4)
    assert s.total_macs == pytest.approx(15.5e9, rel=0.01)
    first = s.rows[0]
    assert (first.name, first.output_shape, first.params) == ("features.0", (64, 224, 224), 1_792)
    text = str(s)
    assert "features.0" in text and "138,357,544 parameters, 15.47 G multiply-accumulates" in text
    assert "(60.95 MB in float32)" in text


@pytest.mark.parametrize("name,paper,torchvision", [("resnet18", 1.8, 1.8), ("resnet34", 3.6, 3.6),
                                                    ("resnet50", 3.8, 4.1), ("resnet101", 7.6, 7.8),
                                                    ("resnet152", 11.3, 11.5)])
def test_resnet_multiply_adds(name, paper, torchvision):
    """The paper's Table 1 with its own bottleneck (stride in the 1x1); torchvision's function by default."""
    macs = mc.summary(models.create(name, stride_in_3x3=False), (3, 224, 224)).total_macs / 1e9
    assert macs == pytest.approx(paper, rel=0.025)
    assert mc.summary(models.create(name), (3, 224, 224)).total_macs / 1e9 == pytest.approx(torchvision, rel=0.02)


def test_googlenet_summary():
    s = mc.summary(models.googlenet(aux_logits=False), (3, 224, 224))
    assert s.total_macs == pytest.approx(1.5e9, rel=0.07)
    assert s.total_params == pytest.approx(6.8e6, rel=0.05)
    # the paper's table, inception (3a): 28x28x256 output, 128M operations
    macs_3a = sum(r.macs for r in s.rows if r.name.startswith("inception3a."))
    out_3a = [r.output_shape for r in s.rows if r.name.startswith("inception3a.branch")]
    assert macs_3a == pytest.approx(128e6, rel=0.01)
    assert sum(shape[0] for shape in out_3a if len(shape) == 3 and shape[1:] == (28, 28)) >= 256


def test_alexnet_table():
    s = mc.summary(models.alexnet_original(), (3, 227, 227))
    rows = {r.name: r for r in s.rows}
    table = [("features.0", (96, 55, 55), 35e3, 105e6), ("features.3", (96, 27, 27), 0, 0),
             ("features.4", (256, 27, 27), 307e3, 223e6), ("features.7", (256, 13, 13), 0, 0),
             ("features.8", (384, 13, 13), 884e3, 149e6),
             # the lecture's table lists CONV4 as 1.3M / 224M, the count without the two towers; with them
             # (groups=2, as in the paper and in CONV2 and CONV5 of the same table) it is half that
             ("features.10", (384, 13, 13), 1.3e6 / 2, 224e6 / 2),
             ("features.12", (256, 13, 13), 442e3, 74e6), ("features.14", (256, 6, 6), 0, 0),
             ("classifier.0", (4096,), 37e6, 37e6), ("classifier.3", (4096,), 16e6, 16e6),
             ("classifier.6", (1000,), 4e6, 4e6)]
    for name, shape, params, macs in table:
        assert rows[name].output_shape == shape, name
        assert rows[name].params == pytest.approx(params, rel=0.06), name
        assert rows[name].macs == pytest.approx(macs, rel=0.06), name


SMALL = {"lenet5": 28, "alexnet": 64, "alexnet_original": 227, "zfnet": 64, "googlenet": 64, "inception_v3": 75,
         "xception": 32, "densenet_bc100": 32}


@pytest.mark.parametrize("name", [n for n in models.list_models() if models.task_of(n) == "classification"])
def test_forward_backward_reaches_every_parameter(name):
    kw = dict(aux_logits=False) if name == "inception_v3" else {}  # its auxiliary head needs 17x17 maps (299)
    in_channels = 1 if name == "lenet5" else 3
    model = models.create(name, num_classes=7, in_channels=in_channels, **kw)
    size = SMALL.get(name, 32)
    batch = 1 if name == "alexnet_original" else 2
    x = mc.tensor(np.random.default_rng(0).standard_normal((batch, in_channels, size, size)).astype(np.float32))
    y = np.arange(batch) % 7
    out = model(x)
    loss = models.googlenet_loss(out, y) if name == "googlenet" else F.cross_entropy(out, y)
    if name == "googlenet":
        assert isinstance(out, tuple) and len(out) == 3
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient for {pname}"
        assert np.isfinite(p.grad.numpy()).all(), pname
    model.eval()
    with mc.no_grad():
        assert model(x).shape == (batch, 7)


def test_inception_v3_aux_head_in_training():
    model = models.inception_v3(num_classes=5)
    out, aux = model(mc.tensor(np.zeros((2, 3, 299, 299), np.float32)))
    assert out.shape == aux.shape == (2, 5)


def _down(cin, cout):
    return mc.nn.Sequential(mc.nn.Conv2d(cin, cout, 1, stride=2, bias=False), mc.nn.BatchNorm2d(cout))


@pytest.mark.parametrize("block,cin", [
    (lambda: BasicBlock(3, 3), 3),
    (lambda: BasicBlock(2, 4, 2, _down(2, 4)), 2),
    (lambda: Bottleneck(4, 2, 2, _down(4, 8)), 4),
    (lambda: CifarBasicBlock(2, 4, 2), 2),
    (lambda: DenseBlock(2, 3, growth_rate=2, bn_size=2), 3),
    (lambda: Transition(4, 2), 4),
    (lambda: Inception(3, 2, 2, 3, 1, 2, 2), 3),
    (lambda: XceptionBlock(2, 4, 2, 2), 2),
], ids=["basic", "basic-down", "bottleneck", "cifar-shortcut-A", "dense-block", "transition", "inception",
        "xception-block"])
def test_block_gradcheck(block, cin):
    mc.manual_seed(0)
    m = block().double()
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, cin, 5, 5)), requires_grad=True)
    assert mc.gradcheck(lambda x, *ps: m(x), [x] + list(m.parameters()))


def test_resnet50_computes_torchvisions_function(torch_mod):
    """torchvision's weights give torchvision's outputs: the bottleneck strides in its 3x3 convolution (v1.5)."""
    torch = torch_mod
    torch.manual_seed(0)
    theirs = torch_models.resnet50(torch, 10).double().eval()
    ours = models.resnet50(num_classes=10).double().eval()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert (ours.layer2[0].conv1.stride, ours.layer2[0].conv2.stride) == (1, 2)
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32))
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(mc.tensor(x)).numpy(), expected, rtol=1e-8, atol=1e-10)
    paper = models.resnet50(num_classes=10, stride_in_3x3=False).double().eval()
    paper.load_state_dict(ours.state_dict())  # the same keys and shapes, another function
    assert not np.allclose(paper(mc.tensor(x)).numpy(), expected, rtol=1e-3)


def test_resnet18_matches_pytorch_through_state_dict(torch_mod):
    torch = torch_mod
    torch.manual_seed(0)
    theirs = torch_models.resnet18(torch, 10).double()
    with torch.no_grad():  # non-trivial running statistics and affine parameters
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    ours = models.resnet18(num_classes=10).double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert list(ours.state_dict()) == list(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64))
    ours.eval()
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.tensor(x)).numpy()
    np.testing.assert_allclose(ours(mc.tensor(x)).numpy(), expected, rtol=1e-9, atol=1e-10)
    ours.train()
    theirs.train()
    y = np.array([3, 7])
    F.cross_entropy(ours(mc.tensor(x)), y).backward()
    torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y)).backward()
    grads = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), grads[name].grad.numpy(), rtol=1e-7, atol=1e-9, err_msg=name)
