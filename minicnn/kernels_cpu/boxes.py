"""Non-maximum suppression on Numba: the suppression bitmask, one row of 64-bit words per box (in parallel over the
rows), then the greedy scan over it. The algorithm, the mask's layout and the grouping by label the kernels rely on
are in minicnn/reference/boxes.py."""
import numpy as np
from numba import njit, prange

from ._jit import cpu_kernel


@njit(cache=True, inline="always")
def _positive_part(v):
    """max(v, 0) in v's own type (a literal 0 would widen float32 to float64)."""
    return v if v > 0 else v - v


@njit(cache=True, inline="always", error_model="numpy")
def _iou(boxes, i, j):
    """IoU of boxes i and j in the boxes' dtype, computed as reference.pairwise_iou and torchvision compute it
    (0/0 gives NaN, which suppresses nothing)."""
    w = _positive_part(min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0]))
    h = _positive_part(min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1]))
    inter = w * h
    area_i = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
    area_j = (boxes[j, 2] - boxes[j, 0]) * (boxes[j, 3] - boxes[j, 1])
    return inter / (area_i + area_j - inter)


@njit(cache=True, inline="always", error_model="numpy")
def _mask_row(mask, boxes, labels, iou_threshold, i):
    """Row i of the mask: box i against the boxes after it, up to the end of its label's group."""
    for j in range(i + 1, len(boxes)):
        if labels[j] != labels[i]:
            break
        if _iou(boxes, i, j) > iou_threshold:
            mask[i, j // 64] |= np.uint64(1) << np.uint64(j % 64)


@cpu_kernel(error_model="numpy")
def _mask_rows(mask, boxes, labels, iou_threshold):
    """Fills mask (N, words), zero on entry. Row i has N - 1 - i boxes to compare, so each parallel iteration
    takes a short row and a long one, rows k and N - 1 - k, and all iterations have the same work."""
    n = len(boxes)
    for k in prange((n + 1) // 2):
        _mask_row(mask, boxes, labels, iou_threshold, k)
        if n - 1 - k != k:
            _mask_row(mask, boxes, labels, iou_threshold, n - 1 - k)


@njit(cache=True)
def _scan(mask):
    """The greedy pass: box i is kept unless a kept box has set its bit in `removed`; keeping it ORs its row in
    (from its own word on: the bits of earlier boxes are never read again)."""
    n, words = mask.shape
    removed = np.zeros(words, dtype=np.uint64)
    keep = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(n):
        w = i // 64
        if removed[w] & (np.uint64(1) << np.uint64(i - 64 * w)) != 0:
            continue
        keep[count] = i
        count += 1
        for v in range(w, words):
            removed[v] |= mask[i, v]
    return keep[:count].copy()


def nms_mask(boxes, labels, iou_threshold):
    n = len(boxes)
    mask = np.zeros((n, (n + 63) // 64), dtype=np.uint64)
    _mask_rows(mask, np.ascontiguousarray(boxes), np.ascontiguousarray(labels, dtype=np.int64),
               float(iou_threshold))
    return mask


def nms_keep(boxes, labels, iou_threshold):
    return _scan(nms_mask(boxes, labels, iou_threshold))
