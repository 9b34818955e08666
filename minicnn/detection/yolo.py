"""YOLO v1's output grid, loss and decoding (Redmon, Divvala, Girshick and Farhadi 2016, "You Only Look Once:
Unified, Real-Time Object Detection", CVPR, section 2).

The image is cut into an S x S grid (S_h x S_w for a rectangular image). Each cell predicts B boxes and one set
of C class probabilities, so the head's output is a tensor [N, S_h, S_w, 5 B + C]; along its last axis box b
is (x, y, sqrt w, sqrt h, confidence) at 5 b .. 5 b + 4, and the class scores follow at 5 B .. 5 B + C:

    x, y     the box centre relative to the bounds of its cell, in [0, 1]: centre = ((col + x) / S_w, (row + y) / S_h)
             as a fraction of the image
    sqrt w   the square root of the box's width (height) as a fraction of the image's: the square root makes an
    sqrt h   error on a small box cost more than the same error on a large one
    conf     Pr(Object) * IoU(predicted box, object)
    p(c)     Pr(Class c | Object), one set per cell

Activations ("activation"): "linear" is the paper's (a linear last layer: every value regressed as it is). "sigmoid"
(the default) squashes x, y and the confidence into [0, 1] with a sigmoid and leaves the class scores linear, as the
paper does; "softmax" also turns the class scores into probabilities with a softmax. sqrt w and sqrt h are linear in
all three, and the loss terms are the paper's in all three. On DigitDetection "sigmoid" learns fastest: x, y and the
confidence start inside [0, 1] and cannot leave it, and the class scores keep the plain gradient 2 (p - p^) of a
linear regression; under a softmax that gradient is scaled by the softmax's slope p (1 - p), 0.09 while every class
is near 1/C = 0.1: the classes come slowly.

The loss (the paper's equation 3, sum-squared error), for each image:

    L = lambda_coord sum_ij 1obj_ij [(x_ij - x^_i)^2 + (y_ij - y^_i)^2                                (loss_coord)
                                     + (sqrt w_ij - sqrt w^_i)^2 + (sqrt h_ij - sqrt h^_i)^2]
      + sum_ij 1obj_ij (conf_ij - IoU_ij)^2                                                      (loss_confidence)
      + lambda_noobj sum_ij (1 - 1obj_ij) conf_ij^2                                              (loss_noobj)
      + sum_i 1obj_i sum_c (p_i(c) - p^_i(c))^2                                                  (loss_class)

with i over cells, j over a cell's B predictors, hats the targets, lambda_coord = 5, lambda_noobj = 0.5.
1obj_i: an object's centre falls in cell i. 1obj_ij: predictor j is "responsible" for it, the one of the cell's B
boxes whose IoU with the object is highest, computed from the current predictions without gradient through the
choice (ties go to the lowest j); its confidence target is that IoU, detached. Every other predictor of every
cell is pushed to confidence 0 by the no-object term. The four terms are summed over the grid and averaged over
the images of the batch (the loss per image, whatever the batch size).

Targets. Two objects whose centres fall in one cell: the cell keeps the larger one (by box area; the later in the
list on a tie), as in the paper each cell predicts one class, and the other is not trained on (`encode_targets`
counts them in `dropped`). An image without objects trains the no-object terms only. Boxes must lie inside the
image with a positive width and height: a box of width 0 has no centre cell to speak of and IoU 0 with every
prediction, so `check_targets` refuses it (and boxes outside the image, NaN, labels outside [0, C)) with a
ValueError naming the image and the box; minicnn.ops.clip_boxes_to_image and remove_small_boxes repair such
boxes.

Decoding: the class-specific score of box j of cell i for class c is conf_ij * p_i(c) (the paper's equation 2);
scores above a threshold are kept, boxes of one image and one class go through non-maximum suppression
(minicnn.ops.batched_nms), and the best `detections_per_image` of each image are returned in pixels.
"""
from collections import namedtuple

import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..backend import xp_of
from ..ops import batched_nms
from ._utils import host

ACTIVATIONS = ("sigmoid", "linear", "softmax")
LOSS_NAMES = ("loss_coord", "loss_confidence", "loss_noobj", "loss_class")

YOLOTargets = namedtuple("YOLOTargets", "obj box corners onehot dropped")
YOLOTargets.__doc__ = """The targets of a batch on the grid, NumPy arrays: obj bool [N, S_h, S_w] (an object's centre
falls in the cell), box [N, S_h, S_w, 4] (x, y in the cell, sqrt w, sqrt h), corners [N, S_h, S_w, 4] (the object's
x1, y1, x2, y2 as fractions of the image), onehot [N, S_h, S_w, C] (its class), dropped: objects left out because
their cell holds a larger one. Cells without an object hold zeros."""


def check_targets(name, targets, num_images, num_classes, image_size):
    """The boxes of a batch's targets (a list of N dicts with "boxes" [L, 4] x1 y1 x2 y2 in pixels and "labels"
    [L] int, arrays or Tensors) as (image index int64 [M], boxes float64 [M, 4], labels int64 [M]) over the whole
    batch, M the total number of objects; a ValueError or TypeError starting with `name` for anything else."""
    if not isinstance(targets, (list, tuple)) or len(targets) != num_images:
        got = f"{len(targets)} targets" if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"{name}: expected targets as a list of {num_images} dicts (one per image), got {got}")
    boxes, labels = [], []
    for i, t in enumerate(targets):  # one shape check per image; the values are checked below, all at once
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise ValueError(f"{name}: targets[{i}] must be a dict with 'boxes' and 'labels', got {type(t).__name__}")
        b, c = host(t["boxes"]), host(t["labels"])
        b = b.reshape(0, 4) if b.size == 0 else b
        if b.ndim != 2 or b.shape[1] != 4 or b.dtype.kind not in "fiu":
            raise ValueError(f"{name}: targets[{i}]['boxes'] must be real boxes [L, 4], got {b.dtype} {b.shape}")
        if c.shape != (len(b),) or (c.size and c.dtype.kind not in "iu"):
            raise ValueError(f"{name}: targets[{i}]['labels'] must be integers [{len(b)}] (one per box), got "
                             f"{c.dtype} {c.shape}")
        boxes.append(b.astype(np.float64))
        labels.append(c.astype(np.int64))
    image = np.repeat(np.arange(num_images), [len(b) for b in boxes])
    boxes, labels = np.concatenate(boxes), np.concatenate(labels)
    height, width = image_size
    inside = (boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= width) & (boxes[:, 3] <= height)
    problems = ((~np.isfinite(boxes).all(axis=1), "hold NaN or infinite coordinates"),
                ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]), "need x2 > x1 and y2 > y1"),
                (~inside, f"must lie inside the image [0, {width}] x [0, {height}]"),
                ((labels < 0) | (labels >= num_classes), f"need labels in [0, {num_classes})"))
    for bad, what in problems:
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            j = k - int(np.searchsorted(image, image[k]))
            raise ValueError(f"{name}: boxes {what}; targets[{image[k]}] box {j} is {boxes[k].tolist()} with label "
                             f"{labels[k]}")
    return image, boxes, labels


def encode_targets(image, boxes, labels, num_images, grid, num_classes, image_size):
    """Checked objects (image index [M], boxes [M, 4] in pixels, labels [M]) -> YOLOTargets on a grid
    (S_h, S_w): the object whose centre (cx, cy) falls in cell (row, col) = (floor(cy S_h / H), floor(cx S_w / W))
    gives the cell x = cx S_w / W - col, y = cy S_h / H - row, sqrt(w / W), sqrt(h / H). Vectorised: a scatter
    by flat cell index; the larger object wins a shared cell."""
    (rows, cols), (height, width) = grid, image_size
    scale = np.array([width, height, width, height], np.float64)
    corners = boxes / scale
    cx, cy = (corners[:, 0] + corners[:, 2]) / 2, (corners[:, 1] + corners[:, 3]) / 2
    w, h = corners[:, 2] - corners[:, 0], corners[:, 3] - corners[:, 1]
    col = np.minimum(np.floor(cx * cols), cols - 1).astype(np.int64)
    row = np.minimum(np.floor(cy * rows), rows - 1).astype(np.int64)
    cell = (image * rows + row) * cols + col
    order = np.lexsort((w * h, cell))  # by cell, then by area: the last of each cell's run is its largest object
    keep = order[np.append(cell[order][1:] != cell[order][:-1], True)] if len(cell) else order
    size = num_images * rows * cols
    obj, box, where = np.zeros(size, bool), np.zeros((size, 4)), np.zeros((size, 4))
    onehot = np.zeros((size, num_classes))
    at = cell[keep]
    obj[at] = True
    box[at] = np.stack([cx * cols - col, cy * rows - row, np.sqrt(w), np.sqrt(h)], axis=1)[keep]
    where[at] = corners[keep]
    onehot[at, labels[keep]] = 1
    shape = (num_images, rows, cols)
    return YOLOTargets(obj.reshape(shape), box.reshape(shape + (4,)), where.reshape(shape + (4,)),
                       onehot.reshape(shape + (num_classes,)), len(cell) - len(keep))


def split_output(output, boxes_per_cell, num_classes, activation="sigmoid"):
    """The head's output Tensor [N, S_h, S_w, 5 B + C] -> Tensors (xy [N, S_h, S_w, B, 2], sqrt_wh [.., B, 2],
    conf [.., B], class scores [N, S_h, S_w, C]) after the activations (see the module docstring)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"yolo: activation must be one of {ACTIVATIONS}, got {activation!r}")
    n, rows, cols, depth = output.shape
    if depth != 5 * boxes_per_cell + num_classes:
        raise ValueError(f"yolo: expected an output [N, S_h, S_w, 5 B + C = {5 * boxes_per_cell + num_classes}], "
                         f"got shape {tuple(output.shape)}")
    boxes = output[..., :5 * boxes_per_cell].reshape(n, rows, cols, boxes_per_cell, 5)
    xy, sqrt_wh, conf, scores = boxes[..., 0:2], boxes[..., 2:4], boxes[..., 4], output[..., 5 * boxes_per_cell:]
    if activation == "linear":
        return xy, sqrt_wh, conf, scores
    return F.sigmoid(xy), sqrt_wh, F.sigmoid(conf), F.softmax(scores, axis=-1) if activation == "softmax" else scores


def box_corners(xy, sqrt_wh):
    """Arrays xy, sqrt_wh [N, S_h, S_w, B, 2] -> boxes x1 y1 x2 y2 [N, S_h, S_w, B, 4] as fractions of the image:
    centre ((col + x) / S_w, (row + y) / S_h), width sqrt_w^2, height sqrt_h^2."""
    xp = xp_of(xy)
    rows, cols = xy.shape[1:3]
    offset = xp.stack(xp.meshgrid(xp.arange(cols), xp.arange(rows)), axis=-1).astype(xy.dtype)  # (col, row)
    centre = (offset[None, :, :, None] + xy) / xp.asarray([cols, rows], xy.dtype)
    half = sqrt_wh * sqrt_wh / 2
    return xp.concatenate([centre - half, centre + half], axis=-1)


def paired_iou(a, b):
    """IoU of boxes a[..., 4] and b[..., 4] pair by pair (broadcast), 0 where the union is 0."""
    xp = xp_of(a)
    wh = xp.maximum(xp.minimum(a[..., 2:], b[..., 2:]) - xp.maximum(a[..., :2], b[..., :2]), 0)
    inter = wh[..., 0] * wh[..., 1]
    union = xp.prod(a[..., 2:] - a[..., :2], axis=-1) + xp.prod(b[..., 2:] - b[..., :2], axis=-1) - inter
    return xp.where(union > 0, inter / xp.where(union > 0, union, 1), 0)


def assign_predictors(output, targets, boxes_per_cell, num_classes, activation="sigmoid"):
    """The responsible predictor of each cell holding an object, from the current predictions (no gradient):
    (responsible bool [N, S_h, S_w, B], iou [N, S_h, S_w, B]), the IoU of each predicted box with its cell's
    object (0 in cells without one); the responsible one has the highest IoU, the first on a tie."""
    with no_grad():
        xy, sqrt_wh, _, _ = split_output(Tensor(output.data), boxes_per_cell, num_classes, activation)
    xp = xp_of(xy.data)
    corners = xp.asarray(targets.corners, xy.dtype)[..., None, :]
    iou = paired_iou(box_corners(xy.data, sqrt_wh.data), corners) * xp.asarray(targets.obj)[..., None]
    best = iou.argmax(axis=-1)
    responsible = (xp.arange(boxes_per_cell) == best[..., None]) & xp.asarray(targets.obj)[..., None]
    return responsible, iou


def yolo_v1_loss(output, targets, responsible, iou, boxes_per_cell, num_classes, activation="sigmoid",
                 lambda_coord=5.0, lambda_noobj=0.5):
    """The four terms of the module docstring's loss as a dict of scalar Tensors named LOSS_NAMES, each summed
    over the grid and averaged over the N images, for the head output Tensor [N, S_h, S_w, 5 B + C], YOLOTargets
    and the assignment of `assign_predictors` (held fixed: it and the confidence targets carry no gradient)."""
    xy, sqrt_wh, conf, probs = split_output(output, boxes_per_cell, num_classes, activation)
    xp, dtype, n = xp_of(output.data), output.dtype, output.shape[0]
    resp = xp.asarray(responsible, dtype)
    box = xp.asarray(targets.box, dtype)[..., None, :]
    d_xy, d_wh = xy - box[..., :2], sqrt_wh - box[..., 2:]
    d_conf, d_class = conf - xp.asarray(iou, dtype), probs - xp.asarray(targets.onehot, dtype)
    return {"loss_coord": (((d_xy * d_xy).sum(axis=-1) + (d_wh * d_wh).sum(axis=-1)) * resp).sum() *
            (lambda_coord / n),
            "loss_confidence": (d_conf * d_conf * resp).sum() / n,
            "loss_noobj": (conf * conf * (1 - resp)).sum() * (lambda_noobj / n),
            "loss_class": ((d_class * d_class).sum(axis=-1) * xp.asarray(targets.obj, dtype)).sum() / n}


def decode(output, image_size, boxes_per_cell, num_classes, activation="sigmoid", score_threshold=0.01,
           iou_threshold=0.5, detections_per_image=100):
    """Detections from the head output [N, S_h, S_w, 5 B + C]: a list of N dicts {"boxes": float [D, 4] in pixels
    (clipped to the image), "scores": [D], "labels": int64 [D]} by decreasing score. score = conf * p(c) for every
    box and class; those above score_threshold with a positive area go through NMS per image and class
    (batched_nms, iou_threshold), and each image keeps its best detections_per_image. Vectorised over the batch:
    one NMS call for all images."""
    with no_grad():
        xy, sqrt_wh, conf, probs = (t.data for t in split_output(Tensor(output.data), boxes_per_cell, num_classes,
                                                                  activation))
    xp, n = xp_of(xy), output.shape[0]
    conf, probs = xp.clip(conf, 0, 1), xp.clip(probs, 0, 1)  # linear outputs may leave [0, 1]
    height, width = image_size
    scale = xp.asarray([width, height, width, height], xy.dtype)
    corners = xp.minimum(xp.maximum(box_corners(xy, sqrt_wh) * scale, 0), scale).reshape(-1, 4)
    scores = (conf[..., None] * probs[..., None, :]).reshape(-1)  # [N * S_h * S_w * B * C], class fastest
    positive = (corners[:, 2] > corners[:, 0]) & (corners[:, 3] > corners[:, 1])
    index = xp.flatnonzero((scores > score_threshold) & xp.repeat(positive, num_classes))
    per_image = scores.size // max(n, 1)
    image, label = index // per_image, index % num_classes
    boxes, scores = corners[index // num_classes], scores[index]
    keep = batched_nms(boxes, scores, image * num_classes + label, iou_threshold).data
    keep = keep[xp.lexsort(xp.stack([-scores[keep], image[keep]]))]  # by image, then by decreasing score
    first = xp.searchsorted(image[keep], image[keep])
    keep = keep[xp.arange(len(keep)) - first < detections_per_image]
    ends = np.cumsum(host(xp.bincount(image[keep], minlength=n)))[:-1].tolist()
    return [{"boxes": Tensor(b), "scores": Tensor(s), "labels": Tensor(c.astype(np.int64))}
            for b, s, c in zip(xp.split(boxes[keep], ends), xp.split(scores[keep], ends),
                               xp.split(label[keep], ends))]
