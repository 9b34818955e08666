"""Non-maximum suppression, with torchvision.ops' names, signatures and semantics: nms and batched_nms.

Greedy NMS keeps the best-scoring box, drops every box whose IoU with it is strictly greater than iou_threshold
(a box exactly at the threshold stays), and repeats down the list of boxes by decreasing score. The result is
the int64 indices of the boxes kept, by decreasing score. batched_nms does the same per class: boxes with
different idxs never suppress each other.

This file checks the inputs and sorts the boxes; the kernels do the rest, with the same names on every backend
(kernels_for): reference/boxes.py holds the readable greedy loop, and the suppression bitmask the fast kernels
compute in parallel (Numba over rows, CUDA one thread per 64-bit word) before a greedy scan over it (Numba; on
the GPU one block of threads, so the mask never leaves the device).

Ties in score. Boxes are sorted with a stable sort, so of two boxes with one score the one with the lower index
comes first (and is the one kept when they overlap). torchvision's CPU kernel sorts with torch.sort(descending),
which is not stable on large inputs, and its CUDA kernel with an unstable sort too: its documentation leaves the
order of tied boxes unspecified. Where its order is that of the indices (small inputs, or no ties), the results
are the same.

batched_nms runs NMS over the boxes grouped by class, in which a box is compared with the boxes of its own class
only. torchvision does that too above 1000 boxes on the CPU (25,000 on the GPU); below, it shifts the boxes by
class * (max coordinate + 1) into disjoint regions and runs one plain NMS, and the two can differ: the offset's
rounding can move the IoU of a pair across the threshold, and with a negative iou_threshold a box suppresses even
the disjoint boxes of other classes there (IoU 0 > threshold), so torchvision keeps one box in all, where minicnn
keeps the best box of each class (boxes of different classes never suppress each other, at any threshold).

Memory: the fast kernels hold a bitmask of N x ceil(N / 64) 64-bit words for N boxes (N^2 / 8 bytes: 5 GB at
200,000 boxes), as torchvision's CUDA NMS does. batched_nms makes one at a time, per chunk of whole classes of
about CHUNK boxes, so its memory follows the largest class rather than the number of boxes (200,000 boxes in 80
classes: a few tens of megabytes).
"""
import numbers

import numpy as np

from ..autograd import Tensor
from ..backend import xp_of
from ..functional._utils import kernels_for
from .boxes import as_boxes, check_valid

CHUNK = 1 << 13  # batched_nms: classes whose first box falls in one span of CHUNK sorted boxes go to one kernel call


def _checked(name, boxes, scores, iou_threshold):
    """boxes (N, 4) float32/float64 and scores (N,) floating arrays, checked; the threshold as a float."""
    boxes = as_boxes(name, boxes, ndim=2).data
    if boxes.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name}: expected float32 or float64 boxes, got {boxes.dtype} (convert with .float())")
    check_valid(name, Tensor(boxes))
    scores = scores.data if isinstance(scores, Tensor) else xp_of(boxes).asarray(scores)
    if scores.dtype.kind != "f":
        raise TypeError(f"{name}: expected floating-point scores, got {scores.dtype}")
    if scores.shape != (len(boxes),):
        raise ValueError(f"{name}: expected scores of shape ({len(boxes)},), one per box, got shape "
                         f"{tuple(scores.shape)}")
    if xp_of(scores) is not xp_of(boxes):
        raise ValueError(f"{name}: boxes and scores must be on one device")
    if bool(xp_of(scores).isnan(scores).any()):
        raise ValueError(f"{name}: scores contain NaN (at index {int(xp_of(scores).isnan(scores).argmax())})")
    bad = isinstance(iou_threshold, (bool, np.bool_)) or not isinstance(iou_threshold, numbers.Real)
    if bad or iou_threshold != iou_threshold:
        raise TypeError(f"{name}: iou_threshold must be a real number, got {iou_threshold!r}")
    return boxes, scores, float(iou_threshold)


def _greedy(boxes, scores, labels, iou_threshold):
    """Indices kept by NMS among the boxes of each label (labels=None: one label), by decreasing score (ties by
    increasing index). The kernels take the boxes grouped by label, each group by decreasing score."""
    xp = xp_of(boxes)
    if len(boxes) == 0:
        return Tensor(xp.zeros(0, dtype=np.int64))
    by_score = xp.argsort(-scores, kind="stable").astype(np.int64, copy=False)
    if labels is None:
        order, grouped = by_score, xp.zeros(len(boxes), dtype=np.int64)
    else:
        order = by_score[xp.argsort(labels[by_score], kind="stable")]
        grouped = xp.ascontiguousarray(labels[order])
    boxes, kernels = xp.ascontiguousarray(boxes[order]), kernels_for(boxes)
    if labels is None:
        return Tensor(order[kernels.nms_keep(boxes, grouped, iou_threshold)])
    kept = order[xp.concatenate([lo + kernels.nms_keep(boxes[lo:hi], grouped[lo:hi], iou_threshold)
                                 for lo, hi in _chunks(grouped)])]
    is_kept = xp.zeros(len(boxes), dtype=bool)
    is_kept[kept] = True
    return Tensor(by_score[is_kept[by_score]])


def _chunks(labels):
    """[lo, hi) spans of the sorted boxes that hold whole classes: the classes whose first box lies in one span of
    CHUNK boxes go together, so that each bitmask has about CHUNK rows, or the rows of one class larger than that."""
    xp = xp_of(labels)
    first = xp.flatnonzero(xp.concatenate([xp.ones(1, dtype=bool), labels[1:] != labels[:-1]]))  # of each class
    cuts = first[xp.concatenate([xp.ones(1, dtype=bool), first[1:] // CHUNK != first[:-1] // CHUNK])].tolist()
    return list(zip(cuts, cuts[1:] + [len(labels)]))


def nms(boxes, scores, iou_threshold):
    """Greedy non-maximum suppression of boxes (N, 4) (x1, y1, x2, y2) with scores (N,): the int64 indices of the
    boxes kept, by decreasing score. A box is dropped when its IoU with a box kept before it is > iou_threshold.

    >>> nms([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 2.0, 1.9], [3.0, 3.0, 4.0, 4.0]], [0.9, 0.8, 0.7], 0.5).tolist()
    [0, 2]
    """
    boxes, scores, iou_threshold = _checked("nms", boxes, scores, iou_threshold)
    return _greedy(boxes, scores, None, iou_threshold)


def batched_nms(boxes, scores, idxs, iou_threshold):
    """NMS per category: boxes (N, 4), scores (N,), idxs (N,) integer categories; boxes of different categories
    never suppress each other, whatever the threshold (torchvision's small inputs differ for a negative one: see
    the module's docstring). The int64 indices of the boxes kept, by decreasing score."""
    boxes, scores, iou_threshold = _checked("batched_nms", boxes, scores, iou_threshold)
    xp = xp_of(boxes)
    idxs = idxs.data if isinstance(idxs, Tensor) else xp.asarray(idxs)
    if xp_of(idxs) is not xp:
        raise ValueError("batched_nms: boxes and idxs must be on one device")
    if idxs.dtype.kind not in "iub":
        raise TypeError(f"batched_nms: expected integer idxs (categories), got {idxs.dtype}")
    if idxs.shape != (len(boxes),):
        raise ValueError(f"batched_nms: expected idxs of shape ({len(boxes)},), one per box, got shape "
                         f"{tuple(idxs.shape)}")
    return _greedy(boxes, scores, idxs.astype(np.int64), iou_threshold)
