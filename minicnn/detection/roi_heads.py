"""The second stage of Faster R-CNN: the Fast R-CNN detector on the region proposals (Girshick 2015, "Fast R-CNN";
Ren et al. 2015, section 3), with torchvision.models.detection.roi_heads' structure and conventions.

Each proposal's window of the feature map becomes a fixed [C, 7, 7] grid, by RoI align (He et al. 2017, "Mask
R-CNN": bilinear samples, no rounding; roi_op="align", the default, as torchvision) or by RoI max pooling (Fast
R-CNN's, which rounds the window to whole feature-map cells; roi_op="pool"), then two fully connected layers with
ReLU (TwoMLPHead) and a predictor: K + 1 class logits (class 0 is the background) and 4 (K + 1) box deltas, one
set per class, coded relative to the proposal by BoxCoder with weights (10, 10, 5, 5).

Training: the objects are added to the proposals (so that every object has at least one well-placed RoI from
the first step on), each RoI takes the object of highest IoU: foreground with that object's class when IoU >= 0.5,
background otherwise (Matcher(0.5, 0.5)); per image batch_size_per_image RoIs are drawn, at most 25 % foreground
(torchvision draws 512; the Fast R-CNN paper 64: 128 RoIs from 2 images). Over the S drawn RoIs, with u_i their
class (0 for background):

    loss_classifier = 1/S sum_i CE(logits_i, u_i)
    loss_box_reg    = 1/S sum_{i: u_i > 0} smooth_l1(deltas_i[u_i] - target_i, beta = 1/9)

only the deltas of the true class are trained. An image without objects gives background RoIs only.

Inference: class probabilities softmax(logits), every class's box decoded from its own deltas and clipped to the
image; the background column is dropped; boxes with score <= score_thresh (0.05) or a side below 0.01 px go;
NMS at IoU 0.5 within each (image, class); the detections_per_img best per image stay. Every image goes through
one call of each step (the image is part of the NMS category); torchvision loops over images.
"""
import numpy as np

from .. import functional as F
from .. import nn
from ..backend import xp_of
from ..ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes, roi_align, roi_pool
from .anchors import BoxCoder
from .matching import BalancedPositiveNegativeSampler, Matcher, rank_within

ROI_OPS = ("align", "pool")


class TwoMLPHead(nn.Module):
    """RoI features [S, C, OH, OW] -> [S, representation_size]: flatten, fc6 + ReLU, fc7 + ReLU."""

    def __init__(self, in_channels, representation_size):
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x):
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))


class FastRCNNPredictor(nn.Module):
    """[S, in_channels] -> (class logits [S, num_classes], box deltas [S, 4 num_classes]); num_classes counts the
    background (class 0)."""

    def __init__(self, in_channels, num_classes):
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x):
        return self.cls_score(x), self.bbox_pred(x)


def flat_targets(targets, xp, dtype=np.float32):
    """Per-image targets as (boxes [G, 4], labels int64 [G], image_index int64 [G]) of the whole batch."""
    counts = [len(t["boxes"]) for t in targets]
    boxes = [xp.asarray(t["boxes"], dtype=dtype).reshape(-1, 4) for t in targets]
    labels = [xp.asarray(t["labels"], dtype=np.int64).reshape(-1) for t in targets]
    image = xp.asarray(np.repeat(np.arange(len(targets)), counts))
    return xp.concatenate(boxes), xp.concatenate(labels), image


class RoIHeads(nn.Module):
    """heads(features [B, C, GH, GW], proposals (Proposals), image_size (H, W), targets=None) -> (detections,
    losses). Class 0 is the background; object labels in targets and detections are 1..K (the model shifts them).

    Training mode: detections is None and losses {"loss_classifier", "loss_box_reg"}. Eval mode: detections is
    (boxes [D, 4], scores [D], labels int64 [D], image_index int64 [D]) arrays, grouped by image, and losses {}."""

    def __init__(self, box_head, box_predictor, spatial_scale, roi_op="align", output_size=7, sampling_ratio=2,
                 fg_iou_thresh=0.5, bg_iou_thresh=0.5, batch_size_per_image=512, positive_fraction=0.25,
                 bbox_reg_weights=(10.0, 10.0, 5.0, 5.0), score_thresh=0.05, nms_thresh=0.5, detections_per_img=100):
        super().__init__()
        if roi_op not in ROI_OPS:
            raise ValueError(f"RoIHeads: roi_op must be one of {', '.join(ROI_OPS)}, got {roi_op!r}")
        self.box_head, self.box_predictor = box_head, box_predictor
        self.roi_op, self.output_size, self.sampling_ratio = roi_op, output_size, sampling_ratio
        self.spatial_scale = float(spatial_scale)
        self.box_coder = BoxCoder(bbox_reg_weights)
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self.score_thresh, self.nms_thresh = float(score_thresh), float(nms_thresh)
        self.detections_per_img = int(detections_per_img)

    def pool(self, features, rois):
        """[S, C, OH, OW] features of rois [S, 5] (image index, x1, y1, x2, y2) by RoI align or RoI pooling."""
        if self.roi_op == "align":
            return roi_align(features, rois, self.output_size, self.spatial_scale, self.sampling_ratio)
        return roi_pool(features, rois, self.output_size, self.spatial_scale)

    def predict(self, features, boxes, image_index):
        """(class logits [S, K + 1], deltas [S, 4 (K + 1)]) Tensors for the RoIs boxes [S, 4] of image_index."""
        rois = xp_of(boxes).concatenate([image_index[:, None].astype(boxes.dtype), boxes], axis=1)
        return self.box_predictor(self.box_head(self.pool(features, rois.astype(features.dtype))))

    def forward(self, features, proposals, image_size, targets=None):
        if not self.training:
            return self.postprocess(*self.predict(features, proposals.boxes, proposals.image_index),
                                    proposals.boxes, proposals.image_index, image_size), {}
        if targets is None:
            raise ValueError("RoIHeads: training needs targets (a list of dicts with 'boxes' and 'labels')")
        boxes, image_index, labels, targets_ = self.select_training_samples(proposals, targets)
        class_logits, deltas = self.predict(features, boxes, image_index)
        return None, dict(zip(("loss_classifier", "loss_box_reg"), fastrcnn_loss(class_logits, deltas, labels,
                                                                                   targets_)))

    def select_training_samples(self, proposals, targets):
        """The drawn RoIs: (boxes [S, 4], image_index [S], class labels int64 [S] (0: background), regression
        targets [F, 4] of the F foreground RoIs, in their order)."""
        xp = xp_of(proposals.boxes)
        gt_boxes, gt_labels, gt_image = flat_targets(targets, xp, proposals.boxes.dtype)
        boxes = xp.concatenate([proposals.boxes, gt_boxes])
        image_index = xp.concatenate([proposals.image_index, gt_image])
        matches = self.matcher(xp.where(gt_image[:, None] == image_index[None, :], box_iou(gt_boxes, boxes).data,
                                        -1))  # [G, K]: IoU with the objects of the RoI's own image only
        labels = xp.where(matches >= 0, gt_labels[xp.maximum(matches, 0)] if len(gt_labels) else 0, 0)
        labels = xp.where(matches == Matcher.BETWEEN_THRESHOLDS, -1, labels)
        positive, negative = self.sampler(xp.where(labels > 0, 1, labels), image_index)
        keep = xp.flatnonzero(positive | negative)
        boxes, image_index, labels, matches = boxes[keep], image_index[keep], labels[keep], matches[keep]
        fg = labels > 0
        regression_targets = self.box_coder.encode_single(gt_boxes[matches[fg]], boxes[fg]).data
        return boxes, image_index, labels.astype(np.int64), regression_targets

    def postprocess(self, class_logits, deltas, boxes, image_index, image_size):
        """Detections (boxes, scores, labels 1..K, image_index) from the RoI head's outputs over boxes [P, 4]."""
        xp = xp_of(boxes)
        classes = class_logits.shape[1]
        scores = F.softmax(class_logits, axis=1).data[:, 1:]  # [P, K], the background dropped
        decoded = self.box_coder.decode_single(deltas, boxes).reshape(len(boxes), classes, 4)[:, 1:]
        decoded = clip_boxes_to_image(decoded, tuple(image_size)).data.reshape(-1, 4)
        scores = scores.reshape(-1)
        labels = xp.tile(xp.arange(1, classes, dtype=np.int64), len(boxes))
        image_index = xp.repeat(image_index, classes - 1)
        keep = xp.flatnonzero(scores > self.score_thresh)
        keep = keep[remove_small_boxes(decoded[keep], 1e-2).data]
        keep = keep[batched_nms(decoded[keep], scores[keep], image_index[keep] * classes + labels[keep],
                                self.nms_thresh).data]
        keep = keep[rank_within(image_index[keep], xp.arange(len(keep))) < self.detections_per_img]
        keep = keep[xp.argsort(image_index[keep], kind="stable")]
        return decoded[keep], scores[keep], labels[keep], image_index[keep]


def fastrcnn_loss(class_logits, deltas, labels, regression_targets):
    """(loss_classifier, loss_box_reg) of the drawn RoIs (see the module's docstring): class_logits Tensor
    [S, K + 1], deltas Tensor [S, 4 (K + 1)], labels int64 [S], regression_targets [F, 4] of the RoIs with
    labels > 0, in their order."""
    xp = xp_of(labels)
    fg = xp.flatnonzero(labels > 0)
    per_class = deltas.reshape(len(labels), -1, 4)[fg, labels[fg]]  # [F, 4], the deltas of the true class
    box_loss = F.smooth_l1_loss(per_class, regression_targets, beta=1 / 9, reduction="sum")
    return F.cross_entropy(class_logits, labels), box_loss / max(1, len(labels))
