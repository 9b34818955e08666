"""Every fast path held to the reference (minicnn/reference/): each op through each of its fast implementations,
forced on, against the same op under use_kernels("reference"), forward and backward, float64 and float32, on the
CPU and (skipped without one) the GPU; whole training steps of three models under both switches; and the kernel
modules' promise of the same names and signatures."""
import ast
import importlib
import inspect
from pathlib import Path

import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import kernels_cpu, models, nn, optim, reference
from minicnn.functional import conv

TOL = {np.float64: dict(rtol=1e-10, atol=1e-11), np.float32: dict(rtol=2e-4, atol=2e-5)}
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
DTYPES = [np.float64, np.float32]


def run_both(op, arrays, device, dtype, seed=1):
    """op's outputs and input gradients, with the fast kernels and with the reference: two lists of arrays."""
    results = []
    for mode in ("fast", "reference"):
        with mc.use_kernels(mode):
            inputs = [mc.tensor(a.astype(dtype), requires_grad=True, device=device) for a in arrays]
            y = op(*inputs)
            grad = np.random.default_rng(seed).standard_normal(y.shape).astype(dtype)
            y.backward(mc.tensor(grad, device=device))
            results.append([y.numpy()] + [t.grad.numpy() for t in inputs])
    return results


def assert_agree(fast, ref, dtype):
    for got, expected in zip(fast, ref):
        np.testing.assert_allclose(got, expected, **TOL[dtype])


# --- convolution: each path forced on --------------------------------------------------------------------------------

CONV_CASES = {  # name: (x shape, w shape, stride, padding, dilation, groups)
    "lenet-conv1": ((3, 1, 12, 11), (6, 1, 5, 5), 1, 2, 1, 1),
    "lenet-conv2": ((2, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1, 1),
    "3x3-padded": ((2, 8, 9, 10), (12, 8, 3, 3), 1, 1, 1, 1),
    "grouped-dilated": ((2, 12, 9, 11), (20, 6, 3, 2), 1, (2, 1), (2, 1), 2),
    "depthwise": ((2, 6, 7, 6), (6, 1, 3, 3), 1, 1, 1, 6),
    "1x1": ((2, 16, 5, 5), (8, 16, 1, 1), 1, 0, 1, 1),
    "1x1-strided-grouped": ((2, 12, 7, 6), (9, 4, 1, 1), 2, 0, 1, 3),
    "33-outputs": ((2, 9, 11, 7), (33, 9, 2, 3), 1, (0, 1), 1, 1),
    "strided": ((2, 3, 13, 12), (8, 3, 7, 7), 2, 3, 1, 1),
    "strided-dilated-grouped": ((2, 6, 13, 12), (9, 2, 3, 3), (2, 3), (1, 2), (1, 2), 3),
    "1x1-grouped": ((3, 12, 5, 4), (9, 4, 1, 1), 1, 0, 1, 3),
}
# A path and the im2col settings it needs: thresholds forced so that the variant named runs.
CONV_PATHS = {
    "im2col": dict(path="im2col", SHIFTED_WIDTH=0, FLIPPED_WEIGHT=0),
    "im2col-shifted": dict(path="im2col", SHIFTED_WIDTH=np.inf, FLIPPED_WEIGHT=0),
    "im2col-grad-x-by-convolution": dict(path="im2col", SHIFTED_WIDTH=0, FLIPPED_WEIGHT=np.inf),
    "im2col-chunks-of-one-image": dict(path="im2col", CHUNK_BYTES={"cpu": 1, "cuda": 1}),
    "im2col-grad-w-untransposed": dict(path="im2col", TRANSPOSED_GRAD_W=0),
    "direct": dict(path="direct"),
    "tiled": dict(path="tiled"),
    "pointwise": dict(path="pointwise"),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", CONV_PATHS)
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_paths_agree_with_the_reference(monkeypatch, case, path, dtype, device):
    x_shape, w_shape, stride, padding, dilation, groups = CONV_CASES[case]
    settings = dict(CONV_PATHS[path])
    forced = settings.pop("path")
    if forced == "pointwise" and (w_shape[2:] != (1, 1) or padding != 0):
        pytest.skip("the pointwise path is for 1x1 kernels without padding")
    if forced == "direct" and stride != 1:
        pytest.skip("the direct kernels are for stride 1")
    if forced == "tiled" and device == "cuda":
        pytest.skip("register tiles are the CPU's")
    for name, value in settings.items():
        monkeypatch.setattr(conv, name, value)
    taken = []
    choose = conv.conv_path
    monkeypatch.setattr(conv, "conv_path", lambda *a: taken.append(choose(*a)) or (
        taken[-1] if taken[-1] == "reference" else forced))
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    fast, ref = run_both(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), arrays, device, dtype)
    assert taken[0] != "reference" and taken[-1] == "reference"
    assert_agree(fast, ref, dtype)


@pytest.mark.parametrize("register_bytes", [16, 32, 64], ids=["SSE-NEON", "AVX2", "AVX-512"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ["lenet-conv1", "lenet-conv2", "grouped-dilated", "33-outputs",
                                  "strided-dilated-grouped"])
def test_tiled_kernels_at_every_register_width(monkeypatch, case, dtype, register_bytes):
    """The register tiles are sized for the CPU (kernels_cpu/simd.py); each width is compiled and checked here,
    whatever CPU runs the test (LLVM splits a vector wider than the machine's registers)."""
    from minicnn.kernels_cpu import simd
    monkeypatch.setattr(simd, "REGISTER_BYTES", register_bytes)
    monkeypatch.setattr(conv, "conv_path", lambda geom, device: "reference" if mc.kernels_mode() == "reference"
                        else "tiled")
    x_shape, w_shape, stride, padding, dilation, groups = CONV_CASES[case]
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])]
    fast, ref = run_both(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), arrays, "cpu", dtype)
    assert_agree(fast, ref, dtype)


def test_tiled_kernels_with_small_weight_chunks_and_an_infinite_gradient(monkeypatch):
    """grad_w summed over several chunks of images (WEIGHT_CHUNK smaller than one image's outputs); an infinite
    output gradient gives inf, not NaN, in grad_x under an odd number of taps (0 * inf never happens), as in the
    reference."""
    monkeypatch.setattr(importlib.import_module("minicnn.kernels_cpu.conv_tiled"), "WEIGHT_CHUNK", 16)
    monkeypatch.setattr(conv, "conv_path", lambda geom, device: "reference" if mc.kernels_mode() == "reference"
                        else "tiled")
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((5, 4, 6, 7)), np.abs(rng.standard_normal((8, 4, 3, 3))) + 0.1]
    fast, ref = run_both(lambda x, w: F.conv2d(x, w, None, 1, 0), arrays, "cpu", np.float64)
    assert_agree(fast, ref, np.float64)
    grads = []
    for mode in ("fast", "reference"):
        with mc.use_kernels(mode):
            x, w = (mc.tensor(a.astype(np.float32), requires_grad=True) for a in arrays)
            y = F.conv2d(x, w, None, 1, 0)
            g = np.zeros(y.shape, np.float32)
            g[0, 0, 1, 1] = np.inf
            y.backward(mc.tensor(g))
            grads.append(x.grad.numpy())
    np.testing.assert_array_equal(np.isinf(grads[0]), np.isinf(grads[1]))
    assert not np.isnan(grads[0]).any()


def test_conv_path_choices():
    """The one place that chooses, on the classic layers (benchmarks/PERFORMANCE.md says why)."""
    from minicnn import geometry
    layers = {((64, 1, 28, 28), (6, 1, 5, 5), 1, 2, 1): "tiled",           # LeNet-5's conv1
              ((64, 6, 14, 14), (16, 6, 5, 5), 1, 0, 1): "tiled",          # and conv2
              ((8, 512, 4, 4), (512, 512, 3, 3), 1, 1, 1): "im2col",       # ResNet's last stage on small maps
              ((8, 3, 224, 224), (64, 3, 7, 7), 2, 3, 1): "tiled",         # ResNet's first layer, stride 2
              ((8, 64, 16, 16), (128, 64, 3, 3), 2, 1, 1): "tiled",        # a stride-2 3x3 to an 8x8 map
              ((8, 256, 4, 4), (512, 256, 3, 3), 2, 1, 1): "im2col",       # and to a 2x2 one
              ((8, 256, 14, 14), (256, 256, 1, 1), 1, 0, 1): "pointwise",  # a bottleneck's 1x1
              ((8, 512, 7, 7), (2048, 512, 1, 1), 1, 0, 1): "im2col",      # and on a small map
              ((8, 64, 16, 16), (128, 64, 1, 1), 2, 0, 1): "im2col",       # a ResNet shortcut, stride 2
              ((8, 64, 16, 16), (128, 64, 1, 1), 1, 1, 1): "im2col",       # a padded 1x1
              ((8, 128, 4, 4), (32, 128, 3, 3), 1, 1, 1): "tiled",         # DenseNet's 3x3 on a 4x4 map
              ((8, 128, 2, 2), (32, 128, 3, 3), 1, 1, 1): "im2col",        # and on a 2x2 one
              ((8, 256, 4, 4), (256, 256, 3, 3), 1, 1, 1): "im2col",       # ResNet's on a 4x4 map
              ((8, 32, 9, 9), (32, 1, 3, 3), 1, 1, 32): "direct",          # depthwise
              ((0, 3, 8, 8), (4, 3, 3, 3), 1, 1, 1): "empty"}
    for (x_shape, w_shape, s, p, g), path in layers.items():
        geom = geometry.Conv2d.of(x_shape, w_shape, (s, s), (p, p), (1, 1), g)
        assert conv.conv_path(geom, "cpu") == path, (x_shape, w_shape)
    assert conv.conv_path(geometry.Conv2d.of((64, 6, 14, 14), (16, 6, 5, 5), (1, 1), (0, 0), (1, 1), 1),
                          "cuda") == "im2col"
    with mc.use_kernels("reference"):
        assert conv.conv_path(geom, "cpu") == "reference"


# --- the other ops: each through kernels_for's fast kernels ------------------------------------------------------

def _maybe_the_same(name, device):
    if device == "cpu" and getattr(kernels_cpu, name) is getattr(reference, name):
        pytest.skip(f"the CPU runs the reference's {name} itself")


POOL_CASES = [((2, 3, 8, 8), dict(kernel_size=2)), ((2, 3, 9, 7), dict(kernel_size=2, ceil_mode=True)),
              ((2, 3, 11, 10), dict(kernel_size=3, stride=2, padding=1)),
              ((2, 2, 9, 8), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 1), ceil_mode=True))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,kw", POOL_CASES)
def test_pooling_agrees_with_the_reference(shape, kw, dtype, device):
    x = np.random.default_rng(0).standard_normal(shape)
    x[0, 0, :2, :2] = 0.5  # a tie: the first maximum wins
    x[1, 1, 0, 0] = -np.inf
    assert_agree(*run_both(lambda t: F.max_pool2d(t, **kw), [x], device, dtype), dtype)
    x[1, 1, 0, 0] = 0.0
    for include in (True, False):
        assert_agree(*run_both(lambda t: F.avg_pool2d(t, count_include_pad=include, **kw), [x], device, dtype), dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_global_pooling_agrees_with_the_reference(dtype, device):
    x = np.random.default_rng(0).standard_normal((3, 4, 5, 6))
    for op in (F.global_avg_pool2d, F.global_max_pool2d):
        assert_agree(*run_both(op, [x], device, dtype), dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(6, 4), (4, 3, 5), (3, 4, 5, 6)])
def test_batch_norm_agrees_with_the_reference(shape, training, dtype, device):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(shape) * 2 + 1, rng.uniform(0.5, 1.5, shape[1]), rng.standard_normal(shape[1])
    grad = rng.standard_normal(shape).astype(dtype)
    results = {}
    for mode in ("fast", "reference"):
        running = [mc.tensor(v.astype(dtype), device=device) for v in (np.linspace(-0.5, 0.5, shape[1]),
                                                                        np.linspace(0.5, 1.5, shape[1]))]
        with mc.use_kernels(mode):
            inputs = [mc.tensor(a.astype(dtype), requires_grad=True, device=device) for a in (x, w, b)]
            y = F.batch_norm(inputs[0], *running, *inputs[1:], training=training, momentum=0.3)
            y.backward(mc.tensor(grad, device=device))
        results[mode] = [y.numpy()] + [t.grad.numpy() for t in inputs] + [r.numpy() for r in running]
    assert_agree(results["fast"], results["reference"], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_statistics_far_from_zero(dtype):
    """The Numba kernel sums x - K and its square in one pass (K a value of the channel); on data at 1000 with a
    spread of 0.01 its variance still matches the reference's two-pass float64 one to 1e-9 (a plain one-pass
    E[x^2] - E[x]^2 would lose about six digits here)."""
    x = (1000 + 0.01 * np.random.default_rng(1).standard_normal((8, 3, 50))).astype(dtype)
    x[:, 1] -= 2000  # a channel far below zero too
    empty = np.empty(0, dtype)
    mean, var = kernels_cpu.batch_norm_stats(x, empty, empty, 0.1, False)
    ref_mean, ref_var = reference.batch_norm_stats(x, empty, empty, 0.1, False)
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-14)
    np.testing.assert_allclose(var, ref_var, rtol=1e-9)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_activations_lrn_and_cross_entropy_agree_with_the_reference(dtype, device):
    x = np.random.default_rng(0).standard_normal((4, 6, 3, 3))
    x[0, 0, 0] = [0.0, np.inf, -np.inf]
    assert_agree(*run_both(F.relu, [x], device, dtype), dtype)
    assert_agree(*run_both(lambda t: F.leaky_relu(t, 0.2), [x[1:]], device, dtype), dtype)
    _maybe_the_same("lrn_forward", device)
    assert_agree(*run_both(lambda t: F.local_response_norm(t, 3, 1e-2, 0.75, 2.0), [x[1:]], device, dtype), dtype)
    logits = np.random.default_rng(1).standard_normal((5, 7))
    for smoothing in (0.0, 0.1):
        assert_agree(*run_both(lambda t: F.cross_entropy(t, np.arange(5), smoothing), [logits], device, dtype), dtype)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("settings", [dict(), dict(momentum=0.9, weight_decay=0.01),
                                      dict(momentum=0.9, dampening=0.2), dict(momentum=0.9, nesterov=True)])
def test_sgd_agrees_with_the_reference(settings, dtype, device):
    params = {}
    for mode in ("fast", "reference"):
        rng = np.random.default_rng(0)
        p = mc.nn.Parameter(mc.tensor(rng.standard_normal((3, 4)).astype(dtype), device=device))
        opt = optim.SGD([p], lr=0.1, **settings)
        with mc.use_kernels(mode):
            for _ in range(3):
                p.grad = mc.tensor(rng.standard_normal((3, 4)).astype(dtype), device=device)
                opt.step()
        params[mode] = p.numpy()
    np.testing.assert_allclose(params["fast"], params["reference"], **TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
def test_dropout_masks_under_both_switches(device):
    """Masks are random: each switch gives an inverted mask (0 or 1/(1-p)) that y and the gradient both use."""
    x = np.random.default_rng(0).standard_normal((200, 50))
    for mode in ("fast", "reference"):
        with mc.use_kernels(mode):
            t = mc.tensor(x, requires_grad=True, device=device)
            y = F.dropout(t, p=0.3)
            y.sum().backward()
        mask = t.grad.numpy()
        assert set(np.unique(mask)) <= {0.0, 1 / 0.7} and 0.65 < (mask != 0).mean() < 0.75
        np.testing.assert_allclose(y.numpy(), x * mask)


# --- whole models ----------------------------------------------------------------------------------------------------

def _dense_block():
    from minicnn.models.densenet import DenseBlock
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), DenseBlock(3, 8, growth_rate=4, bn_size=2),
                         nn.GlobalAvgPool2d(), nn.Flatten(), nn.Linear(20, 10))


MODELS = {"lenet5": (lambda: models.lenet5(), (4, 1, 28, 28)), "resnet20": (lambda: models.resnet20(), (2, 3, 32, 32)),
          "densenet-block": (_dense_block, (2, 3, 8, 8))}


@pytest.mark.parametrize("name", MODELS)
def test_model_steps_agree_between_the_switches(name):
    """One SGD step of a float64 model: loss, every gradient and every updated parameter within 1e-10 relative."""
    build, shape = MODELS[name]
    results = {}
    for mode in ("fast", "reference"):
        mc.manual_seed(0)
        model = build().double()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
        x = mc.tensor(np.random.default_rng(0).standard_normal(shape))
        with mc.use_kernels(mode):
            loss = F.cross_entropy(model(x), np.arange(shape[0]) % 10)
            loss.backward()
            grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
            opt.step()
        results[mode] = (loss.item(), grads, model.state_dict())
    (loss_f, grads_f, state_f), (loss_r, grads_r, state_r) = results["fast"], results["reference"]
    assert loss_f == pytest.approx(loss_r, rel=1e-12)
    for key in grads_r:
        np.testing.assert_allclose(grads_f[key], grads_r[key], rtol=1e-10, atol=1e-13, err_msg=key)
    for key in state_r:
        np.testing.assert_allclose(state_f[key], state_r[key], rtol=1e-10, atol=1e-13, err_msg=key)


# --- the kernel modules' promise ---------------------------------------------------------------------------------

CPU_ONLY = {"conv_tiled", "conv_tiled_backward"}  # register tiles: on a GPU each thread already holds one output
REFERENCE_ONLY = {"conv2d_forward", "conv2d_backward"}  # the whole convolution, for conv_path's "reference"


def _gpu_signatures():
    """kernels_gpu's public functions and their parameters, read from its source (it imports CuPy)."""
    tree = ast.parse((Path(mc.__file__).parent / "kernels_gpu.py").read_text())
    return {f.name: [a.arg for a in f.args.args] for f in tree.body
            if isinstance(f, ast.FunctionDef) and not f.name.startswith("_") and f.name != "kernel_dir"}


def _signatures(module):
    return {name: list(inspect.signature(getattr(module, name)).parameters) for name in module.__all__}


def test_kernel_modules_have_the_same_names_and_signatures():
    cpu, gpu, ref = _signatures(kernels_cpu), _gpu_signatures(), _signatures(reference)
    assert set(gpu) == set(cpu) - CPU_ONLY
    assert set(ref) - REFERENCE_ONLY <= set(cpu)
    for name, params in gpu.items():
        assert params == cpu[name], name
    for name in set(ref) - REFERENCE_ONLY:
        assert ref[name] == cpu[name], name
    assert cpu["conv_tiled"] == cpu["conv_direct"] and cpu["conv_tiled_backward"] == cpu["conv_direct_backward"]


# --- the switch ----------------------------------------------------------------------------------------------------

def test_use_kernels_as_a_call_and_as_a_context_manager():
    assert mc.kernels_mode() == "fast"
    with mc.use_kernels("reference"):
        assert mc.kernels_mode() == "reference"
        with mc.use_kernels("fast"):
            assert mc.kernels_mode() == "fast"
        assert mc.kernels_mode() == "reference"
    assert mc.kernels_mode() == "fast"
    try:
        mc.use_kernels("reference")
        assert mc.kernels_mode() == "reference"
    finally:
        mc.use_kernels("fast")
    with pytest.raises(ValueError, match="use_kernels: expected 'fast' or 'reference', got 'numba'"):
        mc.use_kernels("numba")


def test_training_from_the_command_line_on_the_reference(tmp_path):
    """MINICNN_KERNELS=reference python -m minicnn.train lenet: every op of the run on the reference."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, MINICNN_KERNELS="reference")
    probe = subprocess.run([sys.executable, "-c", "import minicnn; print(minicnn.kernels_mode())"], env=env,
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "reference"
    run = subprocess.run([sys.executable, "-m", "minicnn.train", "lenet", "--dataset", "synthetic", "--epochs", "1",
                          "--limit", "512", "--out", str(tmp_path / "run"), "--no-progress"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "test accuracy" in run.stdout and (tmp_path / "run" / "last.npz").exists()
    bad = subprocess.run([sys.executable, "-c", "import minicnn"], env=dict(env, MINICNN_KERNELS="slow"),
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "MINICNN_KERNELS must be 'fast' or 'reference', got 'slow'" in bad.stderr
