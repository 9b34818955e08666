"""The region proposal network of Faster R-CNN (Ren et al. 2015, "Faster R-CNN: Towards Real-Time Object Detection
with Region Proposal Networks", section 3.1), with torchvision.models.detection.rpn's structure and conventions.

A small head slides over the trunk's feature map [B, C, GH, GW]: a 3x3 convolution and ReLU, then two 1x1
convolutions giving, for each of the A anchors of each cell, one objectness logit and four box deltas
(dx, dy, dw, dh) relative to that anchor (BoxCoder with weights (1, 1, 1, 1)). Anchors come from AnchorGenerator,
ordered cell by cell, anchor within cell, the order the head's outputs are flattened in (`flatten_predictions`).

Training (section 3.1.2): an anchor is positive when its IoU with some object is >= 0.7 or it is an object's
anchor of highest IoU, negative when its highest IoU is < 0.3, ignored otherwise (Matcher); per image 256 anchors
are drawn, at most half positive (BalancedPositiveNegativeSampler). With S the drawn anchors and P the positives
among them,

    loss_objectness  = 1/|S| sum_{i in S} BCE(logit_i, [i in P])
    loss_rpn_box_reg = 1/|S| sum_{i in P} smooth_l1(delta_i - target_i, beta = 1/9)

(the paper's normalisations N_cls and N_reg with lambda = 10 become torchvision's single 1/|S|). An image without
objects has negatives only: its box term is empty and its objectness term pushes every drawn anchor down.

Proposals: per image the pre_nms_top_n anchors of highest objectness are decoded with their deltas (the deltas are
detached: the RoI heads' losses do not flow back through the proposals, as in torchvision), clipped to the image,
freed of boxes narrower or lower than min_size and of scores sigmoid(logit) below score_thresh, thinned by NMS at
IoU 0.7 and cut to the post_nms_top_n best. All images go through one batched_nms call (the image index is the
category) and one sort, never a loop over images; torchvision loops over them.
"""
from collections import namedtuple

import numpy as np

from .. import functional as F
from .. import init, nn
from ..backend import xp_of
from ..ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes
from .anchors import BoxCoder
from .matching import BalancedPositiveNegativeSampler, Matcher, rank_within

Proposals = namedtuple("Proposals", "boxes image_index scores")
Proposals.__doc__ = """Region proposals of a batch, all images in one array (the rows of roi_align's [K, 5] boxes):
boxes [K, 4] (x1, y1, x2, y2), image_index int64 [K], scores [K] (the objectness sigmoid(logit)), grouped by image,
each image's by decreasing score. Arrays (NumPy or CuPy), not Tensors: no gradient flows through them."""


class RPNHead(nn.Module):
    """conv_depth 3x3 convolutions with ReLU, then cls_logits (1x1, A channels) and bbox_pred (1x1, 4 A channels,
    anchor-major: channel 4 a + j is coordinate j of anchor a). Weights N(0, 0.01^2), biases 0, as torchvision."""

    def __init__(self, in_channels, num_anchors, conv_depth=1):
        super().__init__()
        layers = []
        for _ in range(conv_depth):
            layers += [nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.ReLU()]
        self.conv = nn.Sequential(*layers)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, 1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                init.normal_(layer.weight, std=0.01)
                init.zeros_(layer.bias)

    def forward(self, x):
        t = self.conv(x)
        return self.cls_logits(t), self.bbox_pred(t)


def flatten_predictions(objectness, deltas):
    """Head outputs [B, A, GH, GW] and [B, 4 A, GH, GW] as [B, GH GW A] and [B, GH GW A, 4], row (y GW + x) A + a
    for anchor a of cell (y, x): the anchors' order."""
    b, a, gh, gw = objectness.shape
    objectness = objectness.transpose(0, 2, 3, 1).reshape(b, gh * gw * a)
    deltas = deltas.reshape(b, a, 4, gh, gw).transpose(0, 3, 4, 1, 2).reshape(b, gh * gw * a, 4)
    return objectness, deltas


def pad_boxes(boxes, xp, dtype=np.float32):
    """Per-image boxes (a list of [L_i, 4] arrays) as one [B, G, 4] array, G = max L_i, padded with zeros, and
    the mask [B, G] of real boxes."""
    counts = np.array([len(b) for b in boxes], dtype=np.int64)
    g = int(counts.max()) if len(counts) else 0
    padded = xp.zeros((len(boxes), g, 4), dtype=dtype)
    valid = xp.zeros((len(boxes), g), dtype=bool)
    if counts.sum():
        image = xp.asarray(np.repeat(np.arange(len(boxes)), counts))
        slot = xp.asarray(np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        padded[image, slot] = xp.concatenate([xp.asarray(b, dtype=dtype).reshape(-1, 4) for b in boxes])
        valid[image, slot] = True
    return padded, valid


class RegionProposalNetwork(nn.Module):
    """rpn(features [B, C, GH, GW], image_size (H, W), targets=None) -> (Proposals, losses).

    targets (training): a list of B dicts whose "boxes" are [L_i, 4] arrays (checked by the model). losses is
    {"loss_objectness", "loss_rpn_box_reg"} in training mode, {} in eval mode. pre_nms_top_n and post_nms_top_n are
    dicts {"training": n, "testing": n} as in torchvision."""

    def __init__(self, anchor_generator, head, fg_iou_thresh=0.7, bg_iou_thresh=0.3, batch_size_per_image=256,
                 positive_fraction=0.5, pre_nms_top_n=None, post_nms_top_n=None, nms_thresh=0.7, score_thresh=0.0,
                 min_size=1e-3):
        super().__init__()
        self.anchor_generator, self.head = anchor_generator, head
        self.box_coder = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.sampler = BalancedPositiveNegativeSampler(batch_size_per_image, positive_fraction)
        self._pre_nms_top_n = pre_nms_top_n or {"training": 2000, "testing": 1000}
        self._post_nms_top_n = post_nms_top_n or {"training": 2000, "testing": 1000}
        self.nms_thresh, self.score_thresh, self.min_size = float(nms_thresh), float(score_thresh), float(min_size)
        self._anchor_cache = {}

    def pre_nms_top_n(self):
        return self._pre_nms_top_n["training" if self.training else "testing"]

    def post_nms_top_n(self):
        return self._post_nms_top_n["training" if self.training else "testing"]

    def anchors(self, image_size, grid, xp):
        """The anchors [GH GW A, 4] of an image of image_size over a grid (GH, GW), made once per shape."""
        key = (tuple(image_size), tuple(grid), xp.__name__)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = xp.asarray(self.anchor_generator(tuple(image_size), [tuple(grid)]).data)
        return self._anchor_cache[key]

    def forward(self, features, image_size, targets=None):
        xp = xp_of(features.data)
        logits, deltas = flatten_predictions(*self.head(features))
        anchors = self.anchors(image_size, features.shape[2:], xp)
        proposals = self.filter_proposals(logits.data, deltas.data, anchors, image_size)
        if not self.training:
            return proposals, {}
        if targets is None:
            raise ValueError("RegionProposalNetwork: training needs targets (a list of dicts with 'boxes')")
        gt_boxes, valid = pad_boxes([t["boxes"] for t in targets], xp, anchors.dtype)
        labels, matches = self.assign_targets_to_anchors(anchors, gt_boxes, valid)
        loss_objectness, loss_box = self.compute_loss(logits, deltas, labels, matches, gt_boxes, anchors)
        return proposals, {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}

    def assign_targets_to_anchors(self, anchors, gt_boxes, valid):
        """(labels [B, N]: 1 positive, 0 negative, -1 ignored; matches [B, N]: the matched object, or < 0) of
        anchors [N, 4] against the padded objects gt_boxes [B, G, 4] with mask valid [B, G]."""
        xp = xp_of(anchors)
        iou = box_iou(gt_boxes, anchors).data  # [B, G, N]
        iou = xp.where(valid[:, :, None], iou, -1)
        matches = self.matcher(iou)
        labels = xp.where(matches >= 0, 1, xp.where(matches == Matcher.BELOW_LOW_THRESHOLD, 0, -1))
        return labels, matches

    def compute_loss(self, logits, deltas, labels, matches, gt_boxes, anchors):
        """The two RPN losses (see the module's docstring) from logits Tensor [B, N], deltas Tensor [B, N, 4]."""
        xp = xp_of(anchors)
        positive, negative = self.sampler(labels)
        pos_image, pos_anchor = xp.nonzero(positive)
        sampled = xp.flatnonzero((positive | negative).reshape(-1))
        objectness_loss = F.binary_cross_entropy_with_logits(logits.reshape(-1)[sampled],
                                                             labels.reshape(-1)[sampled].astype(logits.dtype))
        targets = self.box_coder.encode_single(gt_boxes[pos_image, matches[pos_image, pos_anchor]],
                                               anchors[pos_anchor]).data
        box_loss = F.smooth_l1_loss(deltas[pos_image, pos_anchor], targets, beta=1 / 9, reduction="sum")
        return objectness_loss, box_loss / max(1, len(sampled))

    def filter_proposals(self, logits, deltas, anchors, image_size):
        """Proposals from the objectness logits [B, N] and deltas [B, N, 4] (arrays) over anchors [N, 4]."""
        xp = xp_of(logits)
        b, n = logits.shape
        k = min(self.pre_nms_top_n(), n)
        top = xp.argsort(-logits, axis=1, kind="stable")[:, :k]  # [B, k], best first
        rows = xp.arange(b)[:, None]
        boxes = self.box_coder.decode_single(deltas[rows, top].reshape(-1, 4), anchors[top].reshape(-1, 4))
        boxes = clip_boxes_to_image(boxes, tuple(image_size)).data
        scores = F.sigmoid(logits[rows, top].reshape(-1)).data
        image_index = xp.repeat(xp.arange(b), k)
        keep = remove_small_boxes(boxes, self.min_size).data
        keep = keep[scores[keep] >= self.score_thresh]
        keep = keep[batched_nms(boxes[keep], scores[keep], image_index[keep], self.nms_thresh).data]
        keep = keep[rank_within(image_index[keep], xp.arange(len(keep))) < self.post_nms_top_n()]  # best per image
        keep = keep[xp.argsort(image_index[keep], kind="stable")]  # grouped by image, each by decreasing score
        return Proposals(boxes[keep], image_index[keep], scores[keep])
