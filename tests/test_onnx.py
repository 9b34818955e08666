"""ONNX export (minicnn.onnx, python -m minicnn.export), op by op: every exported graph passes
onnx.checker.check_model(full_check=True), runs in onnxruntime at batch 1 and 3 whatever batch it was traced at,
and matches minicnn's eval-mode output. Skipped without onnx and onnxruntime."""
import importlib
import inspect

import numpy as np
import pytest
from hypothesis import example, given, strategies as st

import minicnn as mc
from minicnn import checkpoint, data, nn
from minicnn import functional as F
from minicnn.autograd import Function

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
mconnx = pytest.importorskip("minicnn.onnx")
export_cli = pytest.importorskip("minicnn.export")


def session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def exported(model, shape, traced_batch=2, batches=(1, 3), seed=0, **kw):
    """Export `model` traced at `traced_batch` images of `shape`, check the file, run it at each of `batches` and
    compare with minicnn's eval-mode output (rtol 1e-4, atol 1e-5, float32); returns the ModelProto."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((max(batches + (traced_batch,)),) + tuple(shape)).astype(np.float32)
    proto = mconnx.to_model(model, x[:traced_batch], **kw)
    onnx.checker.check_model(proto, full_check=True)
    run = session(proto)
    model.eval()
    for b in batches:
        with mc.no_grad():
            want = model(mc.tensor(x[:b]))
        got = run.run(None, {"input": x[:b]})
        for w, o in zip(want if isinstance(want, tuple) else (want,), got):
            assert o.shape == w.shape
            np.testing.assert_allclose(o, w.numpy(), rtol=1e-4, atol=1e-5)
    return proto


def ops(proto):
    return [n.op_type for n in proto.graph.node]


def dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


class Lambda(nn.Module):
    """A module whose forward is a function (and whose children are the given modules)."""

    def __init__(self, fn, **children):
        super().__init__()
        self.fn = fn
        for name, m in children.items():
            self.add_module(name, m)

    def forward(self, x):
        return self.fn(self, x)


# --- pooling -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode, count_include_pad", [
    ((7, 6), 3, 2, 1, False, True), ((7, 6), 3, 2, 1, False, False),  # padding counted, and not (ONNX's default)
    ((7, 6), 3, 2, 1, True, True), ((7, 6), 3, 2, 1, True, False),    # ceil_mode: last windows overhang the padding
    ((5, 5), 2, 2, 1, True, True),                                    # a last window that would start in padding
    ((7, 6), (3, 2), (2, 1), (1, 0), True, False),                    # per-axis sizes
    ((5, 6), (2, 3), 2, 1, True, True), ((5, 6), (2, 3), 2, 1, True, False)])  # ceil mode drops one, adds one
def test_avg_pool_counts_padding_as_minicnn(shape, kernel, stride, padding, ceil_mode, count_include_pad):
    pool = nn.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad)
    proto = exported(pool, (2,) + shape)
    node = proto.graph.node[-1]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "AveragePool" and attrs["count_include_pad"] in (0, int(count_include_pad))


def test_ceil_mode_is_set_only_where_it_adds_a_window():
    """At 5 pixels, kernel 2, stride 2, padding 1, ceil mode would add a window that starts in the padding, which
    minicnn (PyTorch) drops: the output is floor mode's, and the file says floor mode, as onnx's shape inference
    would otherwise declare one output too many. At 6 pixels, kernel 3, ceil mode adds a real window."""
    for size, kernel, ceil in ((5, 2, 0), (6, 3, 1)):
        proto = exported(nn.MaxPool2d(kernel, 2, 1, ceil_mode=True), (1, size, size))
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.graph.node[0].attribute}
        assert attrs["ceil_mode"] == ceil
        assert dims(proto.graph.output[0])[2:] == [3 + ceil] * 2


@given(size=st.integers(3, 9), kernel=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 2),
       ceil_mode=st.booleans(), count_include_pad=st.booleans(), average=st.booleans())
@example(size=3, kernel=2, stride=3, padding=0, ceil_mode=True, count_include_pad=False, average=False)
def test_pooling_matches_minicnn(size, kernel, stride, padding, ceil_mode, count_include_pad, average):
    if 2 * padding > kernel or size + 2 * padding < kernel:
        return
    pool = (nn.AvgPool2d(kernel, stride, padding, ceil_mode, count_include_pad) if average
            else nn.MaxPool2d(kernel, stride, padding, ceil_mode))
    exported(pool, (2, size, size + 1), traced_batch=1)


@pytest.mark.parametrize("size, out, expected", [
    ((8, 8), (4, 4), ["AveragePool"]), ((6, 9), (1, 1), ["GlobalAveragePool"]), ((4, 4), (4, 4), ["Identity"]),
    ((1, 1), (6, 6), ["Resize"]), ((2, 3), (6, 6), ["Resize"]),    # each input pixel repeated: nearest upsampling
    ((8, 2), (4, 6), ["AveragePool", "Resize"])])
def test_adaptive_avg_pool_where_the_sizes_divide(size, out, expected):
    proto = exported(nn.AdaptiveAvgPool2d(out), (3,) + size)
    assert [op for op in ops(proto) if op != "Constant"] == expected


def test_adaptive_avg_pool_that_does_not_divide_is_an_error():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d((3, 3)))
    with pytest.raises(mconnx.ExportError, match=r"adaptive_avg_pool2d from 5x5 to 3x3.*module '1' "
                                                 r"\(AdaptiveAvgPool2d\)"):
        mconnx.to_model(model, np.zeros((1, 1, 7, 7), np.float32))


# --- convolution, normalisation, activations -----------------------------------------------------------------------
@pytest.mark.parametrize("cin, cout, kw", [
    (4, 6, dict(kernel_size=3, groups=2, padding=1)),                    # grouped (AlexNet's towers)
    (4, 4, dict(kernel_size=3, groups=4, padding=1, bias=False)),        # depthwise (Xception)
    (3, 5, dict(kernel_size=3, dilation=2, padding=2)),                  # dilated
    (3, 5, dict(kernel_size=(3, 1), stride=(2, 1), padding=(1, 0))),     # a different padding per axis
    (2, 3, dict(kernel_size=(1, 5), padding=(0, 2), stride=2))])
def test_conv(cin, cout, kw):
    conv = nn.Conv2d(cin, cout, **kw)
    proto = exported(conv, (cin, 9, 8))
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in proto.graph.node[0].attribute}
    assert attrs["group"] == kw.get("groups", 1) and attrs["dilations"] == [kw.get("dilation", 1)] * 2
    assert [i.name for i in proto.graph.initializer] == list(conv.state_dict())


@pytest.mark.parametrize("size, alpha, beta, k", [(5, 1e-4, 0.75, 2.0), (3, 0.5, 0.75, 1.0), (1, 2.0, 0.5, 1.5)])
def test_lrn_keeps_minicnns_alpha(size, alpha, beta, k):
    """minicnn and ONNX both divide alpha by size: with alpha 0.5 any other convention would be far off."""
    proto = exported(nn.LocalResponseNorm(size, alpha, beta, k), (7, 4, 4))
    assert ops(proto) == ["LRN"]


def test_lrn_with_an_even_size_is_an_error():
    with pytest.raises(mconnx.ExportError, match=r"local_response_norm with the even size 4.*module '' |"
                                                 r"local_response_norm with the even size 4"):
        mconnx.to_model(nn.LocalResponseNorm(4), np.zeros((1, 6, 2, 2), np.float32))


def _batch_norm(bn, seed=1):
    """Non-trivial statistics and affine parameters, so that each initializer matters."""
    rng = np.random.default_rng(seed)
    c = bn.num_features
    bn.running_mean.data = rng.uniform(-1, 1, c).astype(np.float32)
    bn.running_var.data = rng.uniform(0.5, 2, c).astype(np.float32)
    if bn.affine:
        bn.weight.data = rng.uniform(0.5, 1.5, c).astype(np.float32)
        bn.bias.data = rng.uniform(-1, 1, c).astype(np.float32)
    return bn


def test_batch_norm_uses_running_statistics_and_state_dict_names():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), _batch_norm(nn.BatchNorm2d(4, eps=1e-3)), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 16, 6), _batch_norm(nn.BatchNorm1d(6, affine=False)))
    proto = exported(model, (3, 6, 6))
    assert [op for op in ops(proto) if op != "Constant"] == ["Conv", "BatchNormalization", "Relu", "Flatten", "Gemm",
                                                             "BatchNormalization"]
    expected = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert [i.name for i in proto.graph.initializer] == expected


def test_batch_norm_without_running_statistics_is_an_error():
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2, track_running_stats=False))
    with pytest.raises(mconnx.ExportError, match=r"batch_norm with batch statistics.*module '1' \(BatchNorm2d\)"):
        mconnx.to_model(model, np.zeros((2, 1, 3, 3), np.float32))


def test_activations_dropout_and_softmax():
    """Dropout is omitted; Softmax appears where the model ends in one, and nowhere else."""
    body = [nn.Linear(5, 8), nn.LeakyReLU(0.2), nn.Dropout(0.5), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 8),
            nn.Tanh(), nn.Linear(8, 3)]
    plain = exported(nn.Sequential(*body), (5,))
    assert "Dropout" not in ops(plain) and "Softmax" not in ops(plain)
    assert ops(plain) == ["Gemm", "LeakyRelu", "Gemm", "Sigmoid", "Gemm", "Tanh", "Gemm"]
    ending = exported(nn.Sequential(*body, nn.Softmax(axis=1)), (5,))
    assert ops(ending)[-1] == "Softmax"


def test_elementwise_reductions_and_indexing():
    def fn(self, x):
        y = self.conv(x)
        y = (y * 2.0 - 1.0) / 3.0 + F.exp(-y.mean(axis=(2, 3), keepdims=True))
        y = F.clamp(y, -1.0, 2.0) ** 2 + F.sqrt(F.sigmoid(y)) + F.log(1.0 + F.maximum(y, F.minimum(y, 0.5)))
        y = mc.cat([y[:, :2, 1:, ::2], y[:, 1:3, -2::-1, 1::2]], axis=1).transpose(0, 1, 3, 2)
        z = self.fc(mc.stack([y.sum(axis=1), y.max(axis=1)], axis=1)[..., 1])  # a linear layer on (N, 2, 3)
        return F.log_softmax(z.reshape(z.shape[0], -1), axis=1) + y[:, 0].flatten(1).sum(axis=1, keepdims=True)
    exported(Lambda(fn, conv=nn.Conv2d(2, 3, 3, padding=1), fc=nn.Linear(3, 5)), (2, 5, 6))


# --- dynamic batch, errors, the file -------------------------------------------------------------------------------
def test_the_batch_axis_is_dynamic_everywhere():
    """Traced at batch 2, run at 1 and 3 (exported() does): flattening is Flatten(axis=1) or a Reshape that copies
    the batch (0), and every declared shape has the symbolic batch."""
    model = Lambda(lambda self, x: self.fc(self.conv(x).reshape(x.shape[0], 3, -1).flatten(1)),
                   conv=nn.Conv2d(1, 3, 3), fc=nn.Linear(3 * 16, 4))
    proto = exported(model, (1, 6, 6), traced_batch=2)
    reshape = next(n for n in proto.graph.node if n.op_type == "Reshape")
    target = next(n for n in proto.graph.node if n.output[0] == reshape.input[1])
    assert onnx.numpy_helper.to_array(target.attribute[0].t).tolist() == [0, 3, 16]
    assert "Flatten" in ops(proto)
    values = list(proto.graph.input) + list(proto.graph.output) + list(proto.graph.value_info)
    assert all(dims(v)[0] == "batch" for v in values) and len(proto.graph.value_info) >= 3


def test_static_batch_and_an_op_that_moves_the_batch_axis():
    model = Lambda(lambda self, x: self.conv(x).transpose(1, 0, 2, 3).reshape(3, -1), conv=nn.Conv2d(1, 3, 2))
    x = np.ones((2, 1, 3, 3), np.float32)
    with pytest.raises(mconnx.ExportError, match=r"transpose with axes \(1, 0, 2, 3\) moves or cuts the batch axis"
                                                 r".*the model's own forward \(Lambda\)"):
        mconnx.to_model(model, x)
    proto = mconnx.to_model(model, x, dynamic_batch=False)
    assert dims(proto.graph.input[0]) == [2, 1, 3, 3] and dims(proto.graph.output[0]) == [3, 8]
    model.eval()
    np.testing.assert_allclose(session(proto).run(None, {"input": x})[0], model(mc.tensor(x)).numpy(), rtol=1e-5)


def test_concatenated_zeros_become_a_pad_and_other_constants_an_error():
    def shortcut(self, x):  # the CIFAR ResNets' option A: zeros of the example's batch size, fixed
        zeros = mc.tensor(np.zeros((x.shape[0], 2) + x.shape[2:], np.float32))
        return mc.cat([zeros, x, zeros, zeros], axis=1)
    proto = exported(Lambda(shortcut), (3, 4, 4))
    assert [op for op in ops(proto) if op != "Constant"] == ["Pad"]
    ones = Lambda(lambda self, x: mc.cat([x, mc.tensor(np.ones(x.shape, np.float32))], axis=1))
    with pytest.raises(mconnx.ExportError, match="only for zeros at either end"):
        mconnx.to_model(ones, np.zeros((2, 1, 2, 2), np.float32))


class Cube(Function):
    def forward(self, x):
        self.x = x
        return x ** 3

    def backward(self, g):
        return 3 * self.x ** 2 * g


def test_an_op_without_mapping_names_the_op_and_the_module():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), Lambda(lambda self, x: Cube.apply(x)), nn.ReLU())
    with pytest.raises(mconnx.ExportError, match=r"the op Cube in module '1' \(Lambda\) has no ONNX mapping; ops "
                                                 r"that export: .*Conv2d"):
        mconnx.export(model, np.zeros((1, 1, 5, 5), np.float32), "never-written.onnx")


def test_export_keeps_the_modes_and_writes_atomically(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Dropout())
    model[1].eval()  # a frozen batch norm inside a model in training mode stays so
    path = tmp_path / "m.onnx"
    proto = mconnx.export(model, mc.tensor(np.zeros((1, 1, 4, 4), np.float32)), path)
    assert [m.training for m in model.modules()] == [True, True, False, True]
    assert onnx.load(path) == proto
    assert (proto.ir_version, [(o.domain, o.version) for o in proto.opset_import]) == (8, [("", 17)])
    assert (proto.graph.input[0].name, proto.graph.output[0].name) == ("input", "output")
    failing = nn.Sequential(nn.Conv2d(1, 2, 3), Lambda(lambda self, x: Cube.apply(x)))
    with pytest.raises(mconnx.ExportError):
        mconnx.export(failing, np.zeros((1, 1, 4, 4), np.float32), path)
    assert onnx.load(path) == proto and [p.name for p in tmp_path.iterdir()] == ["m.onnx"]


def test_older_opsets_pin_their_ir_version_and_others_are_refused():
    proto = exported(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 9, 3)), (1, 5, 5),
                     opset=13)
    assert (proto.ir_version, proto.opset_import[0].version) == (7, 13)
    with pytest.raises(ValueError, match="opset must be one of"):
        mconnx.to_model(nn.ReLU(), np.zeros((1, 2), np.float32), opset=18)
    with pytest.raises(ValueError, match="floating-point example input"):
        mconnx.to_model(nn.ReLU(), np.zeros((1, 2), np.int64))


def test_minicnn_onnx_shadows_nothing():
    """minicnn.onnx imports the onnx package by its absolute name, and both stay what they are."""
    assert importlib.import_module("onnx") is onnx and mconnx.__name__ == "minicnn.onnx"
    assert mconnx.trace.helper is onnx.helper and mconnx.convert.numpy_helper is onnx.numpy_helper


def test_node_names_are_module_paths():
    model = mc.models.resnet20()
    proto = mconnx.to_model(model, np.zeros((1, 3, 8, 8), np.float32))
    names = {n.name for n in proto.graph.node}
    assert {"conv1/Conv", "layer1.0.conv1/Conv", "layer1.0.bn2/BatchNormalization", "layer1.0/Add",
            "layer2.0.downsample/Pad", "fc/Gemm"} <= names
    expected = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert sorted(i.name for i in proto.graph.initializer) == sorted(expected)


# --- python -m minicnn.export --------------------------------------------------------------------------------------
def one_error(capsys, *parts):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    for part in parts:
        assert part in err[0], (part, err[0])


def test_cli_exports_a_zoo_model(tmp_path, capsys):
    out = tmp_path / "r.onnx"
    assert export_cli.main(["resnet20", str(out), "--num-classes", "7", "--input-size", "3", "8", "8"]) == 0
    assert f"wrote {out}: CifarResNet" in capsys.readouterr().out
    proto = onnx.load(out)
    assert dims(proto.graph.input[0]) == ["batch", 3, 8, 8] and dims(proto.graph.output[0]) == ["batch", 7]
    before = out.read_bytes()
    assert export_cli.main(["resnet20", str(out), "--input-size", "3", "8", "8"]) == 2
    one_error(capsys, f"{out} exists; pass --overwrite")
    assert out.read_bytes() == before
    assert export_cli.main(["lenet5", str(out), "--input-size", "1", "28", "28", "--overwrite", "--static-batch"]) == 0
    assert dims(onnx.load(out).graph.input[0]) == [1, 1, 28, 28]


def test_cli_exports_a_checkpoint(tmp_path, capsys):
    model = mc.models.create("lenet5", num_classes=10, in_channels=1)
    settings = dict(model="lenet5", dataset="mnist", epochs=1, batch_size=64, lr=0.1, optimizer="sgd",
                    weight_decay=0.0, label_smoothing=0.0, seed=0, limit=None, device="cpu", data_dir=None)
    checkpoint.save(tmp_path / "last.npz", model, meta=dict(settings=settings, epoch=1))
    out = tmp_path / "lenet.onnx"
    assert export_cli.main([str(tmp_path / "last.npz"), str(out)]) == 0
    x = np.random.default_rng(0).standard_normal((3, 1, 28, 28)).astype(np.float32)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(got, model.eval()(mc.tensor(x)).numpy(), rtol=1e-4, atol=1e-5)
    assert export_cli.main([str(tmp_path / "last.npz"), str(tmp_path / "b.onnx"), "--num-classes", "3"]) == 2
    one_error(capsys, "--num-classes goes with a zoo name")


def test_cli_knows_every_data_set_it_rebuilds_checkpoints_for():
    """A checkpoint's model is rebuilt from its data set's classes and image shape, without loading the data."""
    assert set(export_cli.DATA) == set(data.DATASETS) | set(data.DETECTION_DATASETS)
    synthetic, _ = data.make_synthetic(n_train=2, n_test=1)
    assert export_cli.DATA["synthetic"] == (synthetic.num_classes, synthetic.images.shape[1:])
    image, _ = data.load_detection_dataset("shapes-detection")[1][0]
    assert export_cli.DATA["shapes-detection"] == (len(data.ShapeDetection.classes), image.shape)
    size = inspect.signature(data.DigitDetection).parameters["size"].default
    assert export_cli.DATA["digits-detection"] == (len(data.DigitDetection.classes), (1, size, size))


@pytest.mark.parametrize("args, expected", [
    (["resnet9", "X"], "resnet9 is neither a checkpoint file nor a model of the zoo"),
    (["resnet20", "X"], "give --input-size C H W"),
    (["resnet20", "X", "--input-size", "3", "8"], "--input-size: expected 3 arguments"),
    (["resnet20", "X", "--input-size", "3", "0", "8"], "expected a positive integer, got 0"),
    (["resnet20", "X", "--input-size", "3", "8", "8", "--opset", "9"], "opset must be one of"),
    (["lenet5", "X", "--input-size", "1", "8", "8"], "LeNet5: expected 28x28 images"),
    (["vgg11", "X", "--input-size", "3", "80", "80"], "adaptive_avg_pool2d from 2x2 to 7x7"),
    (["BAD", "X"], "is not a minicnn checkpoint"),
    (["resnet20", "DIR", "--input-size", "3", "8", "8"], "is a directory")])
def test_cli_errors_are_one_line(tmp_path, monkeypatch, capsys, args, expected):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "BAD").write_text("not a checkpoint")
    (tmp_path / "DIR").mkdir()
    assert export_cli.main(args) == 2
    one_error(capsys, expected)
    assert not (tmp_path / "X").exists()
