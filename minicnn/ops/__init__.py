"""Detection operators with torchvision.ops' names, signatures and semantics, so that code written for
torchvision.ops runs with `import minicnn.ops as ops` and gives the same numbers.

Boxes are (x1, y1, x2, y2) without the +1 pixel convention; inputs may be Tensors, NumPy or CuPy arrays or lists,
and outputs are Tensors on the input's device.

    boxes.py   box_area, box_iou, generalized_box_iou, box_convert ('xyxy', 'xywh', 'cxcywh'),
               clip_boxes_to_image, remove_small_boxes: built from Tensor ops, differentiable where torchvision's are
    nms.py     nms and batched_nms (greedy non-maximum suppression); the suppression bitmask and the greedy scan
               are kernels: minicnn/reference/boxes.py (readable), kernels_cpu/boxes.py (Numba), kernels/boxes.cu
    roi.py     roi_pool, roi_align and the modules RoIPool, RoIAlign (Girshick 2015; He et al. 2017)
"""
from .boxes import box_area, box_convert, box_iou, clip_boxes_to_image, generalized_box_iou, remove_small_boxes
from .nms import batched_nms, nms
from .roi import RoIAlign, RoIPool, roi_align, roi_pool

__all__ = ["box_area", "box_iou", "generalized_box_iou", "box_convert", "clip_boxes_to_image", "remove_small_boxes",
           "nms", "batched_nms", "roi_pool", "roi_align", "RoIPool", "RoIAlign"]
