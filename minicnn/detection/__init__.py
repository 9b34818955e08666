"""Object detection on minicnn: anchors and box coding, mean average precision, pictures of boxes.

    anchors.py   AnchorGenerator (Faster R-CNN's anchors over feature maps; Ren et al. 2015), BoxCoder (the R-CNN
                 box regression targets; Girshick et al. 2014), kmeans_anchors (YOLOv2's dimension clusters with
                 the distance 1 - IoU; Redmon & Farhadi 2017)
    metrics.py   evaluate (PASCAL VOC AP and mAP, all-point or VOC 2007's 11-point; Everingham et al. 2010) and
                 coco_map (COCO's mAP@[.5:.95] with 101-point interpolation; Lin et al. 2014)
    draw.py      draw_boxes: an image with its boxes, labels and scores, with matplotlib
    yolo.py      YOLO v1's grid targets, sum-squared loss and decoding (Redmon et al. 2016)
    matching.py, rpn.py, roi_heads.py
                 Faster R-CNN: the matcher and balanced sampler, the region proposal network, the Fast R-CNN
                 head on the proposals (Ren et al. 2015; Girshick 2015); the models are in minicnn.models

Boxes are (x1, y1, x2, y2) in pixels without the +1 convention, as in torchvision and minicnn.ops (box_iou, nms,
roi_align, ...). Detection data sets with boxes and labels are in minicnn.data (DigitDetection, ShapeDetection,
detection_collate).
"""
from .anchors import AnchorGenerator, BoxCoder, kmeans_anchors
from .draw import draw_boxes
from .metrics import average_precision, coco_map, evaluate

__all__ = ["AnchorGenerator", "BoxCoder", "kmeans_anchors", "evaluate", "coco_map", "average_precision",
           "draw_boxes"]
