"""minicnn.ops' box operators and NMS: hand-computed cases (the lecture's IoU examples, NMS step by step), the
kernels (reference, Numba, CUDA) against each other, hypothesis-drawn boxes against the reference and against the
definition of greedy NMS, float64 gradient checks, bad inputs, and torchvision (skipped without it)."""
import doctest
import importlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import minicnn as mc
import minicnn.functional as F
import minicnn.ops as ops
from minicnn import kernels_cpu, reference
from minicnn.ops import boxes as boxes_module
from minicnn.reference.boxes import pairwise_iou

nms_module = importlib.import_module("minicnn.ops.nms")  # the attribute minicnn.ops.nms is the function

SQUARE, HALF_RIGHT = [0.0, 0.0, 1.0, 1.0], [0.5, 0.0, 1.5, 1.0]


def torchvision_or_skip():
    """(torch, torchvision.ops), or a skip: a torchvision built for another PyTorch raises on import."""
    try:
        import torch
        import torchvision.ops
        return torch, torchvision.ops
    except Exception as e:
        pytest.skip(f"torchvision is not usable here: {type(e).__name__}: {e}")


def random_boxes(rng, n, dtype=np.float64, grid=None, span=100.0, size=40.0):
    """n valid xyxy boxes; on an integer grid of `grid` cells when given (exact IoUs, ties, duplicates)."""
    if grid:
        lo = rng.integers(0, grid, (n, 2))
        return np.concatenate([lo, lo + rng.integers(0, grid // 2 + 1, (n, 2))], axis=1).astype(dtype)
    lo = rng.uniform(0, span, (n, 2))
    return np.concatenate([lo, lo + rng.uniform(0.5, size, (n, 2))], axis=1).astype(dtype)


# --- hand-computed cases ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("a,b,iou", [
    (SQUARE, HALF_RIGHT, 1 / 3),                          # overlap 1/2, union 3/2
    ([0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0], 0.25),   # nested: the small box's area over the large one's
    (SQUARE, [2.0, 2.0, 3.0, 3.0], 0.0),                  # disjoint
    (SQUARE, [1.0, 0.0, 2.0, 1.0], 0.0),                  # touching edges share no area
    (SQUARE, SQUARE, 1.0),
    ([0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0], 1 / 7),  # a corner of 1 over 4 + 4 - 1
])
def test_iou_by_hand(a, b, iou):
    assert ops.box_iou([a], [b]).item() == pytest.approx(iou, rel=1e-7)
    assert ops.box_iou(np.array([b]), np.array([a])).item() == pytest.approx(iou, rel=1e-7)  # symmetric


@pytest.mark.parametrize("a,b,giou", [
    (SQUARE, HALF_RIGHT, 1 / 3),                   # the enclosing box is the union: GIoU = IoU
    (SQUARE, [2.0, 0.0, 3.0, 1.0], -1 / 3),        # disjoint: C = 3, union 2, GIoU = 0 - 1/3
    (SQUARE, [3.0, 3.0, 4.0, 4.0], -14 / 16),      # far apart: tends to -1
    ([0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 3.0, 3.0], 0.25),
    (SQUARE, SQUARE, 1.0),
])
def test_generalized_iou_by_hand(a, b, giou):
    assert ops.generalized_box_iou([a], [b]).item() == pytest.approx(giou, rel=1e-7)


def test_iou_matrix_shapes_devices_and_dtypes():
    b1 = np.array([SQUARE, [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 7.0]])
    b2 = np.array([HALF_RIGHT, SQUARE])
    iou = ops.box_iou(b1, mc.tensor(b2))
    assert isinstance(iou, mc.Tensor) and iou.shape == (3, 2) and iou.dtype == np.float64 and iou.device == "cpu"
    np.testing.assert_allclose(iou.numpy(), [[1 / 3, 1], [1 / 4, 1 / 4], [0, 0]], rtol=1e-12)
    batched = ops.box_iou(np.stack([b1, b1[::-1]]), b2)  # [..., N, 4] against [M, 4], as torchvision broadcasts
    np.testing.assert_allclose(batched.numpy(), np.stack([iou.numpy(), iou.numpy()[::-1]]))
    ints = ops.box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]]))
    assert ints.dtype == np.float32 and ints.item() == pytest.approx(1 / 3)
    assert ops.box_iou(np.zeros((0, 4)), b2).shape == (0, 2)


def test_area_convert_clip_and_small_boxes_by_hand():
    xyxy, xywh, cxcywh = [1.0, 2.0, 5.0, 8.0], [1.0, 2.0, 4.0, 6.0], [3.0, 5.0, 4.0, 6.0]
    for fmt, box in (("xyxy", xyxy), ("xywh", xywh), ("cxcywh", cxcywh)):
        assert ops.box_area([box], fmt=fmt).tolist() == [24.0]
        for out, expected in (("xyxy", xyxy), ("xywh", xywh), ("cxcywh", cxcywh)):
            assert ops.box_convert([box], fmt, out).tolist() == [expected], (fmt, out)
    # [1, 2, 5, 8] and [2, 3, 6, 9] share 3 x 5 of 6 x 6 + 4 x 6 - 15
    assert ops.box_iou([xywh], [[2.0, 3.0, 4.0, 6.0]], fmt="xywh").item() == pytest.approx(15 / 33)
    assert ops.box_iou([cxcywh], [[4.0, 6.0, 4.0, 6.0]], fmt="cxcywh").item() == pytest.approx(15 / 33)
    clipped = ops.clip_boxes_to_image(np.array([[-3.0, 2.0, 50.0, 40.0], [10.0, -1.0, 12.0, 9.0]]), (30, 20))
    assert clipped.tolist() == [[0.0, 2.0, 20.0, 30.0], [10.0, 0.0, 12.0, 9.0]]  # x to [0, width], y to [0, height]
    keep = ops.remove_small_boxes(np.array([[0, 0, 5, 5], [0, 0, 5, 1], [1, 1, 3, 9], [2, 2, 4, 4]]), 2)
    assert keep.dtype == np.int64 and keep.tolist() == [0, 2, 3]  # a side equal to min_size stays


# --- NMS step by step ------------------------------------------------------------------------------------------------

BOXES = np.array([[0, 0, 10, 10],    # 0  A
                  [0, 0, 10, 5],     # 1  B: IoU(A, B) = 50 / 100 = 0.5 exactly
                  [1, 0, 11, 10],    # 2  C: IoU(A, C) = 90 / 110
                  [20, 20, 30, 30],  # 3  D
                  [20, 20, 30, 29]],  # 4 E: IoU(D, E) = 90 / 100
                 dtype=np.float32)
SCORES = np.array([0.9, 0.8, 0.85, 0.3, 0.95], dtype=np.float32)


def test_nms_step_by_step():
    # by score: E, A, C, B, D. E kept; A kept (IoU 0 with E); C dropped (0.82 > 0.5 with A); B kept: its IoU with A
    # is the threshold itself, not above it; D dropped (0.9 with E).
    keep = ops.nms(BOXES, SCORES, 0.5)
    assert keep.dtype == np.int64 and keep.tolist() == [4, 0, 1]
    assert ops.nms(BOXES, SCORES, 0.49).tolist() == [4, 0]
    assert ops.nms(BOXES, SCORES, 0.95).tolist() == [4, 0, 2, 1, 3]
    assert ops.nms(BOXES, SCORES, -1.0).tolist() == [4]  # IoU 0 > -1: the first box suppresses every other


def test_nms_compares_a_float32_iou_in_float64():
    """IoU 6 / 20 is 0.3000000119 in float32, above the threshold 0.3 (in float64 it is 0.3 itself): torchvision's
    kernels compare the IoU in its dtype with the threshold as a double, and so does minicnn."""
    boxes, scores = np.array([[5, 6, 10, 8], [4, 4, 8, 8]]), np.array([0.9, 0.8])
    assert ops.nms(boxes.astype(np.float32), scores.astype(np.float32), 0.3).tolist() == [0]
    assert ops.nms(boxes.astype(np.float64), scores, 0.3).tolist() == [0, 1]


def test_nms_is_greedy():
    """Y (IoU 0.54 with X and with Z) is dropped by X, so it no longer drops Z (IoU 0.25 with X)."""
    boxes = np.array([[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]], dtype=np.float64)
    assert ops.nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
    assert ops.nms(boxes, np.array([0.8, 0.9, 0.7]), 0.5).tolist() == [1]


def test_nms_ties_empty_and_inputs():
    same = np.array([SQUARE, SQUARE, [5.0, 5.0, 6.0, 6.0], SQUARE])
    assert ops.nms(same, np.array([0.5, 0.5, 0.5, 0.5]), 0.5).tolist() == [0, 2]  # ties: the lower index first
    assert ops.nms(same, np.array([0.5, 0.7, 0.5, 0.7]), 0.5).tolist() == [1, 2]
    for empty in (ops.nms(np.zeros((0, 4)), np.zeros(0), 0.5),
                  ops.batched_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int), 0.5)):
        assert isinstance(empty, mc.Tensor) and empty.shape == (0,) and empty.dtype == np.int64
    from_tensors = ops.nms(mc.tensor(BOXES, requires_grad=True), mc.tensor(SCORES), 0.5)
    assert from_tensors.tolist() == [4, 0, 1] and not from_tensors.requires_grad
    assert ops.nms(BOXES.tolist(), SCORES.tolist(), 0.5).tolist() == [4, 0, 1]


def test_batched_nms_keeps_overlapping_boxes_of_other_classes():
    boxes = np.array([SQUARE, SQUARE, [0.0, 0.0, 1.0, 0.9], [0.0, 0.0, 1.0, 0.9]])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    # class 0: boxes 0 and 2 (IoU 0.9): 0 stays; class 1: boxes 1 and 3: 3 stays
    assert ops.batched_nms(boxes, scores, np.array([0, 1, 0, 1]), 0.5).tolist() == [3, 0]
    assert ops.batched_nms(boxes, scores, np.array([0, 1, 2, 3]), 0.5).tolist() == [3, 0, 1, 2]
    assert ops.batched_nms(boxes, scores, np.zeros(4, int), 0.5).tolist() == ops.nms(boxes, scores, 0.5).tolist()


# --- kernels: reference, Numba, CUDA ------------------------------------------------------------------------------

def _sorted_case(seed, n, dtype, grid, classes):
    """What the kernels take: boxes (in the order of their scores) grouped by label."""
    rng = np.random.default_rng(seed)
    return random_boxes(rng, n, dtype, grid=grid), np.sort(rng.integers(0, classes, n))


@given(st.integers(0, 2**16), st.integers(1, 150), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([None, 4, 10]), st.integers(1, 3), st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]))
def test_numba_kernels_agree_with_the_reference(seed, n, dtype, grid, classes, threshold):
    boxes, labels = _sorted_case(seed, n, dtype, grid, classes)
    mask = reference.nms_mask(boxes, labels, threshold)
    assert mask.dtype == np.uint64 and mask.shape == (n, (n + 63) // 64)
    np.testing.assert_array_equal(kernels_cpu.nms_mask(boxes, labels, threshold), mask)
    keep = reference.nms_keep(boxes, labels, threshold)
    np.testing.assert_array_equal(kernels_cpu.nms_keep(boxes, labels, threshold), keep)


def test_numba_mask_threaded_and_serial_are_the_reference():
    """Both compiled variants of the mask kernel (the small cases above run on the calling thread), bit for bit."""
    boxes, labels = _sorted_case(0, 700, np.float32, None, 2)
    expected = reference.nms_mask(boxes, labels, 0.4)
    for variant in (kernels_cpu.boxes._mask_rows.parallel, kernels_cpu.boxes._mask_rows.serial):
        mask = np.zeros_like(expected)
        variant(mask, boxes, labels, 0.4)
        np.testing.assert_array_equal(mask, expected)
    np.testing.assert_array_equal(kernels_cpu.nms_keep(boxes, labels, 0.4), reference.nms_keep(boxes, labels, 0.4))


def _is_greedy_nms(boxes, scores, labels, threshold, keep):
    """The definition, pair by pair in float64: walking the boxes by decreasing score (ties by index), a box is kept
    exactly when no box kept before it, of its label, has IoU > threshold with it."""
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if not any(labels[k] == labels[i] and pairwise_iou(boxes[[k]], boxes[[i]])[0, 0] > threshold
                   for k in kept):  # an IoU of 0/0 = NaN (two empty boxes) is not above the threshold
            kept.append(i)
    return kept == list(keep)


@given(st.integers(0, 2**16), st.integers(0, 60), st.sampled_from([None, 6]), st.booleans(),
       st.sampled_from([0.0, 0.25, 0.5, 0.9]))
def test_nms_follows_the_definition_under_both_switches(seed, n, grid, batched, threshold):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, grid=grid)
    scores = rng.integers(0, 5, n) / 4.0  # ties
    labels = rng.integers(0, 3, n) if batched else np.zeros(n, int)
    results = []
    for mode in ("fast", "reference"):
        with mc.use_kernels(mode):
            keep = ops.batched_nms(boxes, scores, labels, threshold) if batched else ops.nms(boxes, scores, threshold)
        results.append(keep.tolist())
    assert results[0] == results[1]
    assert _is_greedy_nms(boxes, scores, labels, threshold, results[0])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,grid", [(1, None), (63, 6), (64, None), (65, 6), (300, None), (1000, 20)])
def test_cuda_kernels_agree_with_the_reference(n, grid, dtype):
    import cupy as cp
    from minicnn import kernels_gpu
    boxes, labels = _sorted_case(n, n, dtype, grid, 3)
    for threshold in (0.0, 0.5, 0.7):
        mask = reference.nms_mask(boxes, labels, threshold)
        np.testing.assert_array_equal(kernels_gpu.nms_mask(cp.asarray(boxes), cp.asarray(labels), threshold).get(),
                                      mask)
        np.testing.assert_array_equal(kernels_gpu.nms_keep(cp.asarray(boxes), cp.asarray(labels), threshold).get(),
                                      reference.nms_keep(boxes, labels, threshold))
    scores = np.random.default_rng(n).integers(0, 4, n).astype(dtype)
    on_gpu = ops.batched_nms(mc.tensor(boxes, device="cuda"), mc.tensor(scores, device="cuda"),
                             mc.tensor(labels, device="cuda"), 0.5)
    assert on_gpu.device.type == "cuda"
    assert on_gpu.tolist() == ops.batched_nms(boxes, scores, labels, 0.5).tolist()
    b = mc.tensor(boxes[:40], requires_grad=True, device="cuda")
    iou = ops.generalized_box_iou(b, b[::-1])
    iou.sum().backward()
    cpu = mc.tensor(boxes[:40], requires_grad=True)
    ops.generalized_box_iou(cpu, cpu[::-1]).sum().backward()
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12)
    np.testing.assert_allclose(iou.numpy(), ops.generalized_box_iou(cpu, cpu[::-1]).numpy(), **tol)
    np.testing.assert_allclose(b.grad.numpy(), cpu.grad.numpy(), **tol)


# --- gradients ------------------------------------------------------------------------------------------------------

@given(st.integers(0, 2**16), st.integers(1, 4), st.integers(1, 4))
def test_box_ops_gradcheck(seed, n, m):
    rng = np.random.default_rng(seed)
    b1 = mc.tensor(random_boxes(rng, n, span=10.0, size=6.0), requires_grad=True)
    b2 = mc.tensor(random_boxes(rng, m, span=10.0, size=6.0), requires_grad=True)
    assert mc.gradcheck(ops.box_iou, [b1, b2])
    assert mc.gradcheck(ops.generalized_box_iou, [b1, b2])
    assert mc.gradcheck(lambda a: ops.box_area(a), [b1])
    assert mc.gradcheck(lambda a: ops.clip_boxes_to_image(a, (9.5, 8.5)), [b1])
    for fmt in boxes_module.FORMATS:
        assert mc.gradcheck(lambda a, b: ops.box_iou(a, b, fmt=fmt), [b1, b2])
        for out in boxes_module.FORMATS:
            assert mc.gradcheck(lambda a: ops.box_convert(a, fmt, out), [b1])


def test_gradients_at_the_kinks():
    """A tie in max or min splits the gradient in half (torch.maximum's rule); a value clamped at its bound gets none
    (torch.clamp's from PyTorch 2.14 on, ReLU's at 0): touching boxes have IoU 0 and a zero gradient."""
    a, b = mc.tensor([1.0, 2.0, 3.0], requires_grad=True), mc.tensor([1.0, 1.0, 4.0], requires_grad=True)
    F.maximum(a, b).sum().backward()
    assert a.grad.tolist() == [0.5, 1.0, 0.0] and b.grad.tolist() == [0.5, 0.0, 1.0]
    x = mc.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    F.clamp(x, 0.0, 1.0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    touching = mc.tensor([SQUARE, [1.0, 0.0, 2.0, 1.0]], requires_grad=True)
    ops.box_iou(touching[:1], touching[1:]).sum().backward()
    assert not touching.grad.numpy().any()


def test_clamp_with_one_bound():
    """F.clamp(x, max=...) and F.clamp(x, min=...) as torch.clamp; a gradient check away from the kinks."""
    x = mc.tensor(np.array([-2.0, -0.5, 0.25, 3.0]), requires_grad=True)
    assert F.clamp(x, max=0.0).tolist() == [-2.0, -0.5, 0.0, 0.0]
    assert F.clamp(x, min=0.0).tolist() == [0.0, 0.0, 0.25, 3.0]
    assert mc.gradcheck(lambda t: F.clamp(t, -1.0, 1.0) * F.minimum(t, F.clamp(t, min=0.1)), [x])
    with pytest.raises(ValueError, match="clamp: at least one of min and max"):
        F.clamp(x)


def test_a_giou_loss_moves_disjoint_boxes_together():
    """1 - GIoU has a gradient where IoU has none: a step down it lowers the loss of a box disjoint from its target."""
    target = [[3.0, 0.0, 4.0, 1.0]]
    pred = mc.tensor(np.array([[0.0, 0.0, 1.0, 1.0]]), requires_grad=True)
    loss = (1 - ops.generalized_box_iou(pred, target)).sum()
    loss.backward()
    assert loss.item() == pytest.approx(1.5) and pred.grad.numpy()[0, 2] == pytest.approx(-0.25)  # 2 - U / C
    assert (1 - ops.generalized_box_iou(pred.numpy() - 0.1 * pred.grad.numpy(), target)).item() < loss.item()
    pred.grad = None
    ops.box_iou(pred, target).sum().backward()
    assert not pred.grad.numpy().any()


# --- bad input -------------------------------------------------------------------------------------------------------

GOOD = np.array([SQUARE, HALF_RIGHT])


@pytest.mark.parametrize("call,error,message", [
    (lambda: ops.box_iou(np.zeros((2, 3)), GOOD), ValueError, r"box_iou: expected boxes1 of shape \[\.\.\., 4\]"),
    (lambda: ops.box_iou(GOOD, np.zeros(4)), ValueError, r"box_iou: expected boxes2 of shape \[\.\.\., N, 4\]"),
    (lambda: ops.box_iou(GOOD, [[2.0, 0.0, 1.0, 1.0]]), ValueError,
     r"box_iou: expected boxes2 \(xyxy\) with x1 <= x2"),
    (lambda: ops.generalized_box_iou([[0.0, 1.0, 1.0, 0.0]], GOOD), ValueError, "generalized_box_iou: .* y1 <= y2"),
    (lambda: ops.box_area([[0.0, 0.0, 1.0, np.nan]]), ValueError,
     r"box_area: boxes contain NaN: box 0 is \[0.0, 0.0, 1.0, nan\]"),
    (lambda: ops.box_area([[0.0, 0.0, -1.0, 1.0]], fmt="xywh"), ValueError, "box_area: .* a width and height >= 0"),
    (lambda: ops.box_area(np.array([[0, 0, 1, 1]], bool)), TypeError, "box_area: expected boxes of a real dtype"),
    (lambda: ops.box_area("boxes"), TypeError, "box_area: expected boxes as a Tensor"),
    (lambda: ops.box_convert(GOOD, "xyxy", "yxyx"), ValueError, "box_convert: unknown box format 'yxyx'"),
    (lambda: ops.box_iou(GOOD, GOOD, fmt="cxcywhr"), ValueError, "box_iou: unknown box format 'cxcywhr' .rotated"),
    (lambda: ops.clip_boxes_to_image(GOOD, (3,)), ValueError, r"clip_boxes_to_image: size must be \(height, width\)"),
    (lambda: ops.clip_boxes_to_image(GOOD, (3, -1)), ValueError, "clip_boxes_to_image: size must be >= 0"),
    (lambda: ops.remove_small_boxes(GOOD[None], 1), ValueError,
     r"remove_small_boxes: expected boxes of shape \[N, 4\]"),
    (lambda: ops.remove_small_boxes(GOOD, "1"), TypeError, "remove_small_boxes: min_size must be a real number"),
    (lambda: ops.nms(GOOD[None], np.ones(2), 0.5), ValueError, r"nms: expected boxes of shape \[N, 4\]"),
    (lambda: ops.nms(GOOD, np.ones(3), 0.5), ValueError, r"nms: expected scores of shape \(2,\), one per box"),
    (lambda: ops.nms(GOOD, np.array([0.5, np.nan]), 0.5), ValueError, r"nms: scores contain NaN \(at index 1\)"),
    (lambda: ops.nms(GOOD, np.array([1, 2]), 0.5), TypeError, "nms: expected floating-point scores"),
    (lambda: ops.nms(GOOD.astype(int), np.ones(2), 0.5), TypeError, "nms: expected float32 or float64 boxes"),
    (lambda: ops.nms(GOOD[::-1] * [1, 1, -1, 1], np.ones(2), 0.5), ValueError,
     r"nms: .*x1 <= x2.*got box 0 = \[0.5, 0.0, -1.5, 1.0\]"),
    (lambda: ops.nms(GOOD * np.nan, np.ones(2), 0.5), ValueError, "nms: boxes contain NaN"),
    (lambda: ops.nms(GOOD, np.ones(2), "0.5"), TypeError, "nms: iou_threshold must be a real number, got '0.5'"),
    (lambda: ops.nms(GOOD, np.ones(2), None), TypeError, "nms: iou_threshold must be a real number"),
    (lambda: ops.nms(GOOD, np.ones(2), float("nan")), TypeError, "nms: iou_threshold must be a real number"),
    (lambda: ops.batched_nms(GOOD, np.ones(2), np.zeros(3, int), 0.5), ValueError,
     r"batched_nms: expected idxs of shape \(2,\)"),
    (lambda: ops.batched_nms(GOOD, np.ones(2), np.zeros(2), 0.5), TypeError, "batched_nms: expected integer idxs"),
    (lambda: ops.batched_nms(GOOD, np.ones(2), np.zeros(2, int), True), TypeError, "batched_nms: iou_threshold"),
])
def test_bad_input_is_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_zero_width_boxes_are_valid():
    flat = [[1.0, 1.0, 1.0, 3.0]]
    assert ops.box_area(flat).tolist() == [0.0]
    assert ops.box_iou(flat, [SQUARE]).tolist() == [[0.0]]
    assert np.isnan(ops.box_iou(flat, flat).item())  # 0 / 0, as in torchvision; NMS then suppresses nothing
    assert ops.nms(np.array(flat * 2), np.array([0.5, 0.4]), 0.5).tolist() == [0, 1]


def test_docstring_examples():
    for module in (boxes_module, nms_module):
        assert doctest.testmod(module, extraglobs=vars(ops)).failed == 0


# --- torchvision -----------------------------------------------------------------------------------------------------

@given(st.integers(0, 2**16), st.sampled_from([np.float32, np.float64]), st.sampled_from([None, 8]))
def test_box_ops_match_torchvision(seed, dtype, grid):
    torch, tv = torchvision_or_skip()
    rng = np.random.default_rng(seed)
    b1, b2 = random_boxes(rng, 7, dtype, grid=grid), random_boxes(rng, 5, dtype, grid=grid)
    for fmt in boxes_module.FORMATS:
        assert np.array_equal(ops.box_area(b1, fmt).numpy(), tv.box_area(torch.tensor(b1), fmt).numpy())
        assert np.array_equal(ops.box_iou(b1, b2, fmt).numpy(), tv.box_iou(torch.tensor(b1), torch.tensor(b2), fmt),
                              equal_nan=True)
        for out in boxes_module.FORMATS:
            assert np.array_equal(ops.box_convert(b1, fmt, out).numpy(), tv.box_convert(torch.tensor(b1), fmt, out))
    assert np.array_equal(ops.generalized_box_iou(b1, b2).numpy(),
                          tv.generalized_box_iou(torch.tensor(b1), torch.tensor(b2)), equal_nan=True)
    shifted = b1 - 5
    assert np.array_equal(ops.clip_boxes_to_image(shifted, (30, 20)).numpy(),
                          tv.clip_boxes_to_image(torch.tensor(shifted), (30, 20)))
    assert ops.remove_small_boxes(b1, 4).tolist() == tv.remove_small_boxes(torch.tensor(b1), 4).tolist()


@pytest.mark.parametrize("boxes", [np.array([SQUARE, SQUARE, HALF_RIGHT, [1.0, 0.0, 2.0, 1.0]]),  # ties, touching
                                   random_boxes(np.random.default_rng(3), 6)])
def test_box_gradients_match_torch(boxes):
    """Forward and backward against torchvision, with kinks included: identical boxes (a tie in max/min splits the
    gradient in half) and touching edges (clamp at its bound gives none, PyTorch's choice from 2.14 on)."""
    torch, tv = torchvision_or_skip()
    if len(boxes) == 4 and tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 14):
        pytest.skip("PyTorch before 2.14 passed clamp's gradient at the bound")
    for ours, theirs in ((ops.box_iou, tv.box_iou), (ops.generalized_box_iou, tv.generalized_box_iou),
                         (lambda a, b: ops.box_convert(a, "xyxy", "cxcywh") * ops.box_area(b)[:, None],
                          lambda a, b: tv.box_convert(a, "xyxy", "cxcywh") * tv.box_area(b)[:, None]),
                         (lambda a, b: ops.clip_boxes_to_image(a, (0.8, 1.2)) + b,
                          lambda a, b: tv.clip_boxes_to_image(a, (0.8, 1.2)) + b)):
        a, b = mc.tensor(boxes, requires_grad=True), mc.tensor(boxes[::-1].copy(), requires_grad=True)
        ta, tb = torch.tensor(boxes, requires_grad=True), torch.tensor(boxes[::-1].copy(), requires_grad=True)
        y, ty = ours(a, b), theirs(ta, tb)
        weights = np.random.default_rng(0).standard_normal(y.shape)
        y.backward(weights)
        ty.backward(torch.tensor(weights))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(b.grad.numpy(), tb.grad.numpy(), rtol=1e-12, atol=1e-14)


@given(st.integers(0, 2**16), st.integers(0, 300), st.sampled_from([np.float32, np.float64]),
       st.sampled_from([None, 12]), st.sampled_from([0.0, 0.3, 0.5, 0.7]))
def test_nms_matches_torchvision(seed, n, dtype, grid, threshold):
    torch, tv = torchvision_or_skip()
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, n, dtype, grid=grid)
    scores = rng.permutation(n).astype(dtype)  # distinct: torchvision leaves the order of ties unspecified
    idxs = rng.integers(0, 3, n)
    tb, ts = torch.tensor(boxes), torch.tensor(scores)
    assert ops.nms(boxes, scores, threshold).tolist() == tv.nms(tb, ts, threshold).tolist()
    # on a grid the coordinate offset of torchvision's batched_nms is exact, so the two must agree
    if grid:
        assert (ops.batched_nms(boxes, scores, idxs, threshold).tolist()
                == tv.batched_nms(tb, ts, torch.tensor(idxs), threshold).tolist())


def test_nms_ties_and_float32_rounding_match_torchvision():
    torch, tv = torchvision_or_skip()
    for dtype in (np.float32, np.float64):
        boxes, scores = np.array([[5, 6, 10, 8], [4, 4, 8, 8]], dtype), np.array([0.9, 0.8], dtype)
        assert ops.nms(boxes, scores, 0.3).tolist() == tv.nms(torch.tensor(boxes), torch.tensor(scores), 0.3).tolist()
    boxes = np.array([SQUARE, SQUARE, [5.0, 5.0, 6.0, 6.0], SQUARE, HALF_RIGHT], dtype=np.float32)
    for scores in ([0.5] * 5, [0.5, 0.7, 0.5, 0.7, 0.7], [1.0, 1.0, 0.2, 0.2, 1.0]):
        scores = np.array(scores, dtype=np.float32)
        assert ops.nms(boxes, scores, 0.3).tolist() == tv.nms(torch.tensor(boxes), torch.tensor(scores), 0.3).tolist()
