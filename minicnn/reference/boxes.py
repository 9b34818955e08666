"""Non-maximum suppression, written to be read: the greedy algorithm, and the suppression bitmask the fast kernels
compute instead.

A detector proposes many overlapping boxes for one object. Greedy NMS keeps the best and drops its duplicates:

    sort the boxes by decreasing score
    for each box, best first:
        if no box kept so far overlaps it with IoU > iou_threshold, keep it

IoU is |A ∩ B| / (|A| + |B| - |A ∩ B|) (minicnn/ops/boxes.py). The comparison is strict: a box whose IoU with a
kept box equals the threshold is kept. Boxes with different labels never suppress each other (batched_nms, NMS
per class); plain nms gives every box the label 0. The functions here take the boxes (N, 4), their labels (N,)
int64 and the threshold, and return the positions kept, in increasing order. The boxes come grouped by label
(the boxes of one label contiguous), each group by decreasing score: the fast kernels end a box's row of
comparisons where its group ends, so that NMS over C classes costs about 1/C of one NMS over all the boxes.

The fast kernels split the work in two. First every pair (i, j), i < j, of one label is tested, in parallel: the
suppression bitmask holds in bit j % 64 of the 64-bit word mask[i, j // 64] whether box i, if kept, suppresses
box j. Then a scan walks the boxes in order, as the loop above does, and ORs the row of every box it keeps into
a running set of removed boxes: 64 boxes per word operation. (The layout is torchvision's CUDA NMS.)

The IoU of one pair is computed in the boxes' dtype, in the order torchvision's CPU kernel computes it, and
compared with the threshold in float64, so that a pair at the threshold falls on the same side in every
implementation (in float32, an IoU of 6/20 rounds to 0.3000000119, above a threshold of 0.3).
"""
import numpy as np

from ..backend import xp_of


def pairwise_iou(a, b):
    """IoU of every box of a (P, 4) with every box of b (Q, 4): (P, Q), in the boxes' dtype."""
    xp = xp_of(a)
    a, b = a[:, None, :], b[None, :, :]
    w = xp.maximum(xp.minimum(a[..., 2], b[..., 2]) - xp.maximum(a[..., 0], b[..., 0]), 0)
    h = xp.maximum(xp.minimum(a[..., 3], b[..., 3]) - xp.maximum(a[..., 1], b[..., 1]), 0)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    with np.errstate(invalid="ignore"):  # two empty boxes: 0 / 0 = NaN, which suppresses nothing
        return inter / (area_a + area_b - inter)


def _above(iou, iou_threshold):
    """iou > iou_threshold in float64, as torchvision's kernels compare a float32 IoU with their double threshold
    (NumPy would round the threshold to float32: 0.3 would then equal a float32 IoU of 0.3, not be below it)."""
    return iou.astype(np.float64) > iou_threshold


def nms_keep(boxes, labels, iou_threshold):
    """Greedy NMS over the boxes in their order (by decreasing score within each label): the positions of the
    boxes kept (int64, increasing)."""
    xp = xp_of(boxes)
    suppressed = xp.zeros(len(boxes), dtype=bool)
    keep = []
    for i in range(len(boxes)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= _above(pairwise_iou(boxes[i:i + 1], boxes)[0], iou_threshold) & (labels == labels[i])
    return xp.asarray(keep, dtype=np.int64)


def nms_mask(boxes, labels, iou_threshold):
    """The suppression bitmask (N, ceil(N / 64)) uint64: bit j % 64 of mask[i, j // 64] is set when j > i, boxes
    i and j have one label and their IoU is > iou_threshold."""
    xp = xp_of(boxes)
    n = len(boxes)
    words = (n + 63) // 64
    later = xp.arange(n)[None, :] > xp.arange(n)[:, None]
    suppresses = _above(pairwise_iou(boxes, boxes), iou_threshold) & (labels[:, None] == labels[None, :]) & later
    bits = xp.zeros((n, words * 64), dtype=np.uint64)
    bits[:, :n] = suppresses
    weights = xp.left_shift(xp.uint64(1), xp.arange(64, dtype=np.uint64))  # bit k is worth 2^k
    return (bits.reshape(n, words, 64) * weights).sum(axis=2, dtype=np.uint64)
