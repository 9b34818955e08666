"""minicnn.detection: anchors, box coding, k-means anchors, VOC and COCO mAP, drawing. Hand-computed cases,
torchvision where it imports (skipped otherwise) and bad inputs. test_detection_map.py holds the mAP's comparisons
with plain-loop implementations and pycocotools on random cases; test_detection_data.py the detection data sets."""
import math

import numpy as np
import pytest

import minicnn as mc
from minicnn.detection import AnchorGenerator, BoxCoder, average_precision, coco_map, evaluate, kmeans_anchors


def _torchvision():
    """(torch, torchvision) as an oracle; any failure to import (a torchvision built for another torch raises
    RuntimeError) skips the test."""
    try:
        import torch
        import torchvision.models.detection
    except Exception as e:
        pytest.skip(f"torchvision is not usable here ({type(e).__name__}: {e})")
    return torch, torchvision


# --- anchors -------------------------------------------------------------------------------------------------------

def test_anchors_by_hand():
    # size 16, ratios h/w 0.5, 1, 2: w = 16 / sqrt(r), h = 16 sqrt(r), halves rounded: (11.3, 5.7) -> (11, 6)
    gen = AnchorGenerator(sizes=((16,),), aspect_ratios=((0.5, 1.0, 2.0),))
    cell = [[-11, -6, 11, 6], [-8, -8, 8, 8], [-6, -11, 6, 11]]
    np.testing.assert_array_equal(gen.cell_anchors[0], cell)
    assert gen.num_anchors_per_location() == [3]
    anchors = gen((32, 48), [(2, 3)])  # stride (16, 16); cell (y, x) shifted by (16 x, 16 y)
    assert anchors.shape == (2 * 3 * 3, 4) and anchors.dtype == np.float32
    a = anchors.numpy().reshape(2, 3, 3, 4)  # location-major: row, column, anchor
    np.testing.assert_array_equal(a[0, 0], cell)
    np.testing.assert_array_equal(a[0, 1], np.add(cell, [16, 0, 16, 0]))
    np.testing.assert_array_equal(a[1, 2, 2], [26, 5, 38, 27])
    # strides differ per axis (64 // 4 = 16 down, 32 // 4 = 8 across); a feature map's shape may stand for its size
    two = AnchorGenerator(sizes=((8,), (32, 64)), aspect_ratios=((1.0,), (1.0,)))
    parts = two((64, 32), [np.zeros((1, 5, 4, 4)), (2, 2)], per_map=True)
    assert [p.shape for p in parts] == [(16, 4), (8, 4)] and two.num_anchors_per_location() == [1, 2]
    np.testing.assert_array_equal(parts[0].numpy()[5], [4, 12, 12, 20])  # cell (1, 1): centre (8, 16)
    np.testing.assert_array_equal(parts[1].numpy()[6:], [[0, 16, 32, 48], [-16, 0, 48, 64]])  # cell (1, 1): (16, 32)
    whole = two((64, 32), [(4, 4), (2, 2)], dtype=np.float64)
    assert whole.dtype == np.float64
    np.testing.assert_array_equal(whole.numpy(), np.concatenate([p.numpy() for p in parts]))


def test_anchor_generator_flat_arguments_as_torchvision():
    gen = AnchorGenerator(sizes=(32, 64), aspect_ratios=(0.5, 1.0))  # one size per map, ratios shared
    assert gen.sizes == ((32,), (64,)) and gen.aspect_ratios == ((0.5, 1.0), (0.5, 1.0))
    assert gen.num_anchors_per_location() == [2, 2]


@pytest.mark.parametrize("sizes, ratios, image, maps", [
    (((32, 64, 128),), ((0.5, 1.0, 2.0),), (96, 128), [(12, 16)]),
    (((16, 45), (90,)), ((0.7, 1.3), (1.0, 3.0, 0.25)), (100, 121), [(13, 15), (7, 8)]),
])
def test_anchors_match_torchvision(sizes, ratios, image, maps):
    torch, _ = _torchvision()
    from torchvision.models.detection.anchor_utils import AnchorGenerator as TVAnchors
    from torchvision.models.detection.image_list import ImageList
    images = ImageList(torch.zeros(1, 3, *image), [image])
    expected = TVAnchors(sizes, ratios)(images, [torch.zeros(1, 1, *m) for m in maps])[0]
    np.testing.assert_array_equal(AnchorGenerator(sizes, ratios)(image, list(maps)).numpy(), expected.numpy())


# --- box coding ------------------------------------------------------------------------------------------------------

def test_box_coder_by_hand_and_round_trip():
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    # reference p = (0, 0, 10, 10): centre 5, size 10; g = (0, 0, 20, 10): centre (10, 5), size (20, 10)
    codes = coder.encode_single(np.array([[0.0, 0, 20, 10]]), np.array([[0.0, 0, 10, 10]]))
    np.testing.assert_allclose(codes.numpy(), [[10 * 5 / 10, 0, 5 * math.log(2), 0]], rtol=1e-12)
    rng = np.random.default_rng(0)
    lo = rng.uniform(0, 50, (20, 2))
    proposals = np.concatenate([lo, lo + rng.uniform(1, 30, (20, 2))], axis=1)
    lo = rng.uniform(0, 50, (20, 2))
    truth = np.concatenate([lo, lo + rng.uniform(1, 30, (20, 2))], axis=1)
    back = coder.decode_single(coder.encode_single(truth, proposals), proposals)
    np.testing.assert_allclose(back.numpy(), truth, rtol=1e-10, atol=1e-10)
    # per-image lists, as torchvision's encode/decode: a tuple of per-image targets; decode gives [N, K, 4]
    parts = coder.encode([truth[:7], truth[7:]], [proposals[:7], proposals[7:]])
    assert [p.shape for p in parts] == [(7, 4), (13, 4)]
    decoded = coder.decode(mc.cat(list(parts)), [proposals[:7], proposals[7:]])
    assert decoded.shape == (20, 1, 4)
    np.testing.assert_allclose(decoded.numpy()[:, 0], truth, rtol=1e-10, atol=1e-10)


def test_box_coder_clips_large_log_sizes():
    coder = BoxCoder()
    out = coder.decode_single(np.array([[0.0, 0.0, 20.0, -20.0]]), np.array([[0.0, 0.0, 16.0, 16.0]])).numpy()
    # dw = 20 is clipped to log(1000 / 16): width 1000, centred at 8; dh = -20 is not clipped
    np.testing.assert_allclose(out[0, [0, 2]], [8 - 500, 8 + 500], rtol=1e-12)
    np.testing.assert_allclose(out[0, [1, 3]], 8 + np.array([-8, 8]) * math.exp(-20), rtol=1e-12)


def test_box_coder_decode_gradient():
    rng = np.random.default_rng(1)
    lo = rng.uniform(0, 20, (5, 2))
    boxes = np.concatenate([lo, lo + rng.uniform(2, 10, (5, 2))], axis=1)
    codes = rng.normal(0, 0.5, (5, 8))
    codes[0, 2] = 9.0  # beyond the clip: no gradient through that dw
    rel = mc.tensor(codes, requires_grad=True)
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0), bbox_xform_clip=1.5)
    assert mc.gradcheck(lambda c: coder.decode_single(c, boxes), [rel])
    coder.decode_single(rel, boxes).sum().backward()
    assert rel.grad.numpy()[0, 2] == 0 and rel.grad.numpy()[0, 6] != 0


def test_box_coder_matches_torchvision():
    torch, _ = _torchvision()
    from torchvision.models.detection._utils import BoxCoder as TVCoder
    rng = np.random.default_rng(2)

    def boxes(n):
        lo = rng.uniform(0, 100, (n, 2))
        return np.concatenate([lo, lo + rng.uniform(1, 60, (n, 2))], axis=1).astype(np.float32)
    truth, proposals, codes = boxes(30), boxes(30), rng.normal(0, 1, (30, 12)).astype(np.float32)
    codes[3, 2] = 8.0
    for weights in ((1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)):
        ours, theirs = BoxCoder(weights), TVCoder(weights)
        np.testing.assert_allclose(ours.encode_single(truth, proposals).numpy(),
                                   theirs.encode_single(torch.tensor(truth), torch.tensor(proposals)).numpy(),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.decode_single(codes, proposals).numpy(),
                                   theirs.decode_single(torch.tensor(codes), torch.tensor(proposals)).numpy(),
                                   rtol=1e-5, atol=1e-3)
        split = [proposals[:10], proposals[10:]]
        np.testing.assert_allclose(ours.decode(codes, split).numpy(),
                                   theirs.decode(torch.tensor(codes), [torch.tensor(p) for p in split]).numpy(),
                                   rtol=1e-5, atol=1e-3)


# --- k-means anchors -----------------------------------------------------------------------------------------------

def test_kmeans_recovers_clusters():
    rng = np.random.default_rng(3)
    centres = np.array([[12.0, 30.0], [40.0, 40.0], [90.0, 45.0], [30.0, 110.0]])
    wh = np.concatenate([c * np.exp(rng.normal(0, 0.04, (150, 2))) for c in centres])
    anchors, mean_iou = kmeans_anchors(wh, 4, seed=0)
    order = np.argsort(centres.prod(axis=1))
    np.testing.assert_allclose(anchors, centres[order], rtol=0.03)
    assert anchors.shape == (4, 2) and np.all(np.diff(anchors.prod(axis=1)) > 0) and 0.9 < mean_iou < 1
    # (x1, y1, x2, y2) boxes give the same clusters; the same seed gives the same answer
    xy = rng.uniform(0, 100, (len(wh), 2))
    again, iou_again = kmeans_anchors(np.concatenate([xy, xy + wh], axis=1), 4, seed=0)
    np.testing.assert_allclose(again, anchors, rtol=1e-9)
    assert abs(iou_again - mean_iou) < 1e-9
    # mean IoU by hand: one cluster of two boxes (1, 4) and (4, 1): centroid (2.5, 2.5), IoU 2.5 / (4 + 6.25 - 2.5)
    one, iou = kmeans_anchors([[1.0, 4.0], [4.0, 1.0]], 1)
    np.testing.assert_allclose(one, [[2.5, 2.5]])
    assert iou == pytest.approx(2.5 / 7.75)


# --- mAP -------------------------------------------------------------------------------------------------------------

def test_perfect_detections_give_ap_one():
    gts = [([[0, 0, 10, 10]], [1]), ([[5, 5, 20, 30], [40, 40, 50, 50]], [1, 1])]
    dets = [([[0, 0, 10, 10]], [0.9], [1]), ([[5, 5, 20, 30], [40, 40, 50, 50]], [0.3, 0.8], [1, 1])]
    assert evaluate(dets, gts) == {1: 1.0, "mAP": 1.0}
    assert evaluate(dets, gts, use_07_metric=True) == {1: 1.0, "mAP": 1.0}
    assert coco_map(dets, gts) == {1: 1.0, "mAP": 1.0, "mAP_50": 1.0, "mAP_75": 1.0}


def test_duplicate_is_a_false_positive():
    gts = [([[0, 0, 10, 10]], [0]), ([[0, 0, 10, 10]], [0])]
    dets = [([[0, 0, 10, 10], [0, 0, 10, 9]], [0.9, 0.8], [0, 0]), ([[0, 0, 10, 10]], [0.7], [0])]
    # TP, FP (the duplicate), TP: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> AP = 1/2 + 1/2 * 2/3
    assert evaluate(dets, gts)[0] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_difficult_objects_are_ignored():
    gts = [{"boxes": [[0, 0, 10, 10], [50, 50, 60, 60]], "labels": [2, 2], "difficult": [False, True]}]
    dets = [{"boxes": [[50, 50, 60, 60], [0, 0, 10, 10], [20, 20, 30, 30]], "scores": [0.95, 0.9, 0.8],
             "labels": [2, 2, 2]}]
    # the detection of the difficult object is neither TP nor FP, and there is one positive: TP then FP -> AP 1
    assert evaluate(dets, gts)[2] == 1.0
    assert coco_map(dets, gts)[2] == 1.0
    only_difficult = [{"boxes": [[50, 50, 60, 60]], "labels": [2], "difficult": [1]}]
    res = evaluate([dets[0]], only_difficult)
    assert math.isnan(res[2]) and math.isnan(res["mAP"])


def test_interpolations_on_a_known_curve():
    # npos = 4; TP FP TP FP FP TP: recall .25 .25 .5 .5 .5 .75, precision 1 .5 .67 .5 .4 .5
    tp = [1, 0, 1, 0, 0, 1]
    assert average_precision(tp, 4) == pytest.approx(0.25 * 1 + 0.25 * 2 / 3 + 0.25 * 0.5)
    # 11 points: p = 1 at r = 0, .1, .2; 2/3 at .3, .4, .5; 1/2 at .6, .7; 0 at .8, .9, 1
    assert average_precision(tp, 4, use_07_metric=True) == pytest.approx((3 + 3 * 2 / 3 + 2 * 0.5) / 11)
    # the points are voc_eval.py's np.arange(0, 1.1, 0.1): recall 3/10 falls short of 0.30000000000000004
    assert average_precision([1, 1, 1], 10, use_07_metric=True) == pytest.approx(3 / 11)
    assert average_precision([1, 1, 1, 0, 1], 10, use_07_metric=True) == pytest.approx((3 + 0.8 * 2) / 11)
    # the same curve through evaluate: one image per positive, each detection on its own image
    gts = [([[0, 0, 10, 10]], [0]) for _ in range(4)]
    boxes = [[0, 0, 10, 10], [30, 30, 40, 40], [0, 0, 10, 10], [30, 30, 40, 40], [30, 30, 40, 40], [0, 0, 10, 10]]
    image = [0, 0, 1, 1, 2, 2]
    dets = [([b for b, i in zip(boxes, image) if i == k], [1 - j / 10 for j, i in enumerate(image) if i == k],
             [0] * image.count(k)) for k in range(4)]
    assert evaluate(dets, gts)[0] == pytest.approx(average_precision(tp, 4))
    assert evaluate(dets, gts, use_07_metric=True)[0] == pytest.approx((3 + 3 * 2 / 3 + 2 * 0.5) / 11)


def test_two_classes_missed_objects_and_classes_without_truth():
    gts = [([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 1]), ([[0, 0, 10, 10]], [1])]
    dets = [([[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]], [0.9, 0.8, 0.7], [0, 1, 7]), ([], [], [])]
    res = evaluate(dets, gts)  # class 1: one of two found (AP 1/2); class 7 has no ground truth
    assert res[0] == 1.0 and res[1] == 0.5 and math.isnan(res[7])
    assert res["mAP"] == 0.75 and list(res) == [0, 1, 7, "mAP"]
    assert math.isnan(evaluate([], [])["mAP"]) and list(coco_map([], [])) == ["mAP"]
    nothing = evaluate([([], [], [])], [([], [])])
    assert list(nothing) == ["mAP"] and math.isnan(nothing["mAP"])


def test_iou_exactly_at_the_threshold_matches():
    gts = [([[0, 0, 10, 10]], [0])]
    half = [([[0, 0, 10, 20]], [0.9], [0])]  # IoU = 100 / 200 = 0.5
    assert evaluate(half, gts)[0] == 1.0
    assert evaluate(half, gts, iou_threshold=0.51)[0] == 0.0


def test_voc_and_coco_matching_rules_differ():
    # Det 2's best object (IoU .905) is taken by det 1; its second best has IoU 85/115 = .739
    gts = [([[0, 0, 10, 10], [2, 0, 12, 10]], [0, 0])]
    dets = [([[0, 0, 10, 10], [0.5, 0, 10.5, 10]], [0.9, 0.8], [0, 0])]
    assert evaluate(dets, gts)[0] == 0.5  # VOC: a duplicate of object 1, a FP
    # COCO: object 2 at thresholds .5 ... .70 (AP 1), none above (recall 1/2: 51 of the 101 points)
    res = coco_map(dets, gts)
    assert res[0] == pytest.approx((5 * 1 + 5 * 51 / 101) / 10)
    assert res["mAP_50"] == 1.0 and res["mAP_75"] == pytest.approx(51 / 101)


def test_coco_ties_go_to_the_last_object():
    # det 1 overlaps objects A and B equally (IoU 1/3); cocoeval gives it B, so det 2 (exactly B) finds nothing
    gts = [([[0, 0, 10, 10], [10, 0, 20, 10]], [0, 0])]
    dets = [([[5, 0, 15, 10], [10, 0, 20, 10]], [0.9, 0.8], [0, 0])]
    assert coco_map(dets, gts, iou_thresholds=[0.3])[0] == pytest.approx(51 / 101)


def test_coco_keeps_the_best_detections_per_image_and_class():
    gts = [([[0, 0, 10, 10]], [0])]
    dets = [([[50, 50, 60, 60], [70, 70, 80, 80], [0, 0, 10, 10]], [0.9, 0.8, 0.7], [0, 0, 0])]
    assert coco_map(dets, gts, max_detections=2)[0] == 0.0
    assert coco_map(dets, gts, max_detections=3)[0] == pytest.approx(1 / 3)


def test_map_accepts_tensors_and_dicts():
    gts = [{"boxes": mc.tensor(np.array([[0.0, 0, 10, 10]])), "labels": mc.tensor(np.array([4]))}]
    dets = [{"boxes": mc.tensor(np.array([[0.0, 0, 10, 10]], np.float32)), "scores": mc.tensor([0.5]),
             "labels": np.array([4])}]
    assert evaluate(dets, gts) == {4: 1.0, "mAP": 1.0}


@pytest.mark.parametrize("call, match", [
    (lambda: evaluate([([[0, 0, 1, 1]], [0.5], [0])], []), "1 images of detections but 0"),
    (lambda: evaluate([([[0, 0, 1, 1]], [math.nan], [0])], [([], [])]), "scores hold NaN"),
    (lambda: evaluate([([[0, 0, 1]], [0.5], [0])], [([], [])]), r"shape \[N, 4\]"),
    (lambda: evaluate([([[2, 0, 1, 1]], [0.5], [0])], [([], [])]), "x2 >= x1"),
    (lambda: evaluate([([[0, 0, 1, 1]], [0.5, 0.2], [0])], [([], [])]), "vector of 1 values"),
    (lambda: evaluate([([[0, 0, 1, 1]], [0.5], [0.0])], [([], [])]), "labels must be of kind"),
    (lambda: evaluate([([[0, 0, 1, 1]], [0.5])], [([], [])]), "must be a tuple"),
    (lambda: evaluate([{"boxes": [], "labels": []}], [([], [])]), "missing \\['scores'\\]"),
    (lambda: evaluate([], [], iou_threshold=1.5), "iou_threshold"),
    (lambda: evaluate([], [], iou_threshold=0), "iou_threshold"),
    (lambda: average_precision([True, True], 1), "num_positives"),
    (lambda: coco_map([], [], iou_thresholds=[]), "iou_thresholds"),
    (lambda: coco_map([], [], max_detections=0), "max_detections"),
    (lambda: AnchorGenerator(((32,), (64,)), ((1.0,), (1.0,), (2.0,))), "one tuple of sizes"),
    (lambda: AnchorGenerator(((32, -1),), ((1.0,),)), "positive numbers"),
    (lambda: AnchorGenerator()((64, 64), [(8, 8), (4, 4)]), "need as many feature maps"),
    (lambda: AnchorGenerator()((64, 64), [(80, 8)]), "larger than the image"),
    (lambda: AnchorGenerator()((64, 0), [(8, 8)]), "image_size"),
    (lambda: BoxCoder(weights=(1.0, 1.0, 0.0, 1.0)), "weights"),
    (lambda: BoxCoder().encode_single([[0, 0, 0, 5]], [[0, 0, 5, 5]]), "x2 > x1"),
    (lambda: BoxCoder().encode_single([[0, 0, 5, 5]], [[0, 0, 5, 5], [0, 0, 5, 5]]), "pair up"),
    (lambda: BoxCoder().decode_single(np.zeros((2, 5)), [[0, 0, 5, 5], [0, 0, 5, 5]]), r"\[N, 4 K\]"),
    (lambda: kmeans_anchors([[1.0, 2.0], [1.0, 2.0]], 2), "distinct"),
    (lambda: kmeans_anchors([[0.0, 2.0]], 1), "positive width"),
    (lambda: kmeans_anchors([[1.0, 2.0]], 0), "k must"),
])
def test_bad_inputs(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.gpu
def test_gpu_inputs_give_the_cpu_numbers():
    import cupy
    anchors = AnchorGenerator()((64, 64), [(8, 8)], device="cuda")
    assert anchors.device.type == "cuda"
    np.testing.assert_array_equal(anchors.numpy(), AnchorGenerator()((64, 64), [(8, 8)]).numpy())
    rng = np.random.default_rng(4)
    lo = rng.uniform(0, 50, (10, 2))
    truth, proposals = (np.concatenate([lo, lo + rng.uniform(1, 30, (10, 2))], axis=1) for _ in range(2))
    coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
    codes = coder.encode_single(cupy.asarray(truth), cupy.asarray(proposals))
    assert codes.device.type == "cuda"
    np.testing.assert_allclose(codes.numpy(), coder.encode_single(truth, proposals).numpy(), rtol=1e-12)
    back = coder.decode_single(codes, cupy.asarray(proposals))
    assert back.device.type == "cuda"
    np.testing.assert_allclose(back.numpy(), coder.decode_single(codes.numpy(), proposals).numpy(), rtol=1e-12)
    gts = [([[0, 0, 10, 10], [20, 0, 30, 10]], [0, 1]), ([[0, 0, 10, 10]], [1])]
    dets = [([[0, 0, 10, 10], [20, 0, 30, 10], [50, 50, 60, 60]], [0.9, 0.8, 0.7], [0, 1, 7]), ([], [], [])]
    on_gpu = lambda case: [tuple(cupy.asarray(np.asarray(a)) for a in item) for item in case]  # noqa: E731
    np.testing.assert_equal(evaluate(on_gpu(dets), on_gpu(gts)), evaluate(dets, gts))


def test_docstring_examples(plt):
    import doctest

    from minicnn.detection import anchors, draw, metrics
    for module in (anchors, metrics, draw):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


# --- drawing -------------------------------------------------------------------------------------------------------

@pytest.fixture
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    yield pyplot
    pyplot.close("all")


def test_draw_boxes(plt):
    from matplotlib.patches import Rectangle

    from minicnn.detection import draw_boxes
    boxes = np.array([[4, 4, 20, 12], [0, 10, 30, 31], [5, 5, 6, 6]], np.float32)
    ax = draw_boxes(mc.tensor(np.zeros((3, 32, 40), np.float32)), boxes, labels=[0, 2, 1], scores=[0.9, 0.5, 0.25],
                    class_names=["cat", "dog", "bird"])
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(rects) == 3
    assert [(r.get_x(), r.get_y(), r.get_width(), r.get_height()) for r in rects] == \
        [(4, 4, 16, 8), (0, 10, 30, 21), (5, 5, 1, 1)]
    assert [t.get_text() for t in ax.texts] == ["cat 0.90", "bird 0.50", "dog 0.25"]
    assert ax.images[0].get_array().shape == (32, 40, 3) and ax.get_xlim() == (0, 40)
    _, ax2 = plt.subplots()
    assert draw_boxes(np.zeros((16, 16)), boxes[:1], ax=ax2) is ax2 and len(ax2.patches) == 1 and not ax2.texts
    assert len(draw_boxes(np.zeros((16, 16, 3), np.uint8), np.zeros((0, 4)), labels=[]).patches) == 0
    with pytest.raises(ValueError, match="image must be"):
        draw_boxes(np.zeros((2, 5, 16, 16)), boxes)
    with pytest.raises(ValueError, match="3 boxes but 2 labels"):
        draw_boxes(np.zeros((16, 16)), boxes, labels=[1, 2])


def test_draw_boxes_without_matplotlib(monkeypatch):
    import sys

    from minicnn.detection import draw_boxes
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # `import matplotlib.pyplot` now fails
    with pytest.raises(ImportError, match="draw_boxes needs matplotlib"):
        draw_boxes(np.zeros((8, 8)), [[0, 0, 4, 4]])
