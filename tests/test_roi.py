"""RoI pooling and RoI align (minicnn.ops): hand-computed cases on a 4x4 ramp, float64 gradient checks over
hypothesis-drawn RoIs (several per image, partly outside the image, halves that test the rounding), the Numba
kernels against the reference, the list-of-boxes form, the modules, bad inputs, torchvision (skipped without it),
and the GPU against the CPU (skipped without one)."""
import doctest

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.ops as ops
from minicnn import reference
from minicnn.kernels_cpu import roi as cpu_roi
from minicnn.ops import roi as roi_module
from minicnn.reference.roi import LOWEST, roi_align_sample_lists, roi_align_samples, roi_pool_bins

RAMP = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)  # x[r, c] = 4 r + c + 1: bilinear interpolation reproduces it
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-5, atol=2e-6)}


def torchvision_or_skip():
    """(torch, torchvision.ops), or a skip: a torchvision built for another PyTorch raises on import."""
    try:
        import torch
        import torchvision.ops
        return torch, torchvision.ops
    except Exception as e:
        pytest.skip(f"torchvision is not usable here: {type(e).__name__}: {e}")


@st.composite
def roi_configs(draw):
    return dict(n=draw(st.integers(1, 2)), c=draw(st.integers(1, 3)), h=draw(st.integers(1, 8)),
                w=draw(st.integers(1, 8)), k=draw(st.integers(1, 6)), scale=draw(st.sampled_from([0.25, 0.5, 1.0])),
                out=(draw(st.integers(1, 4)), draw(st.integers(1, 4))), ratio=draw(st.sampled_from([-1, 0, 1, 2])),
                aligned=draw(st.booleans()), halves=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def make(cfg, dtype=np.float64):
    """(x, rois): distinct values in x (a unique maximum in every bin, for finite differences through the max) and
    RoIs anywhere from partly left of / above the image to partly past it, on half pixels when cfg["halves"]."""
    rng = np.random.default_rng(cfg["seed"])
    n, c, h, w, s = cfg["n"], cfg["c"], cfg["h"], cfg["w"], cfg["scale"]
    x = (rng.permutation(n * c * h * w) * 0.1 - 0.05 * n * c * h * w).reshape(n, c, h, w)
    lo = rng.uniform(-0.4, 1.1, (cfg["k"], 2)) * [w / s, h / s]
    hi = lo + rng.uniform(0.0, 0.9, (cfg["k"], 2)) * [w / s, h / s]
    corners = np.concatenate([lo, hi], axis=1)
    if cfg["halves"]:
        corners = np.round(corners * 2) / 2
    rois = np.concatenate([rng.integers(0, n, (cfg["k"], 1)), corners], axis=1)
    return mc.tensor(x.astype(dtype), requires_grad=True), rois.astype(dtype)


def pool(cfg, x, rois):
    return ops.roi_pool(x, rois, cfg["out"], cfg["scale"])


def align(cfg, x, rois):
    return ops.roi_align(x, rois, cfg["out"], cfg["scale"], cfg["ratio"], cfg["aligned"])


def forward_backward(op, cfg, x, rois, grad_seed=1):
    """op's output and input gradient as arrays."""
    x.grad = None
    y = op(cfg, x, rois)
    y.backward(np.random.default_rng(grad_seed).standard_normal(y.shape).astype(x.dtype))
    return y.numpy(), x.grad.numpy()


# --- hand-computed cases --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("box,scale,out,expected", [
    ([0, 0, 3, 3], 1.0, 2, [[6, 8], [14, 16]]),                   # 4 x 4 pixels (the +1), bins of 2
    ([0, 0, 6, 6], 0.5, 2, [[6, 8], [14, 16]]),                   # the same RoI in image pixels at scale 1/2
    ([0.4, 0.6, 2.5, 2.5], 1.0, (3, 2), [[6, 8], [10, 12], [14, 16]]),  # rounds to cols 0..3, rows 1..3
    ([-0.5, 0, 0.5, 0], 1.0, (1, 3), [[0, 1, 2]]),                # -0.5 -> -1 (away from zero): an empty bin gives 0
    ([10, 10, 12, 12], 1.0, 2, [[0, 0], [0, 0]]),                 # wholly outside the image
])
def test_roi_pool_by_hand(box, scale, out, expected):
    y = ops.roi_pool(mc.tensor(RAMP), [np.array([box], dtype=float)], out, scale)
    np.testing.assert_array_equal(y.numpy()[0, 0], expected)


def test_roi_pool_gradient_goes_to_each_bins_maximum():
    x = mc.tensor(RAMP, requires_grad=True)
    ops.roi_pool(x, np.array([[0, 0, 0, 3, 3], [0, 10, 10, 12, 12]], dtype=float), 2).sum().backward()
    expected = np.zeros((4, 4))
    expected[1::2, 1::2] = 1  # the outside RoI's empty bins send nothing back
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)


def test_roi_pool_overlapping_bins_sum_at_a_shared_maximum():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = 5.0
    x = mc.tensor(x, requires_grad=True)
    y = ops.roi_pool(x, np.array([[0, 0, 0, 2, 2]], dtype=float), 2)  # 3 pixels in 2 bins: [0, 2) and [1, 3)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), np.full((1, 1, 2, 2), 5.0))
    assert x.grad.numpy()[0, 0, 1, 1] == 4 and x.grad.numpy().sum() == 4


def test_roi_pool_ties_nan_and_minus_infinity():
    x = np.ones((1, 1, 4, 4))
    x[0, 0, 0, 0] = np.nan                     # never the maximum
    x[0, 0, 2:, 2:] = -np.inf                  # a bin of -inf alone: -FLT_MAX, and no gradient
    x = mc.tensor(x, requires_grad=True)
    y = ops.roi_pool(x, np.array([[0, 0, 0, 3, 3]], dtype=float), 2)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy()[0, 0], [[1, 1], [1, LOWEST]])
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[0, 2] = expected[2, 0] = 1  # the first maximum of each bin, in row-major order
    np.testing.assert_array_equal(x.grad.numpy()[0, 0], expected)


@pytest.mark.parametrize("box,ratio,aligned,expected", [
    ([0, 0, 2, 2], 2, False, 6.0),      # samples at rows and columns 0.5, 1.5: 4 * 1 + 1 + 1
    ([0, 0, 2, 2], -1, False, 6.0),     # the adaptive grid: ceil(2 / 1) = 2 points per axis
    ([0, 0, 2, 2], 2, True, 3.5),       # half a pixel up and left: samples at 0 and 1
    ([3, 0, 4, 1], 1, False, 6.0),      # x = 3.5, past the last column but within one pixel: read at 3
    ([3.5, 0, 4.5, 1], 1, False, 6.0),  # x = 4 = W: still inside
    ([4.5, 0, 5.5, 1], 1, False, 0.0),  # x = 5 > W: outside, 0
    ([-1, 0, 0, 1], 1, False, 3.0),     # x = -0.5: moved onto column 0
    ([-2, 0, -1, 1], 1, False, 0.0),    # x = -1.5 < -1: outside
    ([1, 1, 1, 1], -1, False, 8.5),     # an empty RoI grows to one pixel: one sample at 1.5, 1.5
    ([1, 1, 1, 1], -1, True, 0.0),      # ... but not when aligned: no samples, 0
    ([1, 1, 1, 1], 2, True, 3.5),       # four samples, all at 0.5, 0.5
])
def test_roi_align_by_hand(box, ratio, aligned, expected):
    y = ops.roi_align(mc.tensor(RAMP), np.array([[0] + box], dtype=float), 1, sampling_ratio=ratio, aligned=aligned)
    assert y.item() == pytest.approx(expected, abs=1e-12)


def test_roi_align_gradient_by_hand():
    x = mc.tensor(RAMP, requires_grad=True)
    ops.roi_align(x, np.array([[0, 0, 0, 2, 2]], dtype=float), 1, sampling_ratio=2).backward()
    expected = np.zeros((4, 4))
    expected[:3, :3] = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16  # four samples, a quarter of each pixel
    np.testing.assert_allclose(x.grad.numpy()[0, 0], expected, atol=1e-15)


def test_bins_and_samples_are_computed_in_the_inputs_dtype():
    """10 pixels in 6 bins: bin 3 starts at floor(3 * (10 / 6)), which is 5 in float32 and in exact arithmetic but
    4 when float32's 10 / 6 is multiplied in float64."""
    rois = np.array([[0, 0, 0, 0, 9]], dtype=np.float32)
    assert roi_pool_bins(rois, 1.0, (6, 1), 10, 10)[0][0, 3] == 5
    rows, _, count = roi_align_samples(rois, 1.0, (2, 1), -1, False, 10, 10)
    assert rows.grid.tolist() == [5] and count.dtype == np.float32 and rows.weight.dtype == np.float32


def test_docstring_examples():
    assert doctest.testmod(roi_module, extraglobs=dict(mc=mc, np=np)).failed == 0


# --- gradient checks --------------------------------------------------------------------------------------------

@given(roi_configs())
@example(dict(n=2, c=2, h=5, w=6, k=6, scale=0.5, out=(2, 3), ratio=-1, aligned=False, halves=True, seed=3))
def test_roi_pool_gradcheck(cfg):
    x, rois = make(cfg)
    assert mc.gradcheck(lambda x: pool(cfg, x, rois), [x], eps=1e-4)


@given(roi_configs())
@example(dict(n=2, c=2, h=5, w=6, k=6, scale=0.25, out=(3, 2), ratio=2, aligned=True, halves=False, seed=4))
def test_roi_align_gradcheck(cfg):
    x, rois = make(cfg)
    assert mc.gradcheck(lambda x: align(cfg, x, rois), [x])


# --- the kernels: Numba against the reference -----------------------------------------------------------------

@given(roi_configs(), st.sampled_from([np.float64, np.float32]))
def test_numba_kernels_match_the_reference(cfg, dtype):
    x, rois = make(cfg, dtype)
    for op in (pool, align):
        with mc.use_kernels("reference"):
            expected = forward_backward(op, cfg, x, rois)
        for got, want in zip(forward_backward(op, cfg, x, rois), expected):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, **TOL[dtype])


def test_reference_mode_runs_the_reference(monkeypatch):
    cfg = dict(n=1, c=1, h=4, w=4, k=2, scale=1.0, out=2, ratio=-1, aligned=False, halves=False, seed=0)
    x, rois = make(cfg)
    calls = []
    for name in ("roi_pool_forward", "roi_align_forward"):
        real = getattr(reference, name)
        monkeypatch.setattr(reference, name, lambda *a, real=real, name=name: calls.append(name) or real(*a))
    pool(cfg, x, rois), align(cfg, x, rois)
    assert calls == []
    with mc.use_kernels("reference"):
        pool(cfg, x, rois), align(cfg, x, rois)
    assert calls == ["roi_pool_forward", "roi_align_forward"]


def test_serial_and_parallel_kernels_agree_bit_for_bit():
    cfg = dict(n=2, c=3, h=7, w=9, k=6, scale=0.5, out=(3, 2), ratio=-1, aligned=False, halves=False, seed=5)
    x, rois = make(cfg)
    x = x.numpy()
    batch = rois[:, 0].astype(np.int64)
    order, starts = cpu_roi.rois_by_image(rois, 2)
    rows, cols, count = roi_align_sample_lists(rois, 0.5, (3, 2), -1, False, 7, 9)
    tables = (*rows, *cols, count)
    grad_y = np.random.default_rng(0).standard_normal((6, 3, 3, 2))
    _, argmax = cpu_roi.roi_pool_forward(x, rois, 0.5, (3, 2))
    for kernel, args in [(cpu_roi._roi_pool, (x, batch) + roi_pool_bins(rois, 0.5, (3, 2), 7, 9)),
                         (cpu_roi._roi_pool_backward, (grad_y, argmax, order, starts, 2, 3, 7, 9)),
                         (cpu_roi._roi_align, (x, batch) + tables + (3, 2)),
                         (cpu_roi._roi_align_backward, (grad_y, order, starts) + tables + (2, 7, 9))]:
        serial, parallel = kernel.serial(*args), kernel.parallel(*args)
        for a, b in zip(serial if isinstance(serial, tuple) else [serial], parallel if isinstance(parallel, tuple)
                        else [parallel]):
            np.testing.assert_array_equal(a, b)


# --- the boxes' forms, empty inputs, modules -------------------------------------------------------------------

@given(roi_configs())
def test_a_list_of_boxes_per_image_is_the_k_by_5_form(cfg):
    x, rois = make(cfg)
    per_image = [mc.tensor(rois[rois[:, 0] == i, 1:]) for i in range(cfg["n"])]
    stacked = np.concatenate([rois[rois[:, 0] == i] for i in range(cfg["n"])])
    for op in (pool, align):
        for got, want in zip(forward_backward(op, cfg, x, per_image), forward_backward(op, cfg, x, stacked)):
            np.testing.assert_array_equal(got, want)


def test_no_rois_and_images_without_rois():
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 5)), requires_grad=True)
    for fn in (ops.roi_pool, ops.roi_align):
        x.grad = None
        y = fn(x, [np.zeros((0, 4)), np.zeros((0, 4))], (2, 3))
        assert y.shape == (0, 3, 2, 3)
        y.sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), 0)
        x.grad = None
        fn(x, [np.array([[0.0, 0.0, 3.0, 2.0]]), np.zeros((0, 4))], 2).sum().backward()
        assert np.abs(x.grad.numpy()[0]).sum() > 0
        np.testing.assert_array_equal(x.grad.numpy()[1], 0)


def test_modules():
    x, boxes = mc.tensor(RAMP), [np.array([[0.0, 0.0, 3.0, 3.0]])]
    pool_layer, align_layer = ops.RoIPool((2, 2), 0.5), ops.RoIAlign(2, 0.25, 2, aligned=True)
    assert isinstance(pool_layer, mc.nn.Module) and list(align_layer.parameters()) == []
    assert repr(pool_layer) == "RoIPool(output_size=(2, 2), spatial_scale=0.5)"  # torchvision's repr
    assert repr(align_layer) == "RoIAlign(output_size=2, spatial_scale=0.25, sampling_ratio=2, aligned=True)"
    np.testing.assert_array_equal(pool_layer(x, boxes).numpy(), ops.roi_pool(x, boxes, 2, 0.5).numpy())
    np.testing.assert_array_equal(align_layer(x, boxes).numpy(), ops.roi_align(x, boxes, 2, 0.25, 2, True).numpy())
    with pytest.raises(ValueError, match="roi_align: spatial_scale must be a positive number"):
        ops.RoIAlign(7, -1.0, 2)
    with pytest.raises(ValueError, match="roi_pool: output_size must be >= 1"):
        ops.RoIPool(0, 1.0)


# --- bad inputs -------------------------------------------------------------------------------------------------

BOX = np.array([[0.0, 0.0, 0.0, 2.0, 2.0]])


@pytest.mark.parametrize("fn", [ops.roi_pool, ops.roi_align])
@pytest.mark.parametrize("x,boxes,kw,error,message", [
    (RAMP, BOX[:, 1:], {}, ValueError, r"expected boxes of shape \[K, 5\].*got \(1, 4\)"),
    (RAMP, [BOX], {}, ValueError, r"expected boxes\[0\] of shape \[L, 4\].*got \(1, 5\)"),
    (RAMP, [BOX[:, 1:], BOX[:, 1:]], {}, ValueError, "expected a list of 1 box arrays .* got 2"),
    (RAMP, [[0.0, 0.0, 1.0, 1.0]], {}, TypeError, r"boxes\[0\] must be a Tensor or an array, got list"),
    (RAMP, "boxes", {}, TypeError, "boxes must be a Tensor or an array, got str"),
    (RAMP, BOX > 0, {}, TypeError, "boxes must hold real numbers, got dtype bool"),
    (RAMP, [[0, 2, 0, 1, 2]] * np.ones((1, 5)), {}, ValueError, "box 0 has x2 < x1 or y2 < y1"),
    (RAMP, [[0, 0, 3, 2, 1]] * np.ones((1, 5)), {}, ValueError, "box 0 has x2 < x1 or y2 < y1"),
    (RAMP, np.concatenate([BOX, [[1, 0, 0, 2, 2]]]), {}, ValueError, r"box 1 has a batch index .*\[0, 1\)"),
    (RAMP, [[-1, 0, 0, 2, 2]] * np.ones((1, 5)), {}, ValueError, "box 0 has a batch index"),
    (RAMP, [[0.5, 0, 0, 2, 2]] * np.ones((1, 5)), {}, ValueError, "box 0 has a batch index"),
    (RAMP, [[0, 0, np.nan, 2, 2]] * np.ones((1, 5)), {}, ValueError, "box 0 has a coordinate that is NaN or inf"),
    (RAMP, [[0, 0, 0, np.inf, 2]] * np.ones((1, 5)), {}, ValueError, "box 0 has a coordinate that is NaN or inf"),
    (RAMP, [[0, 0, 0, 1e9, 2]] * np.ones((1, 5)), {}, ValueError, "box 0 has a coordinate beyond 16777216 pixels"),
    (RAMP, BOX, dict(spatial_scale=-0.5), ValueError, "spatial_scale must be a positive number, got -0.5"),
    (RAMP, BOX, dict(spatial_scale=0), ValueError, "spatial_scale must be a positive number, got 0"),
    (RAMP, BOX, dict(output_size=0), ValueError, "output_size must be >= 1, got 0"),
    (RAMP, BOX, dict(output_size=(2, 2, 2)), ValueError, "output_size must be an int or a pair of ints"),
    (RAMP.astype(np.int64), BOX, {}, ValueError, "expected a float32 or float64 input, got int64"),
    (RAMP[0], BOX, {}, ValueError, r"expected a 4-D input \(N, C, H, W\), got shape \(1, 4, 4\)"),
    (RAMP[:, :, :0], BOX, {}, ValueError, "expected feature maps of at least one pixel"),
    ([1.0, 2.0], BOX, {}, TypeError, "input must be a Tensor or an array, got list"),
])
def test_bad_inputs(fn, x, boxes, kw, error, message):
    kw = dict(dict(output_size=2), **kw)
    with pytest.raises(error, match=f"^{fn.__name__}: {message}"):
        fn(x, boxes, **kw)


def test_bad_roi_align_settings():
    with pytest.raises(TypeError, match="roi_align: sampling_ratio must be an int"):
        ops.roi_align(RAMP, BOX, 2, sampling_ratio=1.5)
    with pytest.raises(TypeError, match="roi_align: aligned must be True or False"):
        ops.roi_align(RAMP, BOX, 2, aligned=1)


def test_boxes_take_the_inputs_dtype():
    """torchvision asks for boxes of the input's dtype; here they are converted (float64 or integer boxes on a
    float32 input give float32 RoIs and the same result as float32 boxes)."""
    x = mc.tensor(RAMP.astype(np.float32))
    for fn in (ops.roi_pool, ops.roi_align):
        want = fn(x, BOX.astype(np.float32), 2)
        assert want.dtype == np.float32
        np.testing.assert_array_equal(fn(x, BOX, 2).numpy(), want.numpy())
        np.testing.assert_array_equal(fn(x, [np.array([[0, 0, 2, 2]])], 2).numpy(), want.numpy())


# --- torchvision ------------------------------------------------------------------------------------------------

@given(roi_configs(), st.sampled_from([np.float64, np.float32]))
def test_roi_ops_match_torchvision(cfg, dtype):
    torch, tv = torchvision_or_skip()
    x, rois = make(cfg, dtype)
    tx, trois = torch.tensor(x.numpy(), requires_grad=True), torch.tensor(rois)
    theirs = {pool: lambda t: tv.roi_pool(t, trois, cfg["out"], cfg["scale"]),
              align: lambda t: tv.roi_align(t, trois, cfg["out"], cfg["scale"], cfg["ratio"], cfg["aligned"])}
    exact = dict(rtol=0, atol=0) if dtype == np.float64 else TOL[dtype]
    for op in (pool, align):
        y, grad_x = forward_backward(op, cfg, x, rois)
        tx.grad = None
        ty = theirs[op](tx)
        ty.backward(torch.tensor(np.random.default_rng(1).standard_normal(y.shape).astype(dtype)))
        np.testing.assert_allclose(y, ty.detach().numpy(), **(exact if op is pool else TOL[dtype]))
        np.testing.assert_allclose(grad_x, tx.grad.numpy(), **TOL[dtype])


def test_torchvision_on_ties_nan_infinity_and_list_boxes():
    torch, tv = torchvision_or_skip()
    x = np.ones((2, 2, 5, 5))
    x[0, 0, 1, 1], x[0, 1, 2:, 2:], x[1, 0, 1, 3] = np.nan, -np.inf, 7.0  # (0, 0) finite: see reference/roi.py
    boxes = [np.array([[0.0, 0.0, 4.0, 4.0], [-1.5, -0.5, 2.5, 1.5]]), np.array([[0.5, 0.5, 4.5, 3.5]])]
    mx, tx = mc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    for ours, theirs in [(ops.roi_pool, tv.roi_pool), (ops.roi_align, tv.roi_align)]:
        mx.grad, tx.grad = None, None
        y, ty = ours(mx, boxes, (2, 3)), theirs(tx, [torch.tensor(b) for b in boxes], (2, 3))
        np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())  # NaN where torchvision has NaN
        y.sum().backward()
        ty.sum().backward()
        np.testing.assert_array_equal(mx.grad.numpy(), tx.grad.numpy())
    assert repr(ops.RoIPool(7, 0.5)) == repr(tv.RoIPool(7, 0.5))
    assert repr(ops.RoIAlign(7, 0.5, 2, True)) == repr(tv.RoIAlign(7, 0.5, 2, True))


# --- the GPU against the CPU ------------------------------------------------------------------------------------

@pytest.mark.gpu
@given(roi_configs(), st.sampled_from([np.float64, np.float32]))
def test_roi_ops_gpu_match_cpu(cfg, dtype):
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    x, rois = make(cfg, dtype)
    gx = mc.tensor(x.numpy(), requires_grad=True, device="cuda")
    for op in (pool, align):
        y, grad_x = forward_backward(op, cfg, x, rois)
        gx.grad = None
        gy = op(cfg, gx, rois)  # boxes given on the host go to the input's device
        assert gy.device.type == "cuda"
        gy.backward(mc.tensor(np.random.default_rng(1).standard_normal(y.shape).astype(dtype), device="cuda"))
        np.testing.assert_allclose(gy.numpy(), y, **tol)
        np.testing.assert_allclose(gx.grad.numpy(), grad_x, **tol)
        if op is pool:  # the argmax, and so the gradient's pixel, is the same on both
            np.testing.assert_array_equal(gy.numpy(), y)


@pytest.mark.gpu
def test_roi_ops_gpu_without_rois_and_with_list_boxes():
    x = mc.tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 5)), requires_grad=True, device="cuda")
    for fn in (ops.roi_pool, ops.roi_align):
        x.grad = None
        fn(x, [mc.tensor(np.zeros((0, 4)), device="cuda")] * 2, 2).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), 0)
        boxes = [np.array([[0.0, 0.0, 3.0, 2.0]]), np.array([[1.0, 0.5, 4.0, 3.0]])]
        cpu = fn(mc.tensor(x.numpy()), boxes, (2, 3)).numpy()
        np.testing.assert_allclose(fn(x, boxes, (2, 3)).numpy(), cpu, rtol=1e-12, atol=1e-12)
