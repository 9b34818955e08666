"""Box operators with torchvision.ops' names, signatures and semantics: areas, IoU, generalised IoU, format
conversion, clipping to the image, removing small boxes.

A box is (x1, y1, x2, y2), its top-left and bottom-right corners, with no +1 pixel convention (a box from 0 to 10
is 10 wide). For boxes A and B:

    |A|        = (x2 - x1) (y2 - y1)
    |A ∩ B|    = max(0, min(A.x2, B.x2) - max(A.x1, B.x1)) * max(0, min(A.y2, B.y2) - max(A.y1, B.y1))
    IoU(A, B)  = |A ∩ B| / |A ∪ B|,   |A ∪ B| = |A| + |B| - |A ∩ B|            (the Jaccard index, in [0, 1])
    GIoU(A, B) = IoU(A, B) - |C \\ (A ∪ B)| / |C|,   C the smallest box that holds A and B            (in [-1, 1])

GIoU is Rezatofighi et al. 2019, "Generalized Intersection over Union: A Metric and a Loss for Bounding Box
Regression" (CVPR): unlike IoU it still says how far apart two disjoint boxes are, so a loss 1 - GIoU has a
gradient where the boxes do not overlap.

Inputs may be Tensors, NumPy or CuPy arrays or lists; outputs are Tensors on the input's device. The ops are
built from Tensor ops, so autograd differentiates them where torchvision's are differentiable (box_area,
box_iou, generalized_box_iou, box_convert, clip_boxes_to_image), with the elementwise maximum, minimum and clamp
of minicnn.functional (PyTorch's gradients at their kinks: a tie in max or min splits the gradient in half; a
clamped value at its bound gets none). They compute what torchvision computes in the
order it computes it, so float32 results agree with torchvision's bit for bit.

Valid boxes: box_area, box_iou and generalized_box_iou (and nms) refuse boxes with x2 < x1 or y2 < y1 (width or
height < 0 in the other formats) and NaN coordinates, with a ValueError naming the op and the box: torchvision
returns meaningless numbers for them. A box of width 0 is valid (area 0; two such boxes have IoU 0/0 = NaN, as in
torchvision). box_convert, clip_boxes_to_image and remove_small_boxes take any boxes: they are the tools that
repair or filter them.

Dtypes, as torchvision's: box_area, box_iou and generalized_box_iou compute float16 boxes in float32 and widen
8- and 16-bit integers to int32 (its _upcast; uint32 and uint64 go to int64 here), and do it before anything
else, so that neither a difference nor a product wraps around (an area of uint8 boxes is an int32; an inverted
uint8 box is refused, not read as a width of 250; torchvision takes the intersections' differences before it
widens). Integer boxes give float32 IoUs, and float boxes beside integer ones keep their float dtype (float32 with
int64 gives float32, where NumPy's rules would give float64). box_convert and clip_boxes_to_image keep
float16; box_convert gives float32 for integer boxes to or from 'cxcywh' (it halves them) and keeps the dtype of
integer boxes between 'xyxy' and 'xywh' (x + w may wrap around in a narrow dtype, as in torchvision).
"""
import numbers

import numpy as np

from ..autograd import Tensor
from ..backend import xp_of
from ..functional.clamp import clamp, maximum, minimum
from ..functional.shape import cat

FORMATS = ("xyxy", "xywh", "cxcywh")
_ROTATED = ("xywhr", "cxcywhr", "xyxyxyxy")  # torchvision's rotated formats, which minicnn does not have


# --- checks ------------------------------------------------------------------------------------------------------

def as_boxes(name, boxes, what="boxes", ndim=None, half=False):
    """boxes as a Tensor [..., 4] of a real dtype (a Tensor is returned as it is, graph and all), or [N, 4] when
    ndim=2; float16 computes in float32, as torchvision's _upcast does, unless half=True."""
    if not isinstance(boxes, Tensor):
        try:
            boxes = Tensor(boxes)
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name}: expected {what} as a Tensor or an array of numbers, got "
                            f"{type(boxes).__name__} ({e})") from None
    if boxes.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected {what} of a real dtype (float or integer), got {boxes.dtype}")
    if boxes.ndim < 1 or boxes.shape[-1] != 4 or (ndim is not None and boxes.ndim != ndim):
        shape = "[N, 4]" if ndim == 2 else "[..., 4]"
        raise ValueError(f"{name}: expected {what} of shape {shape}, got shape {boxes.shape}")
    return boxes.float() if boxes.dtype == np.float16 and not half else boxes


WIDE = {1: np.int32, 2: np.int32, 4: np.int64, 8: np.int64}  # the integer dtype each itemsize widens to


def widened(name, boxes, what="boxes"):
    """Integer boxes in a dtype where differences and products of coordinates do not wrap around at once: int8,
    uint8, int16 and uint16 as int32, uint32 and uint64 as int64 (refused past 2**63 - 1); others as they are."""
    b = boxes.data
    if b.dtype.kind not in "iu" or b.dtype in (np.int32, np.int64):
        return boxes
    if b.dtype == np.uint64 and b.size and int(b.max()) > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: {what} hold a uint64 coordinate above 2**63 - 1 ({int(b.max())})")
    return boxes.to(dtype=WIDE[b.dtype.itemsize])


def _first(bad):
    """The index of the first True of a boolean array (an int for 1-D, a tuple of ints otherwise)."""
    index = tuple(int(i) for i in np.unravel_index(int(bad.argmax()), bad.shape))
    return index[0] if len(index) == 1 else index


def check_valid(name, boxes, fmt="xyxy", what="boxes"):
    """Raise a ValueError naming the first box with a NaN coordinate, or with a negative width or height."""
    b = boxes.data
    xp = xp_of(b)
    if b.dtype.kind == "f" and bool(xp.isnan(b).any()):
        first = _first(xp.isnan(b).any(axis=-1))
        raise ValueError(f"{name}: {what} contain NaN: box {first} is {b[first].tolist()}")
    bad = ((b[..., 2:] < b[..., :2]) if fmt == "xyxy" else (b[..., 2:] < 0)).any(axis=-1)
    if bool(bad.any()):
        first = _first(bad)
        rule = "x1 <= x2 and y1 <= y2" if fmt == "xyxy" else "a width and height >= 0"
        raise ValueError(f"{name}: expected {what} ({fmt}) with {rule}, got box {first} = {b[first].tolist()}")


def check_format(name, fmt, allowed=FORMATS):
    if fmt not in allowed:
        extra = " (rotated boxes are torchvision's, not minicnn's)" if fmt in _ROTATED else ""
        raise ValueError(f"{name}: unknown box format {fmt!r}{extra}; expected one of {', '.join(allowed)}")


def _real(name, what, value, minimum=None):
    """A Python or NumPy real number (not a bool, not NaN), as a float; >= minimum when given."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or value != value:
        raise TypeError(f"{name}: {what} must be a real number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: {what} must be >= {minimum}, got {value!r}")
    return value


# --- the ops --------------------------------------------------------------------------------------------------------

def _corners(b, fmt):
    """(top-left [..., 2], bottom-right [..., 2], area [...]) of boxes b in fmt, as torchvision computes them."""
    lo = b[..., :2]
    if fmt == "xyxy":
        return lo, b[..., 2:], (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    area = b[..., 2] * b[..., 3]
    if fmt == "xywh":
        return lo, lo + b[..., 2:], area
    half = b[..., 2:] / 2
    return lo - half, lo + half, area


def box_area(boxes, fmt="xyxy"):
    """Areas of boxes [..., 4] in fmt ('xyxy', 'xywh' or 'cxcywh'): (x2 - x1)(y2 - y1), or w h."""
    check_format("box_area", fmt)
    boxes = widened("box_area", as_boxes("box_area", boxes))
    check_valid("box_area", boxes, fmt)
    return _corners(boxes, fmt)[2]


def _inter_union(name, boxes1, boxes2, fmt):
    """|A ∩ B| and |A ∪ B| for every pair (A in boxes1 [..., N, 4], B in boxes2 [..., M, 4]): [..., N, M] each;
    also the corners of the pairs, for GIoU's enclosing box."""
    check_format(name, fmt)
    boxes1, boxes2 = (widened(name, as_boxes(name, b, what), what) for b, what in ((boxes1, "boxes1"),
                                                                                     (boxes2, "boxes2")))
    for b, what in ((boxes1, "boxes1"), (boxes2, "boxes2")):
        if b.ndim < 2:
            raise ValueError(f"{name}: expected {what} of shape [..., N, 4], got shape {b.shape}")
        check_valid(name, b, fmt, what)
    try:
        np.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    except ValueError:
        raise ValueError(f"{name}: the leading axes of boxes1 {boxes1.shape} and boxes2 {boxes2.shape} do not "
                         "broadcast (expected [..., N, 4] and [..., M, 4] with broadcastable '...')") from None
    if boxes1.dtype.kind != boxes2.dtype.kind and "f" in (boxes1.dtype.kind, boxes2.dtype.kind):
        dtype = boxes1.dtype if boxes1.dtype.kind == "f" else boxes2.dtype  # PyTorch's rule: the float dtype wins
        boxes1, boxes2 = boxes1.to(dtype=dtype), boxes2.to(dtype=dtype)
    lo1, hi1, area1 = _corners(boxes1, fmt)
    lo2, hi2, area2 = _corners(boxes2, fmt)
    lo1, hi1, lo2, hi2 = lo1[..., :, None, :], hi1[..., :, None, :], lo2[..., None, :, :], hi2[..., None, :, :]
    wh = clamp(minimum(hi1, hi2) - maximum(lo1, lo2), 0)
    inter = wh[..., 0] * wh[..., 1]
    union = area1[..., :, None] + area2[..., None, :] - inter
    return inter, union, (lo1, hi1, lo2, hi2)


def box_iou(boxes1, boxes2, fmt="xyxy"):
    """IoU = |A ∩ B| / |A ∪ B| of every pair: boxes1 [..., N, 4] and boxes2 [..., M, 4] give [..., N, M].

    Integer boxes give float32 IoUs. Example: two unit squares, one shifted by half its width, overlap in 1/2
    and cover 3/2, so IoU = 1/3:

    >>> box_iou([[0.0, 0.0, 1.0, 1.0]], [[0.5, 0.0, 1.5, 1.0]]).item()
    0.3333333432674408
    """
    inter, union, _ = _inter_union("box_iou", boxes1, boxes2, fmt)
    with np.errstate(invalid="ignore"):  # two empty boxes: 0 / 0 = NaN, as in torchvision, without a warning
        return inter / union


def generalized_box_iou(boxes1, boxes2):
    """GIoU = IoU - |C \\ (A ∪ B)| / |C| of every pair of xyxy boxes, with C the smallest box holding A and B
    (Rezatofighi et al. 2019): boxes1 [..., N, 4] and boxes2 [..., M, 4] give [..., N, M], in [-1, 1]."""
    inter, union, (lo1, hi1, lo2, hi2) = _inter_union("generalized_box_iou", boxes1, boxes2, "xyxy")
    wh = clamp(maximum(hi1, hi2) - minimum(lo1, lo2), 0)
    enclosing = wh[..., 0] * wh[..., 1]
    with np.errstate(invalid="ignore"):
        return inter / union - (enclosing - union) / enclosing


def box_convert(boxes, in_fmt, out_fmt):
    """Boxes [..., 4] from in_fmt to out_fmt, each one of

        'xyxy'    (x1, y1, x2, y2): the corners
        'xywh'    (x1, y1, w, h):   the top-left corner, the width and the height
        'cxcywh'  (cx, cy, w, h):   the centre, the width and the height

    with x2 = x1 + w, cx = (x1 + x2) / 2, x1 = cx - w / 2 (and the same for y). Conversions between 'xywh' and
    'cxcywh' go through 'xyxy', as torchvision's do. Integer boxes to or from 'cxcywh' give float32 (computed from
    the coordinates in float32: torchvision's numbers for coordinates below 2**24); float16 stays float16."""
    check_format("box_convert", in_fmt)
    check_format("box_convert", out_fmt)
    boxes = as_boxes("box_convert", boxes, half=True)
    if in_fmt == out_fmt:
        return boxes + 0  # a copy in the graph, as torchvision's clone
    if boxes.dtype.kind in "iu" and "cxcywh" in (in_fmt, out_fmt):
        boxes = boxes.float()  # as PyTorch's promotion of an integer tensor divided or scaled by a float
    if in_fmt != "xyxy":
        a, b = boxes[..., :2], boxes[..., 2:]
        boxes = cat([a, a + b] if in_fmt == "xywh" else [a - 0.5 * b, a + 0.5 * b], axis=-1)
    if out_fmt == "xyxy":
        return boxes
    lo, hi = boxes[..., :2], boxes[..., 2:]
    return cat([lo, hi - lo] if out_fmt == "xywh" else [(lo + hi) / 2, hi - lo], axis=-1)


def clip_boxes_to_image(boxes, size):
    """Boxes [..., 4] (xyxy) clipped to an image of size (height, width): x to [0, width], y to [0, height].
    Boxes keep their dtype (float16 included); a bound past an integer dtype's largest value clips nothing (uint8
    boxes in a 300 x 300 image: torchvision raises there)."""
    boxes = as_boxes("clip_boxes_to_image", boxes, half=True)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"clip_boxes_to_image: size must be (height, width), got {size!r}")
    height, width = (_real("clip_boxes_to_image", "size", v, 0) for v in size)
    if boxes.dtype.kind in "iu" and not all(float(v).is_integer() for v in size):
        boxes = boxes.float()  # a fractional size clips integer boxes in float32, as PyTorch's type promotion does
    bounds = [width, height, width, height]
    if boxes.dtype.kind in "iu":
        bounds = [min(int(v), int(np.iinfo(boxes.dtype).max)) for v in bounds]
    with np.errstate(over="ignore"):  # float16: a bound past 65504 is inf, which clips nothing either
        high = xp_of(boxes.data).asarray(bounds, dtype=boxes.dtype)
    return clamp(boxes, boxes.dtype.type(0), high)


def remove_small_boxes(boxes, min_size):
    """int64 indices of the boxes [N, 4] (xyxy) whose width and height are both >= min_size."""
    boxes = widened("remove_small_boxes", as_boxes("remove_small_boxes", boxes, ndim=2))
    min_size = _real("remove_small_boxes", "min_size", min_size)
    b = boxes.data
    keep = ((b[:, 2] - b[:, 0]) >= min_size) & ((b[:, 3] - b[:, 1]) >= min_size)
    return Tensor(xp_of(b).flatnonzero(keep).astype(np.int64))
