"""Anchors and box coding: the reference boxes of Faster R-CNN's region proposal network and the regression targets
a detector learns, plus YOLOv2's anchor shapes by k-means.

Boxes are (x1, y1, x2, y2) in pixels without the +1 convention (a box's width is x2 - x1), as in torchvision.

- AnchorGenerator (Ren et al. 2015, "Faster R-CNN"): at every cell of a feature map, one anchor per (aspect ratio,
  size) pair, centred on the cell's top-left corner in image pixels. torchvision's semantics and order.
- BoxCoder (Girshick et al. 2014, "Rich feature hierarchies ...", appendix C; used by Fast and Faster R-CNN): a
  box g relative to a reference p (an anchor or proposal) as centre offsets in units of p's size and log size
  ratios, each scaled by a weight.
- kmeans_anchors (Redmon & Farhadi 2017, "YOLO9000"): k-means on the (w, h) of training boxes with the distance
  d = 1 - IoU, so that large boxes do not dominate as they would with the Euclidean distance.
"""
import math

import numpy as np

from .. import functional as F
from ..autograd import Tensor, tensor
from ..backend import xp_of
from ..functional.math import as_floating
from ..functional import clamp
from ..ops.boxes import box_iou
from ._utils import as_array, check_boxes, host


def _pairs(name, sizes, aspect_ratios):
    """torchvision's normalisation: flat sizes mean one size per feature map, flat ratios are shared by all."""
    if not isinstance(sizes, (list, tuple)) or not sizes:
        raise ValueError(f"{name}: sizes must be a non-empty tuple (one tuple of sizes per feature map), got {sizes!r}")
    if not isinstance(sizes[0], (list, tuple)):
        sizes = tuple((s,) for s in sizes)
    if not isinstance(aspect_ratios, (list, tuple)) or not aspect_ratios:
        raise ValueError(f"{name}: aspect_ratios must be a non-empty tuple, got {aspect_ratios!r}")
    if not isinstance(aspect_ratios[0], (list, tuple)):
        aspect_ratios = (aspect_ratios,) * len(sizes)
    if len(sizes) != len(aspect_ratios):
        raise ValueError(f"{name}: one tuple of sizes and one of aspect ratios per feature map, got {len(sizes)} "
                         f"and {len(aspect_ratios)}")
    for what, groups in (("sizes", sizes), ("aspect_ratios", aspect_ratios)):
        for g in groups:
            try:
                v = np.asarray(g, dtype=np.float64)
            except (TypeError, ValueError):  # not numbers, or nested deeper than a tuple per feature map
                v = np.empty(0)
            if v.ndim != 1 or v.size == 0 or not (np.isfinite(v).all() and (v > 0).all()):
                raise ValueError(f"{name}: {what} must be non-empty tuples of positive numbers, got {g!r}")
    return tuple(tuple(s) for s in sizes), tuple(tuple(r) for r in aspect_ratios)


def cell_anchors(sizes, aspect_ratios):
    """The anchors of one cell, centred at (0, 0): for aspect ratio r = h / w and size s, w = s / sqrt(r) and
    h = s sqrt(r) (area s^2), box (-w/2, -h/2, w/2, h/2) rounded to integers (half to even). Computed in float32,
    as torchvision does. Order: ratio-major, then size. Returns float32 [len(ratios) * len(sizes), 4]."""
    s = np.asarray(sizes, np.float32)
    h_ratios = np.sqrt(np.asarray(aspect_ratios, np.float32))
    w_ratios = np.float32(1) / h_ratios
    ws = (w_ratios[:, None] * s[None, :]).ravel()
    hs = (h_ratios[:, None] * s[None, :]).ravel()
    return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2))


def _size(name, what, v):
    """An (h, w) pair of positive ints from an int, a pair, or anything with a .shape (its last two axes)."""
    if hasattr(v, "shape") and len(v.shape) >= 2:
        v = tuple(v.shape[-2:])
    pair = (v, v) if isinstance(v, (int, np.integer)) else tuple(v) if isinstance(v, (list, tuple)) else None
    if (pair is None or len(pair) != 2 or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool)
                                                  for n in pair) or min(pair) < 1):
        raise ValueError(f"{name}: {what} must be a positive int, an (h, w) pair of positive ints or a feature map of "
                         f"shape [..., H, W], got {v!r}")
    return int(pair[0]), int(pair[1])


class AnchorGenerator:
    """Faster R-CNN's anchors over one or more feature maps, as torchvision.models.detection.AnchorGenerator.

    sizes[i] and aspect_ratios[i] are the sizes (sqrt of the area, in image pixels) and aspect ratios (h / w) of
    feature map i; each location of map i gets len(sizes[i]) * len(aspect_ratios[i]) anchors. A flat tuple of sizes
    means one size per map; a flat tuple of ratios is shared by every map.

    For an image of H x W and a map of GH x GW the stride is (H // GH, W // GW); the anchors of cell (y, x) are the
    cell anchors (see `cell_anchors`) shifted by (x * stride_w, y * stride_h). Anchors are ordered location-major
    (row by row, then column), then by anchor within the location (ratio-major, then size), then map after map:
    anchor a of cell (y, x) of a map is row (y * GW + x) * A + a of that map's block, as in torchvision, so that
    a head's output [N, A * 4, GH, GW] permuted to [N, GH, GW, A, 4] lines up with them.

        >>> gen = AnchorGenerator(sizes=((32,),), aspect_ratios=((1.0,),))
        >>> gen((64, 64), [(2, 2)]).numpy().tolist()
        [[-16.0, -16.0, 16.0, 16.0], [16.0, -16.0, 48.0, 16.0], [-16.0, 16.0, 16.0, 48.0], [16.0, 16.0, 48.0, 48.0]]
    """

    def __init__(self, sizes=((32, 64, 128),), aspect_ratios=((0.5, 1.0, 2.0),)):
        self.sizes, self.aspect_ratios = _pairs("AnchorGenerator", sizes, aspect_ratios)
        self.cell_anchors = [cell_anchors(s, r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def num_anchors_per_location(self):
        """Anchors per cell of each feature map: [len(sizes[i]) * len(aspect_ratios[i]) for each map i]."""
        return [len(s) * len(r) for s, r in zip(self.sizes, self.aspect_ratios)]

    def grid_anchors(self, grid_sizes, strides, dtype=np.float32):
        """Per feature map, NumPy arrays [GH * GW * A, 4]: the cell anchors shifted to every cell of a GH x GW
        grid whose cells are `strides` (sh, sw) pixels apart."""
        out = []
        for (gh, gw), (sh, sw), base in zip(grid_sizes, strides, self.cell_anchors):
            shift_y, shift_x = np.meshgrid(np.arange(gh) * sh, np.arange(gw) * sw, indexing="ij")
            shifts = np.stack([shift_x.ravel(), shift_y.ravel()] * 2, axis=1)
            out.append((shifts[:, None, :] + base[None, :, :]).reshape(-1, 4).astype(dtype))
        return out

    def __call__(self, image_size, feature_maps, dtype=np.float32, device=None, per_map=False):
        """The anchors of an image of `image_size` (H, W) over `feature_maps` (one (GH, GW) pair, or a feature map
        whose last two axes are GH, GW, per (sizes, ratios) pair): a Tensor [A_total, 4] with the maps one after
        the other, or a list of one Tensor per map with per_map=True. The same for every image of a batch."""
        name = "AnchorGenerator"
        try:
            floating = np.dtype(dtype).kind == "f"
        except TypeError:
            floating = False
        if not floating:
            raise TypeError(f"{name}: dtype must be a floating-point dtype (np.float32, np.float64), got {dtype!r}")
        height, width = _size(name, "image_size", image_size)
        if not isinstance(feature_maps, (list, tuple)):
            raise ValueError(f"{name}: feature_maps must be a list (one entry per feature map), got "
                             f"{type(feature_maps).__name__}")
        grids = [_size(name, f"feature map {i}", f) for i, f in enumerate(feature_maps)]
        if len(grids) != len(self.cell_anchors):
            raise ValueError(f"{name}: {len(self.cell_anchors)} (sizes, aspect_ratios) pairs need as many feature "
                             f"maps, got {len(grids)}")
        for gh, gw in grids:
            if gh > height or gw > width:
                raise ValueError(f"{name}: a feature map of {gh}x{gw} is larger than the image {height}x{width}")
        strides = [(height // gh, width // gw) for gh, gw in grids]
        anchors = self.grid_anchors(grids, strides, dtype)
        if per_map:
            return [tensor(a, device=device) for a in anchors]
        return tensor(np.concatenate(anchors), device=device)


def _per_image(boxes):
    """Whether `boxes` is a list of per-image [L, 4] boxes (rather than one [N, 4] given as a list of rows)."""
    return isinstance(boxes, (list, tuple)) and len(boxes) > 0 and all(np.ndim(as_array(b)) == 2 for b in boxes)


def _concat(name, boxes):
    """Per-image boxes checked and concatenated into one [N, 4] array, on their device."""
    arrays = [check_boxes(name, "boxes", b) for b in boxes]
    return xp_of(arrays[0]).concatenate(arrays)


class BoxCoder:
    """Boxes as regression targets relative to reference boxes, and back (torchvision's det_utils.BoxCoder).

    For a reference box p (centre px, py, size pw, ph; pw = x2 - x1, no +1) and a target box g:

        dx = wx (gx - px) / pw      dy = wy (gy - py) / ph      dw = ww log(gw / pw)      dh = wh log(gh / ph)

    (Girshick et al. 2014, appendix C). Decoding inverts it, with dw and dh clamped to at most bbox_xform_clip
    (log(1000 / 16) by default) before the exponential: gx = dx / wx * pw + px, gw = exp(dw / ww) * pw, and the box
    is (gx - gw / 2, gy - gh / 2, gx + gw / 2, gy + gh / 2). Faster R-CNN's box head uses weights (10, 10, 5, 5).

        >>> coder = BoxCoder()
        >>> coder.encode_single([[0.0, 0.0, 20.0, 10.0]], [[0.0, 0.0, 10.0, 10.0]]).numpy().round(4).tolist()
        [[0.5, 0.0, 0.6931, 0.0]]
    """

    def __init__(self, weights=(1.0, 1.0, 1.0, 1.0), bbox_xform_clip=math.log(1000.0 / 16)):
        try:
            w = np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError):
            w = np.empty(0)
        if w.shape != (4,) or not (np.isfinite(w).all() and (w > 0).all()):
            raise ValueError(f"BoxCoder: weights must be four positive numbers (wx, wy, ww, wh), got {weights!r}")
        if not (isinstance(bbox_xform_clip, (int, float, np.floating)) and math.isfinite(bbox_xform_clip)):
            raise ValueError(f"BoxCoder: bbox_xform_clip must be a finite number, got {bbox_xform_clip!r}")
        self.weights = tuple(float(v) for v in w)
        self.bbox_xform_clip = float(bbox_xform_clip)

    def encode(self, reference_boxes, proposals):
        """encode_single on [N, 4] boxes; on lists of per-image boxes (as torchvision's encode), a tuple of
        per-image Tensors."""
        if _per_image(reference_boxes) and _per_image(proposals):
            if len(reference_boxes) != len(proposals):
                raise ValueError(f"BoxCoder.encode: {len(reference_boxes)} images of reference boxes but "
                                 f"{len(proposals)} of proposals")
            bounds = np.cumsum([0] + [len(as_array(b)) for b in reference_boxes]).tolist()
            targets = self.encode_single(_concat("BoxCoder.encode", reference_boxes), _concat("BoxCoder.encode",
                                                                                               proposals))
            return tuple(targets[a:b] for a, b in zip(bounds[:-1], bounds[1:]))
        return self.encode_single(reference_boxes, proposals)

    def encode_single(self, reference_boxes, proposals):
        """Targets [N, 4] (dx, dy, dw, dh) of reference_boxes [N, 4] (the ground truth matched to each proposal)
        relative to proposals [N, 4] (anchors or proposals); both need positive widths and heights."""
        name = "BoxCoder.encode"
        g = check_boxes(name, "reference_boxes", reference_boxes, strict=True)
        p = check_boxes(name, "proposals", proposals, strict=True)
        if g.shape != p.shape:
            raise ValueError(f"{name}: reference_boxes {tuple(g.shape)} and proposals {tuple(p.shape)} must pair "
                             "up one to one")
        xp = xp_of(g)
        dtype = np.result_type(g.dtype, p.dtype)
        g, p = g.astype(dtype, copy=False), p.astype(dtype, copy=False)
        wx, wy, ww, wh = self.weights
        pw, ph = p[:, 2] - p[:, 0], p[:, 3] - p[:, 1]
        gw, gh = g[:, 2] - g[:, 0], g[:, 3] - g[:, 1]
        px, py = p[:, 0] + 0.5 * pw, p[:, 1] + 0.5 * ph
        gx, gy = g[:, 0] + 0.5 * gw, g[:, 1] + 0.5 * gh
        targets = xp.stack([wx * (gx - px) / pw, wy * (gy - py) / ph, ww * xp.log(gw / pw), wh * xp.log(gh / ph)],
                           axis=1)
        return Tensor(targets.astype(dtype, copy=False))

    def decode(self, rel_codes, boxes):
        """decode_single on [N, 4] boxes; on a list of per-image boxes (as torchvision's decode), the codes of all
        images together, [N_total, 4 K], decoded to [N_total, K, 4]."""
        if _per_image(boxes):
            concat = _concat("BoxCoder.decode", boxes)
            codes = rel_codes if isinstance(rel_codes, Tensor) else tensor(as_array(rel_codes))
            if len(concat):
                codes = codes.reshape(len(concat), -1)
            decoded = self.decode_single(codes, concat)
            return decoded.reshape(len(concat), decoded.shape[1] // 4, 4)  # [0, K, 4] for no boxes
        return self.decode_single(rel_codes, boxes)

    def decode_single(self, rel_codes, boxes):
        """Boxes [N, 4 K] from codes rel_codes [N, 4 K] (K boxes per reference, e.g. one per class) relative to
        `boxes` [N, 4]. Differentiable in rel_codes when it is a Tensor that requires grad (the clamp passes the
        gradient below bbox_xform_clip and stops it above, as torch.clamp)."""
        name = "BoxCoder.decode"
        codes = rel_codes if isinstance(rel_codes, Tensor) else tensor(as_array(rel_codes))
        if codes.dtype.kind != "f":
            codes = tensor(as_floating(codes.data))
        p = check_boxes(name, "boxes", boxes).astype(codes.dtype, copy=False)
        if codes.ndim != 2 or codes.shape[1] % 4 or codes.shape[1] == 0 or codes.shape[0] != p.shape[0]:
            raise ValueError(f"{name}: rel_codes must be [N, 4 K] with N = {p.shape[0]} boxes, got shape "
                             f"{tuple(codes.shape)}")
        wx, wy, ww, wh = self.weights
        pw, ph = (p[:, 2] - p[:, 0])[:, None], (p[:, 3] - p[:, 1])[:, None]
        px, py = p[:, 0:1] + 0.5 * pw, p[:, 1:2] + 0.5 * ph
        dw = clamp(codes[:, 2::4] / ww, max=self.bbox_xform_clip)
        dh = clamp(codes[:, 3::4] / wh, max=self.bbox_xform_clip)
        cx, cy = codes[:, 0::4] / wx * pw + px, codes[:, 1::4] / wy * ph + py
        half_w, half_h = 0.5 * dw.exp() * pw, 0.5 * dh.exp() * ph
        out = F.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=2)
        return out.reshape(codes.shape[0], codes.shape[1])


def _wh_iou(wh1, wh2):
    """IoU [N, K] of (w, h) pairs placed at a common corner (the same as at a common centre): min(w) min(h) over
    the union."""
    corner = lambda wh: np.concatenate([np.zeros_like(wh), wh], axis=1)  # noqa: E731
    return as_array(box_iou(corner(wh1), corner(wh2)))


def kmeans_anchors(boxes, k, iters=300, seed=0):
    """YOLOv2's dimension clusters: k-means on box shapes (w, h) with d(box, centroid) = 1 - IoU(box, centroid),
    the IoU taken with both centred at one point (Redmon & Farhadi 2017, section "Dimension Clusters").

    boxes: [N, 4] (x1, y1, x2, y2) or [N, 2] (w, h), positive sizes. Seeding is k-means++ (Arthur & Vassilvitskii
    2007) with that distance, in its greedy form (each new centroid the best of 2 + ln k draws, as scikit-learn's),
    from a generator seeded with `seed`; then Lloyd's iterations (each box to the centroid of highest IoU, each
    centroid to the mean (w, h) of its boxes; a centroid left without boxes stays) until no box changes cluster or
    after `iters` rounds. Returns (anchors float64 [k, 2] (w, h) sorted by increasing area, mean IoU of each box
    with its nearest anchor).

        >>> anchors, mean_iou = kmeans_anchors([[10, 10], [11, 10], [40, 20], [42, 20]], 2)
        >>> anchors.tolist(), round(mean_iou, 3)
        ([[10.5, 10.0], [41.0, 20.0]], 0.965)
    """
    name = "kmeans_anchors"
    b = host(boxes)
    if b.ndim != 2 or b.shape[1] not in (2, 4) or b.dtype.kind not in "fiu":
        raise ValueError(f"{name}: boxes must be a real array [N, 4] (x1, y1, x2, y2) or [N, 2] (w, h), got "
                         f"{b.dtype} {tuple(b.shape)}")
    b = b.astype(np.float64)  # before the difference: x2 - x1 of uint8 boxes would wrap around
    wh = b[:, 2:] - b[:, :2] if b.shape[1] == 4 else b
    if not (np.isfinite(wh).all() and (wh > 0).all()):
        raise ValueError(f"{name}: every box needs a finite, positive width and height")
    if seed is not None and not (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        raise TypeError(f"{name}: seed must be None or an int >= 0, got {seed!r}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{name}: k must be a positive int, got {k!r}")
    if not isinstance(iters, (int, np.integer)) or iters < 1:
        raise ValueError(f"{name}: iters must be a positive int, got {iters!r}")
    distinct = len(np.unique(wh, axis=0))
    if distinct < k:
        raise ValueError(f"{name}: k = {k} clusters need at least k distinct box shapes, got {distinct}")
    rng = np.random.default_rng(seed)
    centroids = [wh[rng.integers(len(wh))]]
    dist = 1 - _wh_iou(wh, centroids[0][None])[:, 0]
    trials = 2 + int(np.log(k))
    for _ in range(1, k):
        weights = np.maximum(dist, 0) ** 2
        candidates = wh[rng.choice(len(wh), size=trials, p=weights / weights.sum())]
        cand_dist = np.minimum(dist[:, None], 1 - _wh_iou(wh, candidates))  # [N, trials]
        best = int((cand_dist ** 2).sum(axis=0).argmin())
        centroids.append(candidates[best])
        dist = cand_dist[:, best]
    centroids = np.array(centroids)
    assign = None
    for _ in range(iters):
        new_assign = _wh_iou(wh, centroids).argmax(axis=1)
        if assign is not None and (new_assign == assign).all():
            break
        assign = new_assign
        counts = np.bincount(assign, minlength=k)
        sums = np.stack([np.bincount(assign, wh[:, j], minlength=k) for j in range(2)], axis=1)
        centroids = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], centroids)
    centroids = centroids[np.argsort(centroids.prod(axis=1), kind="stable")]
    return centroids, float(_wh_iou(wh, centroids).max(axis=1).mean())
