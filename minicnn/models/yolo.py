"""YOLO v1 (Redmon, Divvala, Girshick and Farhadi 2016, "You Only Look Once: Unified, Real-Time Object Detection"),
sized for small canvases such as minicnn.data.DigitDetection's 1 x 96 x 96 digits.

The paper's network is 24 convolutions (a Darknet trunk pretrained on ImageNet) and two fully connected layers on
448 x 448 images, giving a 7 x 7 x 30 tensor (S = 7, B = 2, C = 20). Here a DetectionTrunk of len(widths) stages
(stride 2^len(widths)) feeds one of two heads that give the S_h x S_w x (5 B + C) tensor, S = image size / stride:

    head="conv"  a 3x3 conv_bn_relu of `hidden` channels and a 1x1 convolution to 5 B + C per cell: each cell sees
                 the trunk's receptive field (with the default widths more than the whole 96 x 96 canvas), and the
                 model takes any image size that is a multiple of the stride
    head="fc"    the paper's form: flatten, a linear layer of `hidden` units, leaky ReLU (slope 0.1, the paper's),
                 dropout 0.5, a linear layer to S_h S_w (5 B + C); fixed to image_size. It learns far more slowly
                 from scratch: every cell has output weights of its own, trained only by the objects centred in
                 that cell, where the conv head shares one predictor among all cells (the paper's trunk was
                 pretrained on ImageNet). On DigitDetection it stays near chance after the conv head's recipe.

The loss, the targets and the decoding are minicnn.detection.yolo's (its docstring holds the formulas). As in
torchvision's detection models, a model in training mode called as model(images, targets) returns the dict of the
four named loss Tensors (sum them to train); in eval mode model(images) returns one dict per image with "boxes"
(float32 [D, 4], pixels), "scores" [D] and "labels" (int64 [D]), using the attributes score_threshold,
iou_threshold and detections_per_image (or `predict` with thresholds of its own).
"""
import numpy as np

from .. import nn
from ..autograd import Tensor, no_grad
from ..detection import yolo
from .backbones import DetectionTrunk, conv_bn_relu
from .registry import register


class YOLOv1(nn.Module):
    """YOLO v1 on a DetectionTrunk. images [N, in_channels, H, W] (Tensor or array), H and W multiples of the
    trunk's stride (equal to image_size for head="fc"); targets a list of N dicts with "boxes" [L, 4] (x1, y1, x2,
    y2 in pixels) and "labels" [L] in [0, num_classes)."""

    def __init__(self, num_classes=10, in_channels=1, widths=(16, 32, 64, 128), boxes_per_cell=2, head="conv",
                 hidden=128, image_size=96, activation="sigmoid", lambda_coord=5.0, lambda_noobj=0.5,
                 score_threshold=0.01, iou_threshold=0.5, detections_per_image=100):
        super().__init__()
        if head not in ("conv", "fc"):
            raise ValueError(f"YOLOv1: head must be 'conv' or 'fc', got {head!r}")
        if activation not in yolo.ACTIVATIONS:
            raise ValueError(f"YOLOv1: activation must be one of {yolo.ACTIVATIONS}, got {activation!r}")
        for what, v in (("num_classes", num_classes), ("boxes_per_cell", boxes_per_cell), ("hidden", hidden)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ValueError(f"YOLOv1: {what} must be an int >= 1, got {v!r}")
        self.trunk = DetectionTrunk(in_channels, widths)
        self.num_classes, self.boxes_per_cell, self.head_kind = int(num_classes), int(boxes_per_cell), head
        self.image_size, self.activation = int(image_size), activation
        self.lambda_coord, self.lambda_noobj = float(lambda_coord), float(lambda_noobj)
        self.score_threshold, self.iou_threshold = float(score_threshold), float(iou_threshold)
        self.detections_per_image = int(detections_per_image)
        if self.image_size % self.trunk.stride:
            raise ValueError(f"YOLOv1: image_size {image_size} must be a multiple of the stride {self.trunk.stride}")
        self.grid = self.image_size // self.trunk.stride
        depth, width = 5 * self.boxes_per_cell + self.num_classes, self.trunk.out_channels
        if head == "conv":
            self.head = nn.Sequential(conv_bn_relu(width, hidden), nn.Conv2d(hidden, depth, 1))
        else:
            cells = self.grid * self.grid
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(cells * width, hidden), nn.LeakyReLU(0.1),
                                      nn.Dropout(0.5), nn.Linear(hidden, cells * depth))
        self._initial_guess()

    def _initial_guess(self):
        """Start the last layer's biases at a plain guess: every box a quarter of the image (sqrt w = sqrt h =
        0.5) and every confidence at 0.1 (where a fresh layer puts 0 and 0.5), so that the coordinate term and the
        no-object term of the many empty predictors start small and the first steps are not spent on them."""
        b, bias = self.boxes_per_cell, self.head[-1].bias.data
        bias = bias.reshape(-1, bias.size // (self.grid * self.grid) if self.head_kind == "fc" else bias.size)
        bias[:, 2:5 * b:5] = bias[:, 3:5 * b:5] = 0.5
        bias[:, 4:5 * b:5] = 0.1 if self.activation == "linear" else np.log(0.1 / 0.9)

    def _check_images(self, images):
        images = images if isinstance(images, Tensor) else Tensor(np.asarray(images, np.float32))
        stride = self.trunk.stride
        if images.ndim != 4 or images.shape[0] == 0 or images.shape[2] % stride or images.shape[3] % stride:
            raise ValueError(f"YOLOv1: expected images [N >= 1, C, H, W] with H and W multiples of the stride "
                             f"{stride}, got shape {tuple(images.shape)}")
        if self.head_kind == "fc" and images.shape[2:] != (self.image_size, self.image_size):
            raise ValueError(f"YOLOv1: the fc head takes {self.image_size}x{self.image_size} images, got "
                             f"{images.shape[2]}x{images.shape[3]}")
        if images.dtype.kind != "f":
            raise TypeError(f"YOLOv1: expected floating-point images, got {images.dtype}")
        return images

    def grid_output(self, images):
        """The raw head output [N, S_h, S_w, 5 B + C] (before the activations of detection.yolo.split_output)."""
        features = self.trunk(images)
        n, _, rows, cols = features.shape
        out = self.head(features)
        return out.transpose(0, 2, 3, 1) if self.head_kind == "conv" else out.reshape(n, rows, cols, -1)

    def loss(self, output, targets, image_size):
        """The dict of named losses for a raw head output and a list of targets (see detection.yolo)."""
        b, c = self.boxes_per_cell, self.num_classes
        image, boxes, labels = yolo.check_targets("YOLOv1", targets, output.shape[0], c, image_size)
        encoded = yolo.encode_targets(image, boxes, labels, output.shape[0], output.shape[1:3], c, image_size)
        responsible, iou = yolo.assign_predictors(output, encoded, b, c, self.activation)
        return yolo.yolo_v1_loss(output, encoded, responsible, iou, b, c, self.activation, self.lambda_coord,
                                 self.lambda_noobj)

    def forward(self, images, targets=None):
        images = self._check_images(images)
        image_size = tuple(images.shape[2:])
        if self.training:
            if targets is None:
                raise ValueError("YOLOv1: in training mode call model(images, targets); call model.eval() to detect")
            return self.loss(self.grid_output(images), targets, image_size)
        return yolo.decode(self.grid_output(images), image_size, self.boxes_per_cell, self.num_classes,
                           self.activation, self.score_threshold, self.iou_threshold, self.detections_per_image)

    def predict(self, images, score_threshold=None, iou_threshold=None, detections_per_image=None):
        """Detections as in eval mode, without gradients, with these thresholds (the attributes where None); the
        model's mode is left as it was."""
        images, was_training = self._check_images(images), self.training
        self.eval()
        try:
            with no_grad():
                output = self.grid_output(images)
        finally:
            self.train(was_training)
        pick = lambda v, default: default if v is None else v  # noqa: E731
        return yolo.decode(output, tuple(images.shape[2:]), self.boxes_per_cell,
                           self.num_classes, self.activation, pick(score_threshold, self.score_threshold),
                           pick(iou_threshold, self.iou_threshold),
                           pick(detections_per_image, self.detections_per_image))


@register("yolo_v1", "yolo", task="detection")
def yolo_v1(num_classes=10, in_channels=1, grid=6, boxes_per_cell=2, image_size=96, widths=None, **kw):
    """YOLO v1 for image_size x image_size images on a grid x grid cells: a trunk of log2(image_size / grid)
    stages whose widths double from 16 (unless `widths` is given); other keywords go to YOLOv1."""
    stages = np.log2(image_size / grid) if grid > 0 and image_size > 0 else 0.5
    if stages != int(stages) or stages < 1:
        raise ValueError(f"yolo_v1: image_size / grid must be a power of two >= 2, got {image_size} / {grid}")
    widths = tuple(16 * 2 ** k for k in range(int(stages))) if widths is None else tuple(widths)
    if 2 ** len(widths) * grid != image_size:
        raise ValueError(f"yolo_v1: {len(widths)} trunk stages give a stride of {2 ** len(widths)}, not "
                         f"image_size / grid = {image_size} / {grid}")
    return YOLOv1(num_classes, in_channels, widths, boxes_per_cell, image_size=image_size, **kw)
