"""Every model of the zoo exported to ONNX (minicnn.onnx): the file passes onnx.checker.check_model(full_check=True),
runs in onnxruntime at batch 1 and 3 (traced at batch 1), and matches minicnn's eval-mode output (rtol 1e-4, atol
1e-5, float32). Classifiers at their smallest input with their initial weights (batch norm statistics set from a
few images would make the deep networks so ill-conditioned that minicnn in float32 would already differ from
itself in float64 by more); detectors up to their raw outputs. Models whose export takes
seconds (the large fully connected layers of AlexNet and VGG, the deepest ResNets and DenseNets, the larger
inputs) are marked slow. Skipped without onnx and onnxruntime."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import models

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
mconnx = pytest.importorskip("minicnn.onnx")

# The smallest input each classifier takes (AlexNet, ZFNet and VGG then pool 1x1 maps up to 6x6 or 7x7: the
# adaptive pooling exports as a nearest upsampling), and CIFAR's 32x32 for the networks that take any size
SIZES = {"lenet5": (1, 28, 28), "alexnet": 63, "alexnet_original": 67, "zfnet": 63, "googlenet": 47,
         "inception_v3": 75, "xception": 7, "densenet121": 29, "densenet161": 29, "densenet169": 29,
         "densenet201": 29}
FAST = {"lenet5", "resnet20", "resnet18", "resnet50", "densenet_bc100", "densenet121", "googlenet", "inception_v3",
        "xception"}  # one of each family; the rest repeat its blocks, at length
CLASSIFIERS = [n for n in models.list_models() if models.task_of(n) == "classification"]
DETECTORS = [n for n in models.list_models() if models.task_of(n) == "detection"]


def check(model, x, raw=None):
    """Export traced at batch 1, check, run at batch 1 and 3, compare; returns the ModelProto."""
    proto = mconnx.to_model(model, x[:1])
    onnx.checker.check_model(proto, full_check=True)
    assert (proto.ir_version, proto.opset_import[0].version) == (8, 17)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        with mc.no_grad():
            want = (raw or model)(mc.tensor(x[:batch]))
        want = want if isinstance(want, tuple) else (want,)
        got = session.run(None, {"input": x[:batch]})
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)
    for value in list(proto.graph.input) + list(proto.graph.output):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"
    return proto


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal((3,) + tuple(shape)).astype(np.float32)


@pytest.mark.parametrize("name", [n if n in FAST else pytest.param(n, marks=pytest.mark.slow) for n in CLASSIFIERS])
def test_classifier(name):
    size = SIZES.get(name, 32)
    shape = size if isinstance(size, tuple) else (3, size, size)
    x = images(shape)
    model = models.create(name, num_classes=10, in_channels=shape[0]).eval()
    proto = check(model, x)
    weights = {k for k, _ in model.named_parameters()} | {k for k, _ in model.named_buffers()
                                                           if not k.endswith("num_batches_tracked")}
    names = {i.name for i in proto.graph.initializer}
    assert names <= weights and not any(op in {"Dropout", "Softmax"} for op in (n.op_type for n in proto.graph.node))
    unused = {k for k in weights - names if not k.startswith(("aux", "AuxLogits"))}  # eval mode skips those heads
    assert not unused


def _raw_yolo(model):
    return model.grid_output


def _raw_fasterrcnn(model):
    def raw(images):
        features = model.backbone(images)
        return (features,) + tuple(model.rpn.head(features))
    return raw


RAW = {"yolo_v1": _raw_yolo, "fasterrcnn": _raw_fasterrcnn}  # a new detector needs its raw outputs here


@pytest.mark.parametrize("name, kw", [pytest.param(n, kw, id="-".join([n, *kw.values()])) for n in DETECTORS
                                      for kw in ({}, {"head": "fc"}) if not kw or n == "yolo_v1"])
def test_detector_exports_its_raw_outputs(name, kw):
    x = images((1, 96, 96))
    model = models.create(name, num_classes=4, **kw).eval()
    proto = check(model, x, RAW[name](model))
    outputs = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in proto.graph.output}
    if name == "yolo_v1":
        assert outputs == {"grid": ["batch", 6, 6, 5 * 2 + 4]}
    else:
        a = model.rpn.head.cls_logits.out_channels
        assert outputs == {"features": ["batch", 64, 12, 12], "objectness": ["batch", a, 12, 12],
                           "box_deltas": ["batch", 4 * a, 12, 12]}


@pytest.mark.slow
@pytest.mark.parametrize("name, size", [("alexnet", 224), ("vgg11_bn", 224), ("googlenet", 224),
                                        ("inception_v3", 299), ("resnet50", 224), ("densenet121", 224),
                                        ("xception", 299)])
def test_classifier_at_its_imagenet_size(name, size):
    """At the paper's input size the adaptive pooling exports as an AveragePool or GlobalAveragePool."""
    x = images((3, size, size))
    proto = check(models.create(name, num_classes=10).eval(), x)
    assert "Resize" not in {n.op_type for n in proto.graph.node}
