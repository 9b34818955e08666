"""GPU backend: the same configurations as the CPU tests, GPU against CPU, forward and backward, float64 and
float32. Skipped unless CuPy sees a GPU."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
from minicnn import nn
from test_conv import conv_configs
from test_conv import make as make_conv
from test_conv import run as run_conv
from test_pool import avgp, maxp, pool_configs
from test_pool import make as make_pool

pytestmark = pytest.mark.gpu
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=2e-4, atol=2e-4)}


def both(*tensors):
    """CPU leaves and GPU copies of them (also leaves)."""
    gpu = [mc.tensor(t.data, requires_grad=t.requires_grad, device="cuda") for t in tensors]
    return list(tensors), gpu


def compare(fn, cpu, gpu, dtype, grad_seed=0):
    y_c, y_g = fn(*cpu), fn(*gpu)
    assert y_g.device.type == "cuda"
    np.testing.assert_allclose(y_g.numpy(), y_c.numpy(), **TOL[dtype])
    g = np.random.default_rng(grad_seed).standard_normal(y_c.shape).astype(dtype)
    y_c.backward(g)
    y_g.backward(mc.tensor(g, device="cuda"))
    for a, b in zip(cpu, gpu):
        if a.requires_grad:
            assert b.grad.device.type == "cuda"
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), **TOL[dtype])


@settings(max_examples=40)
@given(conv_configs(), st.sampled_from([np.float64, np.float32]))
def test_conv2d_gpu_matches_cpu(cfg, dtype):
    x, w, b = make_conv(cfg, dtype)
    cpu, gpu = both(*[t for t in (x, w, b) if t is not None])
    compare(lambda *a: run_conv(cfg, *a), cpu, gpu, dtype)


@settings(max_examples=40)
@given(pool_configs(), st.sampled_from([np.float64, np.float32]))
def test_pooling_gpu_matches_cpu(cfg, dtype):
    x = make_pool(cfg)
    x = mc.tensor(x.numpy().astype(dtype), requires_grad=True)
    for fn in (maxp, avgp):
        cpu, gpu = both(x)
        compare(lambda t: fn(cfg, t), cpu, gpu, dtype)
        x.grad = None


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shifted_im2col_kernels_match_cpu(dtype):
    import cupy as cp
    from minicnn import geometry, kernels_cpu, kernels_gpu
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
    geom = geometry.Conv2d.of(x.shape, (4, 3, 3, 2), (1, 1), (0, 0), (2, 1), 1)  # OH 3
    cols = kernels_cpu.im2col_shifted(x, geom)
    np.testing.assert_array_equal(cp.asnumpy(kernels_gpu.im2col_shifted(cp.asarray(x), geom)), cols)
    d = rng.standard_normal(cols.shape).astype(dtype)
    np.testing.assert_allclose(cp.asnumpy(kernels_gpu.col2im_shifted(cp.asarray(d), geom)),
                               kernels_cpu.col2im_shifted(d, geom), **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_direct_conv_kernels_match_cpu(dtype):
    import cupy as cp
    from minicnn import geometry, kernels_cpu, kernels_gpu
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 7, 6)).astype(dtype)  # padded by (1, 0): the input is (2, 4, 5, 6)
    w = rng.standard_normal((6, 2, 3, 2)).astype(dtype)  # groups 2
    geom = geometry.Conv2d.of((2, 4, 5, 6), w.shape, (1, 1), (1, 0), (2, 1), 2)  # OH 3, OW 5
    b = rng.standard_normal(6).astype(dtype)
    y = kernels_cpu.conv_direct(x, w, b, geom)
    np.testing.assert_allclose(cp.asnumpy(kernels_gpu.conv_direct(cp.asarray(x), cp.asarray(w), cp.asarray(b), geom)),
                               y, **TOL[dtype])
    g = rng.standard_normal((2, 6, 3 * 6)).astype(dtype)
    g.reshape(2, 6, 3, 6)[..., 5:] = 0  # the junk column of each row
    np.testing.assert_allclose(cp.asnumpy(kernels_gpu.conv_direct_weight(cp.asarray(x), cp.asarray(g), geom)),
                               kernels_cpu.conv_direct_weight(x, g, geom), **TOL[dtype])
    np.testing.assert_allclose(cp.asnumpy(kernels_gpu.conv_direct_input(cp.asarray(g), cp.asarray(w), geom)),
                               kernels_cpu.conv_direct_input(g, w, geom), **TOL[dtype])
    gy = rng.standard_normal((2, 6, 3, 5)).astype(dtype)
    on_gpu = kernels_gpu.conv_direct_backward(cp.asarray(x), cp.asarray(gy), cp.asarray(w), geom)
    for got, ref in zip(on_gpu, kernels_cpu.conv_direct_backward(x, gy, w, geom)):
        np.testing.assert_allclose(cp.asnumpy(got), ref, **TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_global_adaptive_norm_ops_gpu(dtype):
    rng = np.random.default_rng(0)
    x = mc.tensor(rng.standard_normal((3, 4, 5, 6)).astype(dtype), requires_grad=True)
    for fn in (F.global_avg_pool2d, F.global_max_pool2d, lambda t: F.adaptive_avg_pool2d(t, (2, 4)),
               lambda t: F.local_response_norm(t, 3, 0.1, 0.75, 2.0), F.relu, F.sigmoid,
               lambda t: F.batch_norm(t, None, None, training=True)):
        x.grad = None
        cpu, gpu = both(x)
        compare(fn, cpu, gpu, dtype)


def test_gradcheck_on_gpu():
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 2, 5, 5)), requires_grad=True, device="cuda")
    w = mc.tensor(np.random.default_rng(1).standard_normal((3, 2, 3, 3)), requires_grad=True, device="cuda")
    assert mc.gradcheck(lambda x, w: F.max_pool2d(F.conv2d(x, w, padding=1), 2), [x, w])


def test_device_model():
    x = mc.tensor(np.arange(6.0).reshape(2, 3), device="cuda")
    assert x.device == "cuda:0" and isinstance(x.numpy(), np.ndarray)
    y = mc.tensor(np.ones((2, 3)), requires_grad=True)
    z = (y.to("cuda") * 2).sum()
    z.backward()
    assert y.grad.device == "cpu"  # the gradient flows back across the copy
    np.testing.assert_array_equal(y.grad.numpy(), np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="all inputs must be on one device, got cuda:0 and cpu"):
        x + mc.tensor(np.ones((2, 3)))
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU()).to("cuda")
    assert all(p.device == "cuda:0" for p in model.parameters())
    assert model[1].running_mean.device == "cuda:0"
    out = model(mc.tensor(np.zeros((2, 1, 5, 5), np.float32), device="cuda"))
    assert out.device == "cuda:0" and out.shape == (2, 2, 3, 3)


def test_training_step_gpu_equals_cpu():
    def build():
        mc.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).double()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 1, 8, 8)), rng.integers(0, 3, 8)
    results = []
    for device in ("cpu", "cuda"):
        model = build().to(device)
        opt = mc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            loss = F.cross_entropy(model(mc.tensor(x, device=device)), mc.tensor(y, device=device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        results.append(model.state_dict())
    for k in results[0]:
        np.testing.assert_allclose(results[1][k], results[0][k], rtol=1e-9, atol=1e-11)


def test_compile_error_names_the_file(tmp_path, monkeypatch):
    from minicnn import kernels_gpu
    (tmp_path / "im2col.cu").write_text("this is not CUDA")
    monkeypatch.setattr(kernels_gpu, "kernel_dir", lambda: tmp_path)
    kernels_gpu._module.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"compiling the CUDA kernels in .*im2col.cu failed"):
            kernels_gpu._module("im2col.cu")
    finally:
        kernels_gpu._module.cache_clear()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cuda_kernels_of_the_hot_path_match_cpu(dtype):
    rng = np.random.default_rng(0)
    x = mc.tensor(rng.standard_normal((6, 5)).astype(dtype), requires_grad=True)
    y = np.array([0, 4, 2, 2, 1, 3])
    for eps in (0.0, 0.1):
        x.grad = None
        cpu, gpu = both(x)
        compare(lambda t: F.cross_entropy(t, y, label_smoothing=eps), cpu, gpu, dtype)
    img = mc.tensor(rng.standard_normal((3, 6, 4, 5)).astype(dtype), requires_grad=True)
    for fn in (F.relu, lambda t: F.leaky_relu(t, 0.2), lambda t: F.local_response_norm(t, 5, 1e-2, 0.75, 2.0),
               lambda t: F.batch_norm(t, None, None, training=True)):
        img.grad = None
        cpu, gpu = both(img)
        compare(fn, cpu, gpu, dtype)


def test_batch_norm_running_statistics_on_gpu():
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32) * 2 + 1
    bn_cpu, bn_gpu = nn.BatchNorm2d(3), nn.BatchNorm2d(3).to("cuda")
    for _ in range(3):
        bn_cpu(mc.tensor(x))
        bn_gpu(mc.tensor(x, device="cuda"))
    for k, v in bn_cpu.state_dict().items():
        np.testing.assert_allclose(bn_gpu.state_dict()[k], v, rtol=1e-5)


def test_dropout_on_gpu_is_seeded_and_inverted():
    x = mc.tensor(np.ones(100000, np.float32), requires_grad=True, device="cuda")
    mc.manual_seed(1)
    y = F.dropout(x, 0.3)
    kept = y.numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.numpy()[kept], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.7, rtol=1e-6)
    mc.manual_seed(1)
    np.testing.assert_array_equal(F.dropout(x, 0.3).numpy() != 0, kept)


def test_out_of_range_gpu_label_gives_nan_loss():
    logits = mc.tensor(np.zeros((2, 3), np.float32), device="cuda")
    assert np.isnan(F.cross_entropy(logits, mc.tensor(np.array([0, 3]), device="cuda")).item())
    with pytest.raises(ValueError, match="labels must lie in"):  # host labels are checked on the host
        F.cross_entropy(logits, np.array([0, 3]))


def test_training_step_makes_no_host_copies():
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no allow_synchronize guard")
    from minicnn.tasks import train_step
    mc.manual_seed(0)
    model = mc.models.lenet5().to("cuda")
    opt = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = mc.tensor(np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32), device="cuda")
    y = mc.tensor(np.arange(16) % 10, device="cuda")
    train_step(model, opt, x, y)  # compiles and caches every kernel
    with cupyx.allow_synchronize(False):  # raises cupyx.DeviceSynchronized on any device-to-host wait
        loss, _ = train_step(model, opt, x, y)
    assert np.isfinite(loss.item())


def test_relu_of_infinities_on_gpu():
    x = np.array([-np.inf, -1.0, 0.0, 2.0, np.inf, np.nan], np.float32)
    cpu, gpu = both(mc.tensor(x, requires_grad=True))
    for t in cpu + gpu:
        y = F.relu(t)
        y.backward(mc.tensor(np.full(6, np.inf, np.float32), device=t.device))
    np.testing.assert_array_equal(F.relu(gpu[0]).numpy(), F.relu(cpu[0]).numpy())
    np.testing.assert_array_equal(gpu[0].grad.numpy(), cpu[0].grad.numpy())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_step_gpu_matches_cpu(dtype):
    import cupy as cp
    from minicnn import kernels_cpu, kernels_gpu
    rng = np.random.default_rng(0)
    p, g, buf = (rng.standard_normal(1000).astype(dtype) for _ in range(3))
    dp, dbuf = cp.asarray(p), cp.asarray(buf)
    for first in (True, False):
        args = tuple(dtype(v) for v in (0.1, 0.01, 0.9, 0.7)) + (True, first)
        kernels_cpu.sgd_step(p, g, buf, *args)
        kernels_gpu.sgd_step(dp, cp.asarray(g), dbuf, *args)
        np.testing.assert_allclose(cp.asnumpy(dp), p, **TOL[dtype])
        np.testing.assert_allclose(cp.asnumpy(dbuf), buf, **TOL[dtype])
