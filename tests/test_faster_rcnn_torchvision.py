"""Faster R-CNN's pieces against torchvision.models.detection (skipped without a working torchvision): the
Matcher and the sampler's counts, the whole region proposal network and the whole RoI heads, with the same weights
and features, in training mode (the four losses, every anchor and RoI drawn so that nothing is random) and in eval
mode (proposals and detections)."""
import numpy as np
import pytest

import minicnn as mc
from minicnn import models
from minicnn.detection.matching import BalancedPositiveNegativeSampler, Matcher
from minicnn.detection.rpn import Proposals


def detection_or_skip():
    """(torch, torchvision.models.detection), or a skip: a torchvision built for another PyTorch raises on import."""
    try:
        import torch
        import torchvision.models.detection as detection  # loads its _utils, image_list, rpn, roi_heads, ...
        return torch, detection
    except Exception as e:
        pytest.skip(f"torchvision is not usable here: {type(e).__name__}: {e}")


ALL = 100_000  # a sample larger than every image's anchors or RoIs, with positive_fraction 1: everything is drawn
SIZES, RATIOS, SIZE = (16, 24, 32, 40), (1.0, 1.5, 2.5), (96, 96)


def model(**kw):
    mc.manual_seed(0)
    return models.create("fasterrcnn", num_classes=4, widths=(4, 8, 16), representation_size=32,
                         rpn_batch_size_per_image=ALL, rpn_positive_fraction=1.0, box_batch_size_per_image=ALL,
                         box_positive_fraction=1.0, **kw)


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((2, 16, 12, 12)).astype(np.float32)
    targets = [{"boxes": np.array([[10, 12, 30, 44], [50, 20, 80, 70], [40, 60, 57, 90]], np.float32),
                "labels": np.array([1, 4, 2])},
               {"boxes": np.array([[5, 5, 35, 28]], np.float32), "labels": np.array([3])}]
    return features, targets


def copy_weights(torch, pairs):
    with torch.no_grad():
        for theirs, ours in pairs:
            theirs.copy_(torch.from_numpy(ours.data.copy()))


@pytest.mark.parametrize("low_quality", [False, True])
def test_matcher_matches_torchvision(low_quality):
    torch, detection = detection_or_skip()
    rng = np.random.default_rng(1)
    for _ in range(20):
        iou = np.round(rng.uniform(0, 1, (4, 30)) ** 3, 2).astype(np.float32)  # rounding makes ties
        ours = Matcher(0.7, 0.3, low_quality)(iou)
        theirs = detection._utils.Matcher(0.7, 0.3, low_quality)(torch.from_numpy(iou)).numpy()
        np.testing.assert_array_equal(ours, theirs)


def test_sampler_counts_match_torchvision():
    torch, detection = detection_or_skip()
    labels = np.random.default_rng(2).choice([-1, 0, 1], (5, 200), p=[0.2, 0.7, 0.1])
    labels[1, :] = np.where(labels[1] == 1, 0, labels[1])  # an image without positives
    pos, neg = BalancedPositiveNegativeSampler(64, 0.25)(labels)
    tv_pos, tv_neg = detection._utils.BalancedPositiveNegativeSampler(64, 0.25)(list(torch.from_numpy(labels)))
    assert pos.sum(axis=1).tolist() == [int(p.sum()) for p in tv_pos]
    assert neg.sum(axis=1).tolist() == [int(n.sum()) for n in tv_neg]


def torchvision_rpn(torch, detection, ours, training):
    tv = detection.rpn
    head = tv.RPNHead(16, len(SIZES) * len(RATIOS))
    conv = head.conv[0][0]
    copy_weights(torch, [(conv.weight, ours.head.conv[0].weight), (conv.bias, ours.head.conv[0].bias)] +
                 [(getattr(getattr(head, n), p), getattr(getattr(ours.head, n), p))
                  for n in ("cls_logits", "bbox_pred") for p in ("weight", "bias")])
    rpn = tv.RegionProposalNetwork(tv.AnchorGenerator((SIZES,), (RATIOS,)), head, 0.7, 0.3, ALL, 1.0,
                                   {"training": 600, "testing": 300}, {"training": 300, "testing": 100}, 0.7)
    return rpn.train(training)


@pytest.mark.parametrize("training", [True, False])
def test_rpn_matches_torchvision(training):
    torch, detection = detection_or_skip()
    ours = model().rpn.train(training)
    for p in ours.head.parameters():  # larger weights than the N(0, 0.01) start, so that boxes move and scores differ
        p.data[...] = np.random.default_rng(3).standard_normal(p.shape).astype(np.float32) * 0.2
    features, targets = inputs()
    theirs = torchvision_rpn(torch, detection, ours, training)
    images = detection.image_list.ImageList(torch.zeros(2, 1, *SIZE), [SIZE] * 2)
    tv_targets = [{k: torch.from_numpy(v) for k, v in t.items()} for t in targets]
    tv_boxes, tv_losses = theirs(images, {"0": torch.from_numpy(features)}, tv_targets if training else None)
    proposals, losses = ours(mc.tensor(features), SIZE, targets if training else None)
    assert sorted(losses) == sorted(tv_losses)
    for name, value in tv_losses.items():
        np.testing.assert_allclose(losses[name].item(), value.item(), rtol=1e-5, err_msg=name)
    for i, boxes in enumerate(tv_boxes):
        np.testing.assert_allclose(proposals.boxes[proposals.image_index == i], boxes.detach().numpy(), rtol=1e-5,
                                   atol=1e-4)
    if training:  # the gradients of the head's weights agree too
        sum(losses.values()).backward()
        sum(tv_losses.values()).backward()
        np.testing.assert_allclose(ours.head.bbox_pred.weight.grad.numpy(), theirs.head.bbox_pred.weight.grad.numpy(),
                                   rtol=1e-4, atol=1e-7)


def torchvision_heads(torch, detection, ours):
    from torchvision.ops import MultiScaleRoIAlign
    tv = detection
    head = tv.faster_rcnn.TwoMLPHead(16 * 49, 32)
    predictor = tv.faster_rcnn.FastRCNNPredictor(32, 5)
    copy_weights(torch, [(getattr(getattr(tv_module, n), p), getattr(getattr(our_module, n), p))
                         for tv_module, our_module, names in (
                             (head, ours.box_head, ("fc6", "fc7")),
                             (predictor, ours.box_predictor, ("cls_score", "bbox_pred")))
                         for n in names for p in ("weight", "bias")])
    return tv.roi_heads.RoIHeads(MultiScaleRoIAlign(["0"], 7, 2), head, predictor, 0.5, 0.5, ALL, 1.0,
                                 (10.0, 10.0, 5.0, 5.0), 0.05, 0.5, 100)


def random_proposals(targets, seed=4):
    """Per image: the objects jittered (foreground RoIs) and random boxes (mostly background)."""
    rng = np.random.default_rng(seed)
    out = []
    for t in targets:
        near = np.repeat(t["boxes"], 4, axis=0) + rng.uniform(-6, 6, (4 * len(t["boxes"]), 4))
        lo = rng.uniform(0, 70, (20, 2))
        far = np.concatenate([lo, lo + rng.uniform(8, 26, (20, 2))], axis=1)
        out.append(np.clip(np.concatenate([near, far]), 0, 96).astype(np.float32))
    return out


@pytest.mark.parametrize("training", [True, False])
def test_roi_heads_match_torchvision(training):
    torch, detection = detection_or_skip()
    ours = model().roi_heads.train(training)
    features, targets = inputs()
    targets = [{"boxes": t["boxes"], "labels": t["labels"] + 0} for t in targets]  # labels 1..4: 0 is background
    per_image = random_proposals(targets)
    theirs = torchvision_heads(torch, detection, ours).train(training)
    tv_targets = [{k: torch.from_numpy(v) for k, v in t.items()} for t in targets]
    tv_out, tv_losses = theirs({"0": torch.from_numpy(features)}, [torch.from_numpy(p) for p in per_image],
                               [SIZE] * 2, tv_targets if training else None)
    proposals = Proposals(np.concatenate(per_image), np.repeat(np.arange(2), [len(p) for p in per_image]), None)
    detections, losses = ours(mc.tensor(features), proposals, SIZE, targets if training else None)
    for name, value in tv_losses.items():
        np.testing.assert_allclose(losses[name].item(), value.item(), rtol=1e-5, err_msg=name)
    if training:
        assert sorted(losses) == sorted(tv_losses)
        return
    boxes, scores, labels, image_index = detections
    assert len(boxes) > 10
    for i, d in enumerate(tv_out):
        mine = image_index == i
        np.testing.assert_allclose(boxes[mine], d["boxes"].detach().numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(scores[mine], d["scores"].detach().numpy(), rtol=1e-5)
        np.testing.assert_array_equal(labels[mine], d["labels"].numpy())
