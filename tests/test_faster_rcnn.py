"""Faster R-CNN: the two losses it adds to minicnn.functional (gradient checks, PyTorch), the matcher and the
balanced sampler by hand, the RPN's anchor labels and proposal filtering by hand, the RoI heads' matching, targets,
loss and post-processing by hand, the RoI op switch, images without objects, bad inputs, the zoo entry, and a short
training on ShapeDetection. torchvision comparisons are in test_faster_rcnn_torchvision.py."""
import numpy as np
import pytest

import minicnn as mc
import minicnn.functional as F
from minicnn import models
from minicnn.data import ShapeDetection, detection_collate
from minicnn.detection import BoxCoder
from minicnn.detection.matching import BalancedPositiveNegativeSampler, Matcher, rank_within
from minicnn.detection.roi_heads import RoIHeads, fastrcnn_loss
from minicnn.detection.rpn import Proposals

rng = np.random.default_rng(0)


# --- losses -----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_gradcheck_and_torch(torch_mod, reduction):
    torch = torch_mod
    x = mc.tensor(rng.uniform(-4, 4, (3, 5)), requires_grad=True)
    t = mc.tensor(rng.uniform(0, 1, (3, 5)), requires_grad=True)
    w = rng.uniform(0.5, 2, (1, 5))
    fn = lambda x, t: F.binary_cross_entropy_with_logits(x, t, w, reduction).sum()  # noqa: E731
    assert mc.gradcheck(fn, [x, t])
    x, t = (mc.tensor(v.numpy(), requires_grad=True) for v in (x, t))  # fresh gradients
    ours = F.binary_cross_entropy_with_logits(x, t, w, reduction)
    tx, tt = (torch.tensor(v.numpy(), requires_grad=True) for v in (x, t))
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(tx, tt, torch.tensor(w), reduction=reduction)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)
    ours.sum().backward()
    theirs.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_bce_with_logits_is_stable_for_huge_logits():
    x = mc.tensor(np.array([-1e4, -50.0, 0.0, 50.0, 1e4], np.float32), requires_grad=True)
    t = np.array([0.0, 1.0, 0.5, 0.0, 1.0], np.float32)
    loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(loss.numpy(), [0.0, 50.0, np.log(2), 50.0, 0.0], rtol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, -1.0, 0.0, 1.0, 0.0], atol=1e-7)


@pytest.mark.parametrize("beta", [1.0, 1 / 9, 0.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_smooth_l1_gradcheck_and_torch(torch_mod, beta, reduction):
    torch = torch_mod
    x = mc.tensor(rng.uniform(-2, 2, (4, 4)), requires_grad=True)
    t = mc.tensor(x.numpy() + rng.choice([-1.5, -0.5, -0.05, 0.03, 0.4, 2.0], (4, 4)), requires_grad=True)
    assert mc.gradcheck(lambda x, t: F.smooth_l1_loss(x, t, beta, reduction).sum(), [x, t])  # away from the kinks
    x, t = (mc.tensor(v.numpy(), requires_grad=True) for v in (x, t))
    ours = F.smooth_l1_loss(x, t, beta, reduction)
    tx, tt = (torch.tensor(v.numpy(), requires_grad=True) for v in (x, t))
    theirs = torch.nn.functional.smooth_l1_loss(tx, tt, beta=beta, reduction=reduction)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)
    ours.sum().backward()
    theirs.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(t.grad.numpy(), tt.grad.numpy(), rtol=1e-12)


def test_smooth_l1_by_hand_and_loss_errors():
    d = F.smooth_l1_loss(mc.tensor([0.05, -0.2, 1.0]), [0.0, 0.0, 0.0], beta=0.1, reduction="none").numpy()
    np.testing.assert_allclose(d, [0.5 * 0.05 ** 2 / 0.1, 0.2 - 0.05, 1.0 - 0.05], rtol=1e-6)
    with pytest.raises(ValueError, match="smooth_l1_loss: beta"):
        F.smooth_l1_loss(mc.tensor([1.0]), [0.0], beta=-1)
    with pytest.raises(ValueError, match="smooth_l1_loss: reduction"):
        F.smooth_l1_loss(mc.tensor([1.0]), [0.0], reduction="avg")
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: input and target"):
        F.binary_cross_entropy_with_logits(mc.tensor([1.0, 2.0]), [0.0])
    with pytest.raises(ValueError, match="binary_cross_entropy_with_logits: weight"):
        F.binary_cross_entropy_with_logits(mc.tensor([1.0, 2.0]), [0.0, 1.0], weight=[1.0, 2.0, 3.0])


# --- matcher and sampler ---------------------------------------------------------------------------------------

def test_matcher_thresholds_and_the_best_anchor_rule():
    iou = np.array([[0.80, 0.50, 0.10, 0.45, 0.00],    # object 0: anchor 0 is positive, anchor 1 ignored
                    [0.10, 0.60, 0.20, 0.65, 0.00]])   # object 1: its best anchor (3, IoU 0.65 < 0.7) is claimed
    assert Matcher(0.7, 0.3)(iou).tolist() == [0, -2, -1, -2, -1]
    assert Matcher(0.7, 0.3, allow_low_quality_matches=True)(iou).tolist() == [0, -2, -1, 1, -1]
    tie = np.array([[0.5, 0.5, 0.2], [0.4, 0.1, 0.0]])  # ties all claimed; an anchor takes its own best object
    assert Matcher(0.7, 0.3, True)(tie).tolist() == [0, 0, -1]
    batch = np.stack([iou, np.array([[0.9, 0, 0, 0, 0], [-1, -1, -1, -1, -1]])])  # image 1: one object, one pad
    assert Matcher(0.7, 0.3, True)(batch).tolist() == [[0, -2, -1, 1, -1], [0, -1, -1, -1, -1]]
    assert Matcher(0.7, 0.3, True)(np.zeros((0, 4))).tolist() == [-1] * 4
    assert Matcher(0.7, 0.3, True)(np.zeros((1, 3))).tolist() == [-1] * 3  # an object far from every anchor
    with pytest.raises(ValueError, match="Matcher"):
        Matcher(0.3, 0.7)


def test_rank_within_groups():
    groups, keys = np.array([2, 0, 2, 0, 2, 1]), np.array([0.3, 0.9, 0.1, 0.2, 0.2, 0.5])
    assert rank_within(groups, keys).tolist() == [2, 1, 0, 0, 1, 0]


def test_sampler_counts_and_seed():
    labels = np.array([[1] * 10 + [0] * 50 + [-1] * 4,      # many positives: capped at 8 of 16
                       [1] * 2 + [0] * 60 + [-1] * 2,       # few positives: 2, and 14 negatives
                       [0] * 5 + [-1] * 59])                # few of everything: all 5 negatives
    sampler = BalancedPositiveNegativeSampler(16, 0.5)
    mc.manual_seed(3)
    pos, neg = sampler(labels)
    assert pos.sum(axis=1).tolist() == [8, 2, 0] and neg.sum(axis=1).tolist() == [8, 14, 5]
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all()
    mc.manual_seed(3)
    again = sampler(labels)
    assert (again[0] == pos).all() and (again[1] == neg).all()
    mc.manual_seed(4)
    assert not (sampler(labels)[1] == neg).all()
    flat, image = labels.reshape(-1), np.repeat(np.arange(3), 64)  # the flat form with image indices: same counts
    p, n = sampler(flat, image)
    assert np.bincount(image[p], minlength=3).tolist() == [8, 2, 0]
    assert np.bincount(image[n], minlength=3).tolist() == [8, 14, 5]


def test_sampler_draws_uniformly():
    sampler = BalancedPositiveNegativeSampler(2, 0.5)
    labels = np.array([[1, 1, 1, 1, 0, 0, 0, 0]])
    counts = sum(sampler(labels)[0][0].astype(int) for _ in range(400))
    assert counts.sum() == 400 and counts[:4].min() > 60  # each positive drawn about 100 times out of 400


# --- the region proposal network ----------------------------------------------------------------------------------

def small_model(**kw):
    kw = {"widths": (4, 8, 8), "representation_size": 16, **kw}
    return models.create("fasterrcnn", num_classes=3, **kw)


def test_rpn_anchor_labels_by_hand():
    rpn = small_model().rpn
    anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 12], [20, 20, 30, 30], [40, 40, 50, 50], [0, 0, 20, 20]],
                       np.float32)
    gt = np.array([[[0, 0, 10, 10], [21, 21, 33, 33]], [[0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    valid = np.array([[True, True], [False, False]])
    labels, matches = rpn.assign_targets_to_anchors(anchors, gt, valid)
    # anchor 1: IoU 100/120 = 0.83 >= 0.7; anchor 2: IoU 81/163 = 0.5, ignored by the thresholds but the best
    # anchor of object 1, so positive; anchor 4: IoU 0.25 < 0.3, negative; image 1 has no objects
    assert labels.tolist() == [[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]]
    assert matches[0, :3].tolist() == [0, 0, 1]


def test_rpn_proposal_filtering_by_hand():
    rpn = small_model(rpn_pre_nms_top_n_test=4, rpn_post_nms_top_n_test=2).rpn.eval()
    anchors = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40], [-20, -20, -19.9995, -10],
                        [50, 50, 60, 60]], np.float32)
    logits = np.array([[3.0, 2.0, 1.0, 4.0, -5.0], [0.0, 1.0, 2.0, 3.0, 4.0]], np.float32)
    deltas = np.zeros((2, 5, 4), np.float32)
    deltas[1, 4] = [0.5, 0, 0, 0]  # image 1: anchor 4 moves 5 px right
    p = rpn.filter_proposals(logits, deltas, anchors, (64, 64))
    # image 0: top 4 = anchors 3, 0, 1, 2; anchor 3 clipped to zero width goes; NMS drops 1 (IoU 0.82 with 0)
    # image 1: top 4 = 4, 3, 2, 1; anchor 3 goes; the post-NMS cut keeps the best two, 4 (moved) and 2
    np.testing.assert_allclose(p.boxes, [[0, 0, 10, 10], [30, 30, 40, 40], [55, 50, 64, 60], [30, 30, 40, 40]])
    assert p.image_index.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(p.scores, 1 / (1 + np.exp(-np.array([3.0, 1.0, 4.0, 2.0]))), rtol=1e-6)


# --- the RoI heads --------------------------------------------------------------------------------------------------

def heads(**kw):
    return RoIHeads(None, None, 1 / 8, **{"batch_size_per_image": 1000, "positive_fraction": 1.0, **kw})


def test_roi_matching_and_targets_by_hand():
    proposals = Proposals(np.array([[0, 0, 10, 10], [0, 0, 20, 10], [50, 50, 60, 60], [0, 0, 10, 10]], np.float32),
                          np.array([0, 0, 0, 1]), np.ones(4, np.float32))
    targets = [{"boxes": np.array([[0, 0, 10, 11]], np.float32), "labels": np.array([3])},
               {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}]
    boxes, image_index, labels, regression = heads().select_training_samples(proposals, targets)
    # the object joins the proposals of image 0; IoU 100/110, 100/210, 0 and 1; image 1 has none: background
    assert sorted(zip(image_index.tolist(), labels.tolist(), boxes[:, 2].tolist())) == \
        [(0, 0, 20.0), (0, 0, 60.0), (0, 3, 10.0), (0, 3, 10.0), (1, 0, 10.0)]
    fg = labels > 0
    expected = BoxCoder((10, 10, 5, 5)).encode_single(np.repeat([[0, 0, 10, 11]], 2, 0), boxes[fg]).numpy()
    np.testing.assert_allclose(regression, expected)
    assert np.abs(expected).sum() > 0  # the proposal (0, 0, 10, 10) has a target: dy and dh of the 11-px object


def test_fastrcnn_loss_by_hand():
    logits = mc.tensor(rng.standard_normal((3, 3)), requires_grad=True)
    deltas = mc.tensor(rng.standard_normal((3, 12)), requires_grad=True)
    labels, targets = np.array([2, 0, 1]), rng.standard_normal((2, 4))
    cls, box = fastrcnn_loss(logits, deltas, labels, targets)
    d = deltas.numpy().reshape(3, 3, 4)
    diff = np.abs(np.stack([d[0, 2], d[2, 1]]) - targets)
    expected_box = np.where(diff < 1 / 9, 4.5 * diff ** 2, diff - 1 / 18).sum() / 3
    np.testing.assert_allclose(box.item(), expected_box, rtol=1e-12)
    np.testing.assert_allclose(cls.item(), F.cross_entropy(logits, labels).item())
    assert mc.gradcheck(lambda lg, dl: sum(fastrcnn_loss(lg, dl, labels, targets)), [logits, deltas])


def test_postprocess_by_hand():
    h = heads(score_thresh=0.2, detections_per_img=2)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40], [0, 0, 10, 10]], np.float32)
    image_index = np.array([0, 0, 0, 1])
    probs = np.array([[0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.05, 0.3, 0.65], [0.5, 0.25, 0.25]])
    deltas = np.zeros((4, 12), np.float32)
    deltas[2, 8:10] = [10.0, 0]  # class 2 of RoI 2: one box width to the right
    out_boxes, scores, labels, image = h.postprocess(mc.tensor(np.log(probs)), mc.tensor(deltas), boxes,
                                                     image_index, (64, 64))
    # image 0: (RoI 0, class 1) 0.8 suppresses (RoI 1, class 1) 0.7 (IoU 0.82); (RoI 2, class 2) 0.65 moved;
    # (RoI 2, class 1) 0.3; (RoI 1, class 2) 0.2 is not above the threshold; the top 2 stay. Image 1: 0.25 twice.
    assert image.tolist() == [0, 0, 1, 1] and labels.tolist() == [1, 2, 1, 2]
    np.testing.assert_allclose(scores, [0.8, 0.65, 0.25, 0.25], rtol=1e-6)
    np.testing.assert_allclose(out_boxes[:2], [[0, 0, 10, 10], [40, 30, 50, 40]], atol=1e-5)
    nothing = h.postprocess(mc.tensor(np.zeros((0, 3))), mc.tensor(np.zeros((0, 12))), np.zeros((0, 4), np.float32),
                            np.zeros(0, np.int64), (64, 64))
    assert [a.shape for a in nothing] == [(0, 4), (0,), (0,), (0,)]


# --- the model --------------------------------------------------------------------------------------------------

def shapes_batch(n=2, empty=()):
    data = ShapeDetection(size=64, length=8)
    images, targets = detection_collate([data[i] for i in range(n)])
    for i in empty:
        targets[i] = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    return images, targets


def test_zoo_entry_train_and_eval():
    model = models.create("faster_rcnn", num_classes=3, widths=(4, 8, 8), representation_size=16)
    assert isinstance(model, models.FasterRCNN) and "fasterrcnn" in models.list_models()
    assert models.task_of("faster_rcnn") == "detection"
    images, targets = shapes_batch(2)
    losses = model(images, targets)
    assert sorted(losses) == ["loss_box_reg", "loss_classifier", "loss_objectness", "loss_rpn_box_reg"]
    assert all(np.isfinite(v.item()) for v in losses.values())
    sum(losses.values()).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), name
    model.eval()
    out = model(mc.tensor(images))
    assert len(out) == 2
    for o in out:
        assert o["boxes"].dtype == np.float32 and o["boxes"].shape[1:] == (4,) and o["labels"].dtype == np.int64
        assert o["scores"].shape == o["labels"].shape == (len(o["boxes"]),)
        assert ((o["labels"].numpy() >= 0) & (o["labels"].numpy() < 3)).all()
        assert (o["boxes"].numpy() >= 0).all() and (o["boxes"].numpy() <= 64).all()
        assert (np.diff(o["scores"].numpy()) <= 0).all()


def test_images_without_objects_train_the_background_only():
    model = small_model()
    images, targets = shapes_batch(2, empty=(0, 1))
    losses = model(images, targets)
    assert losses["loss_rpn_box_reg"].item() == 0 and losses["loss_box_reg"].item() == 0
    assert np.isfinite(losses["loss_objectness"].item()) and losses["loss_classifier"].item() > 0
    sum(losses.values()).backward()
    assert all(np.isfinite(p.grad.numpy()).all() for p in model.parameters() if p.grad is not None)
    images, targets = shapes_batch(2, empty=(1,))  # one image with objects, one without
    assert all(np.isfinite(v.item()) for v in model(images, targets).values())


def test_roi_op_switch():
    model = small_model()
    assert model.roi_op == "align" and small_model(roi_op="pool").roi_op == "pool"
    features = mc.tensor(rng.standard_normal((1, 8, 8, 8)).astype(np.float32))
    box = np.array([[3.0, 5.0, 29.0, 27.0]], np.float32)
    aligned = model.roi_heads.pool(features, np.concatenate([[[0.0]], box], axis=1).astype(np.float32))
    model.roi_op = "pool"
    pooled = model.roi_heads.pool(features, np.concatenate([[[0.0]], box], axis=1).astype(np.float32))
    assert aligned.shape == pooled.shape == (1, 8, 7, 7) and not np.allclose(aligned.numpy(), pooled.numpy())
    np.testing.assert_allclose(pooled.numpy(), mc.ops.roi_pool(features, [box], 7, 1 / 8).numpy())
    images, targets = shapes_batch(2)
    assert all(np.isfinite(v.item()) for v in model(images, targets).values())
    with pytest.raises(ValueError, match="roi_op"):
        model.roi_op = "crop"
    with pytest.raises(ValueError, match="roi_op"):
        small_model(roi_op="warp")


def test_bad_inputs():
    model = small_model()
    images, targets = shapes_batch(2)
    box = lambda b: [{"boxes": np.array([b], np.float32), "labels": np.array([0])}] * 2  # noqa: E731
    cases = [((images[:, :, :60, :60], targets), "multiples of the stride"),
             ((np.concatenate([images] * 3, axis=1), targets), r"expected images \[B, 1, H, W\]"),
             ((images, targets[:1]), "a list of 2 dicts"),
             ((images, None), "a list of 2 dicts"),
             ((images, [{"boxes": np.zeros((1, 4))}] * 2), "a dict with 'boxes' and 'labels'"),
             ((images, [{"boxes": np.zeros((1, 3)), "labels": np.array([0])}] * 2), r"must be \[L, 4\]"),
             ((images, [{"boxes": np.array([[0, 0, 5, 5]]), "labels": np.array([0, 1])}] * 2), "1 integers"),
             ((images, [{"boxes": np.array([[0, 0, 5, 5]]), "labels": np.array([0.5])}] * 2), "1 integers"),
             ((images, [{"boxes": np.array([[0, 0, 5, 5]]), "labels": np.array([3])}] * 2), r"lie in \[0, 3\)"),
             ((images, box([0, 0, np.nan, 5])), "NaN or infinite"),
             ((images, box([5, 5, 5, 9])), "no area inside"),
             ((images, box([70, 70, 90, 90])), "no area inside")]
    for args, message in cases:
        with pytest.raises(ValueError, match="FasterRCNN: .*" + message):
            model(*args)
    clipped = model(images, box([-5, -5, 20, 20]))  # partly outside: clipped to the image, trained as (0, 0, 20, 20)
    assert all(np.isfinite(v.item()) for v in clipped.values())


def test_training_on_shapes_lowers_the_loss():
    """100 steps of 4 images of ShapeDetection (64 px, three classes): the summed loss falls by more than half."""
    mc.manual_seed(0)
    data = ShapeDetection(size=64, length=64, sizes=(12, 24))
    model = models.create("fasterrcnn", num_classes=3, widths=(8, 16, 16), representation_size=64,
                          anchor_sizes=(12, 16, 24), aspect_ratios=(0.5, 1.0, 2.0), box_batch_size_per_image=32)
    opt = mc.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    history = []
    for step in range(100):
        images, targets = detection_collate([data[(step * 4 + i) % 64] for i in range(4)])
        loss = sum(model(images, targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert np.mean(history[-20:]) < 0.5 * np.mean(history[:10])


@pytest.mark.gpu
def test_gpu_matches_cpu():
    """The same weights, images, targets and seed on both devices: the same losses and detections."""
    cpu = small_model()
    gpu = small_model().to("cuda")
    gpu.load_state_dict(cpu.state_dict())
    images, targets = shapes_batch(2)
    results = []
    for model, device in ((cpu, "cpu"), (gpu, "cuda")):
        mc.manual_seed(5)
        losses = model(mc.tensor(images, device=device), targets)
        assert losses["loss_classifier"].device.type == device
        model.eval()
        out = model(mc.tensor(images, device=device))
        results.append(({k: v.item() for k, v in losses.items()}, [{k: v.numpy() for k, v in o.items()} for o in out]))
    (cpu_losses, cpu_out), (gpu_losses, gpu_out) = results
    for name in cpu_losses:
        np.testing.assert_allclose(gpu_losses[name], cpu_losses[name], rtol=1e-4, err_msg=name)
    for c, g in zip(cpu_out, gpu_out):
        np.testing.assert_allclose(g["boxes"], c["boxes"], rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(g["labels"], c["labels"])
