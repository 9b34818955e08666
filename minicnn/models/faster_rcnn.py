"""Faster R-CNN (Ren, He, Girshick and Sun 2015, "Faster R-CNN: Towards Real-Time Object Detection with Region
Proposal Networks"), small: a compact convolutional trunk, a region proposal network and the Fast R-CNN heads, with
torchvision.models.detection.FasterRCNN's conventions.

    images [B, C, H, W] -> DetectionTrunk (stride 8) -> features [B, widths[-1], H/8, W/8]
        -> RegionProposalNetwork (minicnn/detection/rpn.py): anchors, objectness, proposals
        -> RoIHeads (minicnn/detection/roi_heads.py): RoI align (or pooling) 7x7, two FC layers, K + 1 classes
           and per-class boxes

Training mode, `model(images, targets)` with targets a list of B dicts {"boxes": [L, 4] (x1, y1, x2, y2) pixels,
"labels": int [L] in [0, num_classes)}, returns the four losses {"loss_objectness", "loss_rpn_box_reg",
"loss_classifier", "loss_box_reg"}, whose sum is trained (the paper's "approximate joint training": the RoI losses
do not flow back through the proposals' coordinates). Eval mode, `model(images)`, returns one dict per image
{"boxes": float32 [D, 4], "scores": [D], "labels": int64 [D]} of Tensors, labels in [0, num_classes).

Background. The RoI heads classify into num_classes + 1 classes, class 0 being the background: a label l of the
targets is class l + 1 inside, and a detection of class c is reported as label c - 1, so users see the data set's
labels and never the background.

The defaults are sized for minicnn.data.DigitDetection (96x96 one-channel canvases, digits of 21-56 px whose ink
boxes are about 13-36 px on a side, taller than wide): a trunk of widths (16, 32, 64) and stride 8 gives a 12x12
map, anchors of sizes (16, 24, 32, 40) and aspect ratios (h / w) (1, 1.5, 2.5) cover the digits, and the RoI heads
draw 64 RoIs per image (the Fast R-CNN paper's number) and use a 256-wide box head. The proposal counts are cut
to the canvas too: 600 before and 300 after NMS in training, 300 and 100 in testing (torchvision: 2000 and 2000,
1000 and 1000, for images of 800 px with up to a hundred objects). Images are used as they come (no resizing,
no mean subtraction: the trunk's batch norm standardises), unlike torchvision's GeneralizedRCNNTransform.

Input checks: images must be [B, in_channels, H, W] with H and W multiples of the stride; target boxes are clipped
to the image and must then be finite with x2 > x1 and y2 > y1 (a degenerate box is an error, as in torchvision);
labels must lie in [0, num_classes). An image without objects is valid: it trains the RPN's negatives and the
background class only.
"""
import numpy as np

from .. import nn
from ..autograd import Tensor, no_grad
from ..backend import is_gpu_array, xp_of
from ..detection.anchors import AnchorGenerator
from ..detection.roi_heads import FastRCNNPredictor, RoIHeads, TwoMLPHead
from ..detection.rpn import RegionProposalNetwork, RPNHead
from .backbones import DetectionTrunk
from .registry import register


class FasterRCNN(nn.Module):
    """Faster R-CNN on a DetectionTrunk; the keyword arguments are torchvision's FasterRCNN arguments of the same
    names (rpn_* for the proposal network, box_* for the RoI heads)."""

    def __init__(self, num_classes=10, in_channels=1, roi_op="align", widths=(16, 32, 64),
                 anchor_sizes=(16, 24, 32, 40), aspect_ratios=(1.0, 1.5, 2.5), representation_size=256,
                 rpn_pre_nms_top_n_train=600, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_train=300,
                 rpn_post_nms_top_n_test=100, rpn_nms_thresh=0.7, rpn_fg_iou_thresh=0.7, rpn_bg_iou_thresh=0.3,
                 rpn_batch_size_per_image=256, rpn_positive_fraction=0.5, rpn_score_thresh=0.0,
                 box_roi_output_size=7, box_sampling_ratio=2, box_score_thresh=0.05, box_nms_thresh=0.5,
                 box_detections_per_img=100, box_fg_iou_thresh=0.5, box_bg_iou_thresh=0.5,
                 box_batch_size_per_image=64, box_positive_fraction=0.25, bbox_reg_weights=(10.0, 10.0, 5.0, 5.0)):
        super().__init__()
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"FasterRCNN: num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes, self.in_channels = int(num_classes), int(in_channels)
        self.backbone = DetectionTrunk(in_channels, widths)
        channels, self.stride = self.backbone.out_channels, self.backbone.stride
        anchors = AnchorGenerator((tuple(anchor_sizes),), (tuple(aspect_ratios),))
        self.rpn = RegionProposalNetwork(
            anchors, RPNHead(channels, anchors.num_anchors_per_location()[0]), rpn_fg_iou_thresh, rpn_bg_iou_thresh,
            rpn_batch_size_per_image, rpn_positive_fraction,
            {"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
            {"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test}, rpn_nms_thresh,
            rpn_score_thresh)
        size = box_roi_output_size
        self.roi_heads = RoIHeads(
            TwoMLPHead(channels * size * size, representation_size),
            FastRCNNPredictor(representation_size, num_classes + 1), 1.0 / self.stride, roi_op, size,
            box_sampling_ratio, box_fg_iou_thresh, box_bg_iou_thresh, box_batch_size_per_image, box_positive_fraction,
            bbox_reg_weights, box_score_thresh, box_nms_thresh, box_detections_per_img)

    @property
    def roi_op(self):
        return self.roi_heads.roi_op

    @roi_op.setter
    def roi_op(self, value):
        """Switch between RoI align and RoI pooling (the weights stay: both give [S, C, 7, 7])."""
        if value not in ("align", "pool"):
            raise ValueError(f"FasterRCNN: roi_op must be 'align' or 'pool', got {value!r}")
        self.roi_heads.roi_op = value

    def forward(self, images, targets=None):
        images = self._check_images(images)
        size = tuple(images.shape[2:])
        if not self.training:
            with no_grad():
                features = self.backbone(images)
                proposals, _ = self.rpn(features, size)
                detections, _ = self.roi_heads(features, proposals, size)
            return self._per_image(detections, images.shape[0])
        targets = self._check_targets(targets, images)
        features = self.backbone(images)
        proposals, rpn_losses = self.rpn(features, size, targets)
        _, head_losses = self.roi_heads(features, proposals, size, targets)
        return {**rpn_losses, **head_losses}

    def _check_images(self, images):
        if not isinstance(images, Tensor):
            data = images if is_gpu_array(images) else np.asarray(images)
            if data.dtype.kind not in "fiu":
                raise TypeError(f"FasterRCNN: images must be real numbers, got dtype {data.dtype}")
            images = Tensor(data.astype(np.float32, copy=False) if data.dtype.kind != "f" else data)
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"FasterRCNN: expected images [B, {self.in_channels}, H, W], got shape {images.shape}")
        h, w = images.shape[2:]
        if h % self.stride or w % self.stride or h < self.stride or w < self.stride:
            raise ValueError(f"FasterRCNN: image height and width must be positive multiples of the stride "
                             f"{self.stride}, got {h}x{w}")
        return images

    def _check_targets(self, targets, images):
        """Targets as dicts of arrays on the images' device, boxes clipped to the image, labels shifted by one
        (class 0 is the background)."""
        name, xp = "FasterRCNN", xp_of(images.data)
        batch, (h, w) = images.shape[0], images.shape[2:]
        if not isinstance(targets, (list, tuple)) or len(targets) != batch:
            raise ValueError(f"{name}: training needs targets, a list of {batch} dicts with 'boxes' and 'labels' "
                             f"(one per image), got {type(targets).__name__}"
                             + (f" of length {len(targets)}" if isinstance(targets, (list, tuple)) else ""))
        checked = []
        for i, t in enumerate(targets):
            if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
                raise ValueError(f"{name}: targets[{i}] must be a dict with 'boxes' and 'labels'")
            boxes, labels = (v.data if isinstance(v, Tensor) else v for v in (t["boxes"], t["labels"]))
            boxes = xp.asarray(boxes, dtype=np.float32)
            labels = xp.asarray(labels)
            if boxes.size == 0:
                boxes = boxes.reshape(0, 4)
            if boxes.ndim != 2 or boxes.shape[1] != 4:
                raise ValueError(f"{name}: targets[{i}]['boxes'] must be [L, 4] (x1, y1, x2, y2), got shape "
                                 f"{tuple(boxes.shape)}")
            if labels.shape != (len(boxes),) or (labels.size and labels.dtype.kind not in "iu"):
                raise ValueError(f"{name}: targets[{i}]['labels'] must be {len(boxes)} integers (one per box), got "
                                 f"{labels.dtype} of shape {tuple(labels.shape)}")
            if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"{name}: targets[{i}]['labels'] must lie in [0, {self.num_classes}), got values "
                                 f"from {int(labels.min())} to {int(labels.max())}")
            if not bool(xp.isfinite(boxes).all()):
                raise ValueError(f"{name}: targets[{i}]['boxes'] hold NaN or infinite coordinates")
            clipped = xp.clip(boxes, 0, xp.asarray([w, h, w, h], dtype=np.float32))
            bad = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
            if bool(bad.any()):
                k = int(xp.argmax(bad))
                raise ValueError(f"{name}: targets[{i}]['boxes'][{k}] = {boxes[k].tolist()} has no area inside the "
                                 f"{h}x{w} image (x2 > x1 and y2 > y1 are needed after clipping)")
            checked.append({"boxes": clipped, "labels": labels.astype(np.int64) + 1})
        return checked

    def _per_image(self, detections, batch):
        """One dict of Tensors per image from the heads' detections, grouped by image; labels back to 0..K-1."""
        boxes, scores, labels, image_index = detections
        xp = xp_of(boxes)
        bounds = xp.searchsorted(image_index, xp.arange(batch + 1)).tolist()
        return [{"boxes": Tensor(boxes[a:b]), "scores": Tensor(scores[a:b]), "labels": Tensor(labels[a:b] - 1)}
                for a, b in zip(bounds[:-1], bounds[1:])]


@register("fasterrcnn", "faster_rcnn", task="detection")
def fasterrcnn(num_classes=10, in_channels=1, roi_op="align", **kw):
    """Faster R-CNN, small, for 96x96 canvases (see FasterRCNN for the keyword arguments)."""
    return FasterRCNN(num_classes, in_channels, roi_op, **kw)
