"""Mean average precision of a detector: PASCAL VOC's (Everingham et al. 2010, "The PASCAL Visual Object Classes
(VOC) Challenge", section 4.2) and COCO's mAP@[.5:.95] (Lin et al. 2014, "Microsoft COCO", and its cocoeval).

Detections are given per image as (boxes [D, 4], scores [D], labels [D]), ground truths per image as
(boxes [G, 4], labels [G]) or (boxes, labels, difficult [G]); tuples or dicts with those keys, Tensors or arrays;
boxes (x1, y1, x2, y2) without the +1 pixel convention, IoU as minicnn.ops.box_iou.

For each class, the detections of all images are sorted by decreasing score (ties keep image order, then the
order within the image), each is a true positive (TP) or a false positive (FP), and with n the number of
positives (non-difficult ground truths):

    precision(i) = TP(1..i) / i        recall(i) = TP(1..i) / n

AP is the area under the precision-recall curve after precision is made monotone (p(r) = max over r' >= r of
precision(r')): "all-point" interpolation, VOC 2010 onwards. use_07_metric=True gives VOC 2007's 11-point
version, the mean of p(r) at r = 0, 0.1, ..., 1 (0 past the highest recall). The points are the floating-point
values of voc_eval.py's np.arange(0.0, 1.1, 0.1), so that results agree with it to the last bit: 0.3, 0.6 and 0.7
are a hair above the decimals (0.30000000000000004), and a recall of exactly 3/10 does not reach the point 0.3.
mAP is the mean AP over classes with at least one positive.

IoU comparison: a detection matches at IoU >= threshold, as in the official VOC development kit (VOCevaldet.m:
`ovmax >= VOCopts.minoverlap`, the code behind the published VOC results) and in COCO's cocoeval. The Python
re-implementations (py-faster-rcnn's voc_eval.py, Detectron2) test `ovmax > ovthresh`; the two differ only for a
detection whose best IoU is exactly the threshold.
"""
import numpy as np

from ..ops import box_iou
from ._utils import check_boxes, host

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def _vector(name, what, v, n, kinds):
    a = host(v)
    if a.ndim > 1 or a.size != n:
        raise ValueError(f"{name}: {what} must be a vector of {n} values (one per box), got shape {a.shape}")
    a = a.reshape(-1)
    if len(a) and a.dtype.kind not in kinds:
        raise TypeError(f"{name}: {what} must be of kind {kinds!r} (b bool, i/u int, f float), got dtype {a.dtype}")
    return a


def _fields(name, what, item, keys, optional=()):
    if isinstance(item, dict):
        missing = [k for k in keys if k not in item]
        if missing:
            raise ValueError(f"{name}: {what} is missing {missing} (expected keys {keys + optional})")
        return [item[k] for k in keys] + [item.get(k) for k in optional]
    if isinstance(item, (tuple, list)) and len(keys) <= len(item) <= len(keys) + len(optional):
        return list(item) + [None] * (len(keys) + len(optional) - len(item))
    raise ValueError(f"{name}: {what} must be a tuple {keys + optional} or a dict with those keys, got "
                     f"{type(item).__name__}")


def _parse(name, detections, ground_truths):
    """Per image: (boxes float64 [D, 4], scores [D], labels int64 [D]) and (boxes [G, 4], labels [G], difficult
    bool [G]), after checking everything."""
    if not isinstance(detections, (list, tuple)) or not isinstance(ground_truths, (list, tuple)):
        raise TypeError(f"{name}: detections and ground_truths must be lists with one entry per image, got "
                        f"{type(detections).__name__} and {type(ground_truths).__name__}")
    if len(detections) != len(ground_truths):
        raise ValueError(f"{name}: {len(detections)} images of detections but {len(ground_truths)} of ground truths")
    dets, gts = [], []
    for i, (d, g) in enumerate(zip(detections, ground_truths)):
        boxes, scores, labels = _fields(name, f"detections[{i}]", d, ("boxes", "scores", "labels"))
        boxes = host(check_boxes(name, f"detections[{i}] boxes", boxes)).astype(np.float64)
        scores = _vector(name, f"detections[{i}] scores", scores, len(boxes), "fiu").astype(np.float64)
        if not np.isfinite(scores).all():
            raise ValueError(f"{name}: detections[{i}] scores hold NaN or infinite values")
        dets.append((boxes, scores, _vector(name, f"detections[{i}] labels", labels, len(boxes), "iu")
                     .astype(np.int64)))
        boxes, labels, difficult = _fields(name, f"ground_truths[{i}]", g, ("boxes", "labels"), ("difficult",))
        boxes = host(check_boxes(name, f"ground_truths[{i}] boxes", boxes)).astype(np.float64)
        labels = _vector(name, f"ground_truths[{i}] labels", labels, len(boxes), "iu").astype(np.int64)
        difficult = (np.zeros(len(boxes), bool) if difficult is None else
                     _vector(name, f"ground_truths[{i}] difficult", difficult, len(boxes), "biu").astype(bool))
        gts.append((boxes, labels, difficult))
    return dets, gts


def _class_iou(det_boxes, det_labels, gt_boxes, gt_labels):
    """IoU [D, G] of each detection with each ground truth of its own class; -1 across classes."""
    if len(det_boxes) == 0 or len(gt_boxes) == 0:
        return np.full((len(det_boxes), len(gt_boxes)), -1.0)
    iou = np.nan_to_num(host(box_iou(det_boxes, gt_boxes)).astype(np.float64))  # 0/0 of empty boxes -> 0
    return np.where(det_labels[:, None] == gt_labels[None, :], iou, -1.0)


def _voc_match(iou, difficult, threshold):
    """VOC's rule for one image, detections in decreasing score order: each takes the ground truth of highest IoU
    (any, matched or not); at IoU >= threshold a difficult one makes it ignored, an unmatched one a TP, one
    already matched a FP (a duplicate); below the threshold it is a FP. Returns (tp, ignored) bool [D]."""
    d = len(iou)
    if iou.shape[1] == 0:
        return np.zeros(d, bool), np.zeros(d, bool)
    best = iou.argmax(axis=1)
    hit = iou[np.arange(d), best] >= threshold
    ignored = hit & difficult[best]
    eligible = np.flatnonzero(hit & ~ignored)
    _, first = np.unique(best[eligible], return_index=True)  # the first detection of each object takes it
    tp = np.zeros(d, bool)
    tp[eligible[first]] = True
    return tp, ignored


def _flags(name, tp):
    """tp as a bool vector: booleans, or numbers that are all 0 or 1."""
    want = f"{name}: tp must be a 1-D array of booleans (or of 0 and 1)"
    try:
        a = host(tp)
    except ValueError:
        raise TypeError(f"{want}, got a ragged sequence") from None
    if a.dtype.kind not in "biuf" or a.ndim != 1:
        raise TypeError(f"{want}, got {a.dtype} of shape {a.shape}")
    if a.dtype.kind != "b" and not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name}: tp must hold only True/False or 0/1, got {a[~np.isin(a, (0, 1))][0].item()!r}")
    return a.astype(bool)


def average_precision(tp, num_positives, use_07_metric=False):
    """AP of detections sorted by decreasing score, `tp` bool [D] (False: a FP), against `num_positives`.

        >>> average_precision([True, False, True], 2)  # precision 1 up to recall 1/2, then 2/3 up to 1
        0.8333333333333333
    """
    tp = _flags("average_precision", tp)
    if (not isinstance(num_positives, (int, np.integer)) or isinstance(num_positives, bool)
            or num_positives < max(1, int(tp.sum()))):
        raise ValueError(f"average_precision: num_positives must be an int >= max(1, number of TPs = {tp.sum()}), "
                         f"got {num_positives!r}")
    tp_sum = np.cumsum(tp)
    recall = tp_sum / num_positives
    precision = tp_sum / np.arange(1, len(tp) + 1)
    if use_07_metric:
        points = np.arange(0.0, 1.1, 0.1)
        return float(np.where(recall[None, :] >= points[:, None], precision[None, :], 0.0).max(axis=1,
                                                                                             initial=0.0).mean())
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(((r[steps + 1] - r[steps]) * p[steps + 1]).sum())


def _classes(det_labels, gts):
    """Every label of the detections and the ground truths, as Python ints in increasing order."""
    return [int(c) for c in np.union1d(det_labels, np.concatenate([g[1] for g in gts]))]


def _summary(ap, positives):
    """{class: AP (NaN for a class without positives), "mAP": mean over the classes with positives}."""
    has = {c: bool((positives == c).any()) for c in ap}
    out = {c: float(a) if has[c] else float("nan") for c, a in ap.items()}
    scored = [out[c] for c in ap if has[c]]
    out["mAP"] = float(np.mean(scored)) if scored else float("nan")
    return out


def evaluate(detections, ground_truths, iou_threshold=0.5, use_07_metric=False):
    """PASCAL VOC mAP. Returns {label: AP, ..., "mAP": mean AP}: a key for every label that occurs in the
    detections or the ground truths, AP NaN for a label without a non-difficult ground truth (left out of mAP).

    Matching follows the VOC devkit, image by image, detections by decreasing score: a detection takes the ground
    truth of its class with the highest IoU in its image; if that IoU >= iou_threshold it is a TP when the object
    is not yet matched, a FP when it is (a duplicate), and neither when the object is difficult (difficult objects
    are not counted in the positives either); otherwise it is a FP. Note that the devkit does not fall back to
    a second-best, unmatched object when the best one is taken (COCO's rule does: see coco_map).

        >>> gt = [([[0, 0, 10, 10]], [3])]
        >>> evaluate([([[0, 0, 10, 10], [1, 0, 10, 10]], [0.9, 0.8], [3, 3])], gt)
        {3: 1.0, 'mAP': 1.0}
    """
    name = "evaluate"
    if not (isinstance(iou_threshold, (int, float, np.floating)) and 0 < iou_threshold <= 1):
        raise ValueError(f"{name}: iou_threshold must be a number in (0, 1], got {iou_threshold!r}")
    dets, gts = _parse(name, detections, ground_truths)
    if not dets:
        return {"mAP": float("nan")}
    matches = []
    for (boxes, s, lab), (gt_boxes, gt_labels, difficult) in zip(dets, gts):
        order = np.argsort(-s, kind="stable")
        tp, ignored = _voc_match(_class_iou(boxes[order], lab[order], gt_boxes, gt_labels), difficult, iou_threshold)
        matches.append((s[order][~ignored], lab[order][~ignored], tp[~ignored]))
    scores, labels, tps = (np.concatenate(a) for a in zip(*matches))
    positives = np.concatenate([g[1][~g[2]] for g in gts])
    ap = {}
    for c in _classes(labels, gts):
        mine = np.flatnonzero(labels == c)
        order = mine[np.argsort(-scores[mine], kind="stable")]  # over all images; ties keep image order
        n = int((positives == c).sum())
        ap[c] = average_precision(tps[order], n, use_07_metric) if n else 0.0
    return _summary(ap, positives)


def _coco_match(iou, difficult, thresholds):
    """COCO's rule for one image, detections in decreasing score order, all thresholds at once: a detection
    takes, among the objects of its class not yet matched at that threshold and with IoU >= threshold, the
    non-difficult one of highest IoU, or failing that the difficult one of highest IoU (ties: the last, as in
    cocoeval), and is then a TP or ignored; with none it is a FP. Returns (tp, ignored) bool [T, D]."""
    d, g = iou.shape
    t = len(thresholds)
    tp, ignored = np.zeros((t, d), bool), np.zeros((t, d), bool)
    matched = np.zeros((t, g), bool)
    rows = np.arange(t)
    limit = np.minimum(thresholds, 1 - 1e-10)[:, None]
    for i in range(d if g else 0):
        candidate = (iou[i][None, :] >= limit) & ~matched
        regular = (candidate & ~difficult).any(axis=1, keepdims=True)
        ov = np.where(candidate & ~(regular & difficult), iou[i], -np.inf)
        best = g - 1 - ov[:, ::-1].argmax(axis=1)
        found = np.isfinite(ov[rows, best])
        matched[rows[found], best[found]] = True
        ignored[found, i] = difficult[best[found]]
        tp[found, i] = ~difficult[best[found]]
    return tp, ignored


def coco_map(detections, ground_truths, iou_thresholds=COCO_IOU_THRESHOLDS, max_detections=100):
    """COCO-style mAP@[.5:.95]: AP averaged over IoU thresholds 0.50, 0.55, ..., 0.95 and over classes, as
    pycocotools' cocoeval computes it for boxes over all areas. Returns {label: AP over the thresholds (NaN without
    ground truth), "mAP": mAP@[.5:.95], "mAP_50": mAP at IoU 0.5, "mAP_75": mAP at IoU 0.75} (the last two when
    those thresholds are among iou_thresholds).

    Differences from evaluate: matching is COCO's (see _coco_match; the best *unmatched* object); only the
    `max_detections` highest-scoring detections per image and class count; AP is COCO's 101-point interpolation,
    the mean of the monotone precision p(r) at r = 0, 0.01, ..., 1 (0 where the recall is never reached). Difficult
    objects play the part of COCO's ignored (non-crowd) objects: not counted, and a detection matched to one is
    ignored.
    """
    name = "coco_map"
    try:
        thresholds = np.asarray(iou_thresholds, np.float64).reshape(-1)
    except (TypeError, ValueError):
        thresholds = np.empty(0)
    if thresholds.size == 0 or not ((thresholds > 0) & (thresholds <= 1)).all():
        raise ValueError(f"{name}: iou_thresholds must be numbers in (0, 1], got {iou_thresholds!r}")
    if not isinstance(max_detections, (int, np.integer)) or max_detections < 1:
        raise ValueError(f"{name}: max_detections must be a positive int, got {max_detections!r}")
    dets, gts = _parse(name, detections, ground_truths)
    if not dets:
        return {"mAP": float("nan")}
    matches = []
    for (boxes, s, lab), (gt_boxes, gt_labels, difficult) in zip(dets, gts):
        order = _top_per_class(s, lab, max_detections)
        gt_order = np.argsort(difficult, kind="stable")  # cocoeval puts ignored objects last
        tp, ignored = _coco_match(_class_iou(boxes[order], lab[order], gt_boxes[gt_order], gt_labels[gt_order]),
                                  difficult[gt_order], thresholds)
        matches.append((s[order], lab[order], tp, ~ignored))
    scores, labels = (np.concatenate([m[k] for m in matches]) for k in (0, 1))
    tps, keep = (np.concatenate([m[k] for m in matches], axis=1) for k in (2, 3))
    positives = np.concatenate([g[1][~g[2]] for g in gts])
    per_threshold = {}
    for c in _classes(labels, gts):
        mine = np.flatnonzero(labels == c)
        order = mine[np.argsort(-scores[mine], kind="stable")]
        n = int((positives == c).sum())
        per_threshold[c] = np.array([_coco_ap(tps[t, order][keep[t, order]], n) if n else 0.0
                                     for t in range(len(thresholds))])
    out = _summary({c: a.mean() for c, a in per_threshold.items()}, positives)
    for key, t in (("mAP_50", 0.5), ("mAP_75", 0.75)):
        hits = np.flatnonzero(np.isclose(thresholds, t))
        if len(hits):
            out[key] = _summary({c: a[hits[0]] for c, a in per_threshold.items()}, positives)["mAP"]
    return out


def _top_per_class(scores, labels, k):
    """Indices of the k highest-scoring detections of each class of one image, in decreasing score order."""
    order = np.argsort(-scores, kind="stable")
    by_class = order[np.argsort(labels[order], kind="stable")]  # class by class, each by decreasing score
    rank = np.arange(len(by_class)) - np.searchsorted(labels[by_class], labels[by_class])
    kept = by_class[rank < k]
    return kept[np.argsort(-scores[kept], kind="stable")] if len(kept) < len(order) else order


def _coco_ap(tp, num_positives):
    """cocoeval's AP of detections sorted by decreasing score: monotone precision at 101 recall points."""
    tp_sum = np.cumsum(tp)
    recall = tp_sum / num_positives
    precision = np.maximum.accumulate((tp_sum / np.arange(1, len(tp) + 1))[::-1])[::-1]
    at = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
    return float(np.where(at < len(tp), precision[np.minimum(at, len(tp) - 1)], 0.0).mean()) if len(tp) else 0.0
