"""The detection operators on the edges of their inputs (issue 19's probe): narrow integer boxes that must not wrap
around, result dtypes beside torchvision's, RoI checks made in float64 and in the boxes' own dtype, RoI align's
per-RoI sample tables, batched NMS in chunks of classes, and errors that name the op. torchvision comparisons skip
without it, GPU ones without a GPU."""
import importlib
import math
from fractions import Fraction

import numpy as np
import pytest

import minicnn as mc
import minicnn.ops as ops
from minicnn.data.detection import DigitDetection, detection_collate, resize_bilinear
from minicnn.detection import AnchorGenerator, BoxCoder, average_precision, coco_map, draw_boxes, kmeans_anchors
from minicnn.reference.roi import roi_align_sample_lists, roi_align_samples, sample_reach

nms_module = importlib.import_module("minicnn.ops.nms")  # the attribute minicnn.ops.nms is the function


def torchvision_or_skip():
    try:
        import torch
        import torchvision.ops
        return torch, torchvision.ops
    except Exception as e:
        pytest.skip(f"torchvision is not usable here: {type(e).__name__}: {e}")


# --- narrow integer boxes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.uint16, np.uint32, np.uint64])
def test_narrow_integer_boxes_are_widened_before_any_arithmetic(dtype):
    a = np.array([[0, 0, 20, 20], [0, 0, 100, 120]], dtype)
    b = np.array([[10, 10, 30, 30], [110, 0, 120, 10], [0, 0, 0, 0]], dtype)
    area = ops.box_area(a)
    assert area.tolist() == [400, 12000]  # 12000 wraps around in 8 and 16 bits
    assert area.dtype == (np.int32 if np.dtype(dtype).itemsize <= 2 else np.int64)
    for fn in (ops.box_iou, ops.generalized_box_iou):
        got = fn(a, b)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got.numpy(), fn(a.astype(np.float64), b.astype(np.float64)).numpy(), rtol=1e-6)
    inverted = np.array([[20, 0, 10, 10], [0, 0, 5, 5]], dtype)  # x2 - x1 would wrap to a large width unsigned
    for call in (lambda: ops.box_area(inverted), lambda: ops.box_iou(inverted, a),
                 lambda: ops.generalized_box_iou(a, inverted)):
        with pytest.raises(ValueError, match=r"expected boxes\d? \(xyxy\) with x1 <= x2 .*got box 0 = \[20, 0, 10"):
            call()
    assert ops.remove_small_boxes(inverted, 1).tolist() == [1]


def test_uint8_boxes_by_hand_and_uint64_beyond_int64():
    assert ops.box_area(np.array([[0, 0, 20, 20]], np.uint8)).item() == 400
    assert ops.box_iou(np.array([[0, 0, 200, 200]], np.uint8), np.array([[0, 0, 100, 100]], np.uint8)).item() == 0.25
    with pytest.raises(ValueError, match=r"box_iou: expected boxes1 \(xyxy\) with x1 <= x2"):
        ops.box_iou(np.array([[200, 0, 10, 10]], np.uint8), np.array([[0, 0, 3, 3]], np.uint8))
    with pytest.raises(ValueError, match=r"box_area: boxes hold a uint64 coordinate above 2\*\*63 - 1"):
        ops.box_area(np.array([[0, 0, 2**63, 2**63]], np.uint64))


def test_kmeans_anchors_takes_widths_in_float64():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 11, 10], [5, 5, 45, 25], [0, 0, 42, 20]], np.uint8)
    anchors, mean_iou = kmeans_anchors(boxes, 2)
    np.testing.assert_array_equal(anchors, [[10.5, 10.0], [41.0, 20.0]])
    assert mean_iou == kmeans_anchors(boxes.astype(np.float64), 2)[1]
    with pytest.raises(ValueError, match="kmeans_anchors: every box needs a finite, positive width"):
        kmeans_anchors(np.array([[200, 0, 10, 10], [0, 0, 5, 5]], np.uint8), 1)  # 10 - 200 is 66 in uint8


# --- average_precision's tp -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("tp,error,message", [
    ("ab", TypeError, r"1-D array of booleans .*got <U2"),
    ([np.nan, 1.0], ValueError, "only True/False or 0/1, got nan"),
    ([2, 1], ValueError, "only True/False or 0/1, got 2"),
    ([[True, False]], TypeError, r"got bool of shape \(1, 2\)"),
    ([[1], [1, 2]], TypeError, "got a ragged sequence"),
])
def test_average_precision_refuses_what_is_not_a_flag(tp, error, message):
    with pytest.raises(error, match=f"^average_precision: (tp must .*)?{message}"):
        average_precision(tp, 2)


def test_average_precision_takes_booleans_or_zeros_and_ones():
    want = average_precision([True, False, True], 2)
    assert want == pytest.approx(5 / 6, abs=1e-15)
    assert average_precision([1, 0, 1], 2) == average_precision(np.array([1.0, 0.0, 1.0]), 2) == want
    assert average_precision([], 1) == 0.0
    with pytest.raises(ValueError, match="average_precision: num_positives"):
        average_precision([True], True)


# --- dtypes, as torchvision's ---------------------------------------------------------------------------------------

INT_BOX = np.array([[1, 2, 4, 7]])
DTYPE_CASES = {  # name: (our call, torchvision's call on torch tensors of the same arrays, the dtype expected)
    "int to cxcywh": (lambda f, t: f.box_convert(t(INT_BOX), "xyxy", "cxcywh"), np.float32),
    "cxcywh int to xywh": (lambda f, t: f.box_convert(t(INT_BOX), "cxcywh", "xywh"), np.float32),
    "int xyxy to xywh": (lambda f, t: f.box_convert(t(INT_BOX), "xyxy", "xywh"), np.int64),
    "uint8 xyxy to xywh": (lambda f, t: f.box_convert(t(INT_BOX.astype(np.uint8)), "xyxy", "xywh"), np.uint8),
    "float16 convert": (lambda f, t: f.box_convert(t(INT_BOX.astype(np.float16)), "xyxy", "cxcywh"), np.float16),
    "float16 clip": (lambda f, t: f.clip_boxes_to_image(t(INT_BOX.astype(np.float16) + 0.5), (3, 5)), np.float16),
    "float16 area": (lambda f, t: f.box_area(t(INT_BOX.astype(np.float16))), np.float32),
    "iou f32 with int64": (lambda f, t: f.box_iou(t(INT_BOX.astype(np.float32)), t(INT_BOX)), np.float32),
    "giou int64 with f32": (lambda f, t: f.generalized_box_iou(t(INT_BOX), t(INT_BOX.astype(np.float32))),
                            np.float32),
    "iou f16 with int64": (lambda f, t: f.box_iou(t(INT_BOX.astype(np.float16)), t(INT_BOX)), np.float32),
    "iou int32 with int64": (lambda f, t: f.box_iou(t(INT_BOX.astype(np.int32)), t(INT_BOX)), np.float32),
    "iou f64 with int32": (lambda f, t: f.box_iou(t(INT_BOX.astype(np.float64)), t(INT_BOX.astype(np.int32))),
                           np.float64),
    "area int16": (lambda f, t: f.box_area(t(INT_BOX.astype(np.int16))), np.int32),
}


@pytest.mark.parametrize("name", DTYPE_CASES)
def test_result_dtypes(name):
    call, dtype = DTYPE_CASES[name]
    assert call(ops, lambda a: a).dtype == dtype


def test_result_values_and_dtypes_match_torchvision():
    torch, tv = torchvision_or_skip()
    for name, (call, _) in DTYPE_CASES.items():
        ours, theirs = call(ops, lambda a: a), call(tv, torch.tensor)
        assert str(theirs.dtype) == f"torch.{ours.dtype}", name
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=name)


def test_box_convert_and_clip_of_integer_boxes_by_hand():
    assert ops.box_convert(INT_BOX, "xyxy", "cxcywh").tolist() == [[2.5, 4.5, 3.0, 5.0]]
    assert ops.box_convert(INT_BOX, "cxcywh", "xywh").tolist() == [[-1.0, -1.5, 4.0, 7.0]]
    big = np.array([[0, 0, 250, 250]], np.uint8)
    clipped = ops.clip_boxes_to_image(big, (300, 300))  # 300 does not fit uint8: it clips nothing
    assert clipped.dtype == np.uint8 and clipped.tolist() == [[0, 0, 250, 250]]
    assert ops.clip_boxes_to_image(big, (100, 300)).tolist() == [[0, 0, 250, 100]]
    assert ops.clip_boxes_to_image(big.astype(np.int32), (2**40, 2**40)).tolist() == [[0, 0, 250, 250]]


# --- RoI checks -----------------------------------------------------------------------------------------------------

X32 = np.random.default_rng(0).standard_normal((2, 1, 6, 6)).astype(np.float32)


@pytest.mark.parametrize("fn", [ops.roi_pool, ops.roi_align])
def test_spatial_scale_is_checked_in_the_inputs_dtype_and_coordinates_in_float64(fn):
    zero_box = np.zeros((1, 5), np.float32)  # 0 x inf = NaN slipped past a float32 reach check
    with pytest.raises(ValueError, match=fn.__name__ + r": spatial_scale 1e\+39 is inf in the input's dtype float32"):
        fn(X32, zero_box, 2, spatial_scale=1e39)
    with pytest.raises(ValueError, match=fn.__name__ + ": spatial_scale 1e-50 is 0.0 in the input's dtype float32"):
        fn(X32, zero_box, 2, spatial_scale=1e-50)
    assert fn(X32.astype(np.float64), zero_box, 2, spatial_scale=1e39).shape == (1, 1, 2, 2)  # finite in float64
    with pytest.raises(ValueError, match=fn.__name__ + ": box 0 has a coordinate beyond 16777216 pixels"):
        fn(X32.astype(np.float64), np.array([[0, 0, 0, 1e300, 1e300]]), 2, spatial_scale=1e10)  # inf in float64


@pytest.mark.parametrize("fn", [ops.roi_pool, ops.roi_align])
def test_batch_index_is_checked_before_the_boxes_are_rounded_to_the_inputs_dtype(fn):
    boxes = np.array([[0.9999999999, 0, 0, 3, 3]])  # float64: 1.0 once rounded to float32
    with pytest.raises(ValueError, match=fn.__name__ + r": box 0 has a batch index .*\[0.9999999999, "):
        fn(X32, boxes, 2)
    np.testing.assert_array_equal(fn(X32, np.array([[1.0, 0, 0, 3, 3]]), 2).numpy(),
                                  fn(X32[1:], np.array([[0.0, 0, 0, 3, 3]]), 2).numpy())
    with pytest.raises(ValueError, match=fn.__name__ + ": box 0 has a batch index"):
        fn(X32, np.array([[2**64 - 1, 0, 0, 3, 3]], np.uint64), 2)


def test_spatial_scale_may_be_a_fraction():
    box = np.array([[0, 1, 1, 5, 4.5]])
    for fn in (ops.roi_pool, ops.roi_align):
        np.testing.assert_array_equal(fn(X32, box, 2, spatial_scale=Fraction(1, 3)).numpy(),
                                      fn(X32, box, 2, spatial_scale=1 / 3).numpy())


# --- RoI align's tables: each RoI its own grid ----------------------------------------------------------------------

def test_sample_lists_are_the_padded_samples_roi_by_roi():
    rng = np.random.default_rng(1)
    for trial in range(40):
        dtype = (np.float32, np.float64)[trial % 2]
        k, (h, w) = int(rng.integers(0, 7)), rng.integers(1, 12, 2)
        lo = rng.uniform(-5, 15, (k, 2))
        rois = np.concatenate([np.zeros((k, 1)), lo, lo + rng.uniform(0, 12, (k, 2))], axis=1).astype(dtype)
        settings = (float(rng.choice([0.5, 1.0])), tuple(rng.integers(1, 5, 2)), int(rng.choice([-1, 0, 2])),
                    bool(trial % 3))
        padded = roi_align_samples(rois, *settings, h, w)
        lists = roi_align_sample_lists(rois, *settings, h, w)
        np.testing.assert_array_equal(padded[2], lists[2])
        for full, part, size in ((padded[0], lists[0], h), (padded[1], lists[1], w)):
            np.testing.assert_array_equal(full.grid, part.grid)
            first, last = sample_reach(part, size)
            for r in range(k):
                g, span = int(part.grid[r]), slice(int(part.offset[r]), int(part.offset[r + 1]))
                np.testing.assert_array_equal(full.index[:, r, :, :g].reshape(2, -1), part.index[:, span])
                np.testing.assert_array_equal(full.weight[:, r, :, :g].reshape(2, -1), part.weight[:, span])
                read = full.index[:, r][full.weight[:, r] > 0]
                assert (first[r], last[r]) == ((read.min(), read.max()) if read.size else (size, -1))


def test_one_wide_roi_costs_its_own_samples_only():
    rng = np.random.default_rng(2)
    x = mc.tensor(rng.standard_normal((1, 2, 12, 12)), requires_grad=True)
    lo = rng.uniform(0, 8, (40, 2))
    rois = np.concatenate([np.zeros((40, 1)), lo, lo + 3], axis=1)
    rois[0, 3] = 8000.0  # 8000 pixels wide: 1143 samples per bin across
    rows, cols, _ = roi_align_sample_lists(rois, 1.0, (7, 7), -1, False, 12, 12)
    assert cols.grid[0] == math.ceil((8000 - rois[0, 1]) / 7) and cols.grid[1:].max() == 1
    assert cols.index.shape[1] == 7 * int(cols.grid.sum()) < 8 * int(cols.grid[0])  # not 40 x 7 x 1143
    y = ops.roi_align(x, rois, 7)
    y.backward(np.ones(y.shape))
    for r in (0, 1, 39):
        np.testing.assert_array_equal(y.numpy()[r], ops.roi_align(x, rois[r:r + 1], 7).numpy()[0])
    with mc.use_kernels("reference"):
        np.testing.assert_allclose(y.numpy(), ops.roi_align(x, rois, 7).numpy(), rtol=1e-12, atol=1e-12)


def test_too_many_samples_per_bin_is_refused_not_run():
    with pytest.raises(ValueError, match=r"roi_align: box 0 .* needs 4194304 x 4194304 samples per bin, more than "
                                         r"1048576 \(check spatial_scale"):
        ops.roi_align(X32, np.array([[0, 0, 0, 2**22, 2**22]]), 1)
    assert ops.roi_align(X32, np.array([[0, 0, 0, 2**22, 2**22]]), 1, sampling_ratio=2).shape == (1, 1, 1, 1)


# --- NMS ------------------------------------------------------------------------------------------------------------

def test_batched_nms_with_a_negative_threshold_keeps_the_best_of_each_class():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 6, 6], [10, 10, 11, 11], [20, 20, 21, 21.0]])
    scores = np.array([0.1, 0.9, 0.8, 0.3])
    assert ops.nms(boxes, scores, -0.5).tolist() == [1]  # IoU 0 > -0.5: every box suppresses the later ones
    assert ops.batched_nms(boxes, scores, np.array([0, 0, 1, 1]), -0.5).tolist() == [1, 2]


@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_batched_nms_in_chunks_of_classes_is_one_batched_nms(monkeypatch, chunk):
    rng = np.random.default_rng(chunk)
    lo = rng.integers(0, 12, (80, 2))
    boxes = np.concatenate([lo, lo + rng.integers(1, 6, (80, 2))], axis=1).astype(np.float32)
    scores, labels = rng.integers(0, 5, 80).astype(np.float32), rng.choice([0, 1, 2, 5, 9], 80, p=[.5, .2, .1, .1, .1])
    whole = ops.batched_nms(boxes, scores, labels, 0.4).tolist()
    with mc.use_kernels("reference"):
        assert ops.batched_nms(boxes, scores, labels, 0.4).tolist() == whole
    sorted_labels = np.sort(labels)
    monkeypatch.setattr(nms_module, "CHUNK", chunk)
    spans = nms_module._chunks(sorted_labels)
    assert spans[0][0] == 0 and spans[-1][1] == 80 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    for lo_, hi in spans:  # whole classes, and more than one span only where a span would pass CHUNK
        assert (lo_ == 0 or sorted_labels[lo_ - 1] != sorted_labels[lo_]) and hi - lo_ >= 1
    assert len(spans) > 1
    assert ops.batched_nms(boxes, scores, labels, 0.4).tolist() == whole
    with mc.use_kernels("reference"):
        assert ops.batched_nms(boxes, scores, labels, 0.4).tolist() == whole


# --- errors that name the op ----------------------------------------------------------------------------------------

BOX = np.array([[0, 1, 1, 4, 4.0]])
IMAGE = np.zeros((8, 8))


@pytest.mark.parametrize("call,error,message", [
    (lambda: ops.roi_align(X32, BOX, 2, sampling_ratio=2**63), ValueError, "roi_align: sampling_ratio must be at most"),
    (lambda: ops.roi_align(X32, BOX, 2, sampling_ratio=2**40), ValueError, "roi_align: sampling_ratio must be at most"),
    (lambda: ops.roi_pool(X32, BOX, (2**62, 4)), ValueError, r"roi_pool: output_size .* more than 2\*\*31 - 1"),
    (lambda: ops.roi_align(X32, BOX, (2**31, 2**31)), ValueError, r"roi_align: output_size .* more than 2\*\*31"),
    (lambda: ops.RoIPool((2**31, 2**31), 1.0), ValueError, r"roi_pool: output_size .* more than 2\*\*31 - 1"),
    (lambda: ops.roi_align(X32, BOX, 2, spatial_scale=10**400), ValueError,
     "roi_align: spatial_scale must be a positive number, got 1000"),
    (lambda: ops.roi_pool(X32, BOX, 2, spatial_scale="0.5"), ValueError, "roi_pool: spatial_scale must be a positive"),
    (lambda: ops.roi_pool(np.broadcast_to(np.float32(0), (1, 1, 2**16, 2**15 + 1)), BOX, 2), ValueError,
     r"roi_pool: feature maps of 65536 x 32769 pixels, more than 2\*\*31 - 1"),
    (lambda: ops.box_iou(np.zeros((2, 3, 4)), np.zeros((3, 1, 4))), ValueError,
     r"box_iou: the leading axes of boxes1 \(2, 3, 4\) and boxes2 \(3, 1, 4\) do not broadcast"),
    (lambda: BoxCoder("abcd"), ValueError, "BoxCoder: weights must be four positive numbers"),
    (lambda: coco_map([], [], iou_thresholds="a"), ValueError, r"coco_map: iou_thresholds must be numbers in \(0, 1\]"),
    (lambda: AnchorGenerator(((32, (1,)),), ((1.0,),)), ValueError, "AnchorGenerator: sizes must be non-empty"),
    (lambda: AnchorGenerator()((64, 64), [(2, 2)], dtype="abc"), TypeError,
     "AnchorGenerator: dtype must be a floating-point dtype .* got 'abc'"),
    (lambda: kmeans_anchors([[10, 10], [20, 20]], 1, seed="x"), TypeError, "kmeans_anchors: seed must be None or"),
    (lambda: draw_boxes(IMAGE, [[1, 1, 4, 4]], labels=[7], class_names=["a"]), ValueError,
     r"draw_boxes: label 7 has no entry in class_names \(1 names\)"),
    (lambda: draw_boxes(IMAGE, [[1, 1, 4, 4]], labels=[-1], class_names=["a"]), ValueError, "draw_boxes: label -1"),
    (lambda: draw_boxes(IMAGE, [[1, 1, 4, 4]], colors=[]), ValueError, "draw_boxes: colors must hold at least one"),
    (lambda: draw_boxes(IMAGE, [[1, 1, 4, 4]], scores=["a"]), TypeError, "draw_boxes: scores must be real numbers"),
    (lambda: DigitDetection(scales=(1.0, np.inf)), ValueError, r"DigitDetection: scales must be \(low, high\)"),
    (lambda: DigitDetection(scales=("a", "b")), ValueError, r"DigitDetection: scales must be \(low, high\)"),
    (lambda: resize_bilinear(IMAGE, 0, 3), ValueError, "resize_bilinear: height must be a positive int, got 0"),
    (lambda: resize_bilinear(IMAGE, 3, 2.5), ValueError, "resize_bilinear: width must be a positive int"),
    (lambda: detection_collate([1, 2]), TypeError, r"detection_collate: item 0 must be an \(image, target\) pair"),
])
def test_bad_input_is_a_clear_error(call, error, message):
    with pytest.raises(error, match=f"^{message}"):
        call()


def test_box_coder_decodes_no_boxes_to_an_empty_result():
    coder = BoxCoder()
    assert coder.decode(np.zeros((0, 4)), [np.zeros((0, 4))]).shape == (0, 1, 4)
    assert coder.decode(np.zeros((0, 8)), [np.zeros((0, 4)), np.zeros((0, 4))]).shape == (0, 2, 4)
    assert coder.decode_single(np.zeros((0, 8)), np.zeros((0, 4))).shape == (0, 8)


# --- the GPU against the CPU ----------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_roi_align_with_a_wide_roi_and_batched_nms_in_chunks(monkeypatch, dtype):
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-4)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 12, 12)).astype(dtype)
    lo = rng.uniform(-2, 10, (30, 2))
    rois = np.concatenate([rng.integers(0, 2, (30, 1)), lo, lo + rng.uniform(0, 5, (30, 2))], axis=1).astype(dtype)
    rois[0, 3], rois[1, 4] = 900.0, 700.0
    grad = rng.standard_normal((30, 3, 7, 7)).astype(dtype)
    results = []
    for device in ("cpu", "cuda"):
        xt = mc.tensor(x, requires_grad=True, device=device)
        y = ops.roi_align(xt, rois, 7, 0.5, -1, True)
        y.backward(mc.tensor(grad, device=device))
        results.append((y.numpy(), xt.grad.numpy()))
    for cpu, gpu in zip(*results):
        np.testing.assert_allclose(gpu, cpu, **tol)
    monkeypatch.setattr(nms_module, "CHUNK", 8)
    boxes = np.concatenate([lo, lo + 3], axis=1).astype(dtype)
    scores, labels = rng.uniform(size=30).astype(dtype), rng.integers(0, 4, 30)
    on_gpu = ops.batched_nms(mc.tensor(boxes, device="cuda"), mc.tensor(scores, device="cuda"),
                             mc.tensor(labels, device="cuda"), 0.3)
    assert on_gpu.tolist() == ops.batched_nms(boxes, scores, labels, 0.3).tolist()
