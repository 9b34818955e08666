"""A compact convolutional trunk for the detectors of the zoo (YOLO v1, Faster R-CNN) on small canvases.

Stages of (3x3 convolution, batch norm, ReLU) x 2 followed by 2x2 max pooling, each stage halving the resolution
and widening the features, as in the VGG and Darknet trunks of the detection papers (Redmon et al. 2016 use 24
convolutions on 448x448 images; a 96x96 canvas of digits needs far fewer): with `widths` (32, 64, 128, 256) a
1x96x96 canvas becomes 256x6x6 features, a stride of 16.
"""
from .. import nn


def conv_bn_relu(in_channels, out_channels, kernel_size=3, stride=1):
    """Convolution (no bias: batch norm has one), batch norm, ReLU; "same" padding for odd kernels."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2,
                                   bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


class DetectionTrunk(nn.Module):
    """x (N, in_channels, H, W) -> features (N, widths[-1], H / 2^S, W / 2^S), S = len(widths) stages of two
    conv_bn_relu and a 2x2 max pooling. `stride` and `out_channels` tell a head what it gets."""

    def __init__(self, in_channels=1, widths=(32, 64, 128, 256)):
        super().__init__()
        if not widths:
            raise ValueError("DetectionTrunk: expected at least one stage width")
        stages, cin = [], in_channels
        for width in widths:
            stages += [conv_bn_relu(cin, width), conv_bn_relu(width, width), nn.MaxPool2d(2)]
            cin = width
        self.stages = nn.Sequential(*stages)
        self.stride, self.out_channels = 2 ** len(widths), widths[-1]

    def forward(self, x):
        if x.ndim != 4 or x.shape[2] % self.stride or x.shape[3] % self.stride:
            raise ValueError(f"DetectionTrunk: expected images (N, C, H, W) with H and W multiples of {self.stride}, "
                             f"got shape {tuple(x.shape)}")
        return self.stages(x)
