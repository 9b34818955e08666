"""Xception (Chollet 2017, "Xception: deep learning with depthwise separable convolutions").

Every 3x3 convolution is depthwise separable: a depthwise 3x3 (groups = channels, one filter per channel, spatial
correlations) followed by a pointwise 1x1 (cross-channel correlations), at about 1/9 of the multiply-adds. 36
such layers in 14 blocks with residual connections: entry flow (3 blocks down to 19x19 at 299x299 input), middle
flow (8 identical blocks at 728 channels), exit flow; about 22.9 million parameters for 1000 classes.
"""
from .. import nn
from .registry import register


class SeparableConv2d(nn.Module):
    def __init__(self, cin, cout, kernel_size=3, padding=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, kernel_size, padding=padding, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    """reps separable convolutions (each with BN, ReLU before), then 3x3/2 max pooling when stride is 2; the
    residual path is the identity or a strided 1x1 convolution with BN."""

    def __init__(self, cin, cout, reps, stride=1, start_with_relu=True, grow_first=True):
        super().__init__()
        self.skip = nn.Conv2d(cin, cout, 1, stride=stride, bias=False) if cout != cin or stride != 1 else None
        self.skipbn = nn.BatchNorm2d(cout) if self.skip is not None else None
        layers, c = [], cin
        widths = [cout] * reps if grow_first else [cin] * (reps - 1) + [cout]
        for i, w in enumerate(widths):
            if i > 0 or start_with_relu:
                layers.append(nn.ReLU())
            layers += [SeparableConv2d(c, w), nn.BatchNorm2d(w)]
            c = w
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, padding=1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x):
        skip = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + skip


class Xception(nn.Module):
    def __init__(self, num_classes=1000, in_channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, stride=2, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.block1 = Block(64, 128, 2, 2, start_with_relu=False)
        self.block2 = Block(128, 256, 2, 2)
        self.block3 = Block(256, 728, 2, 2)
        for i in range(4, 12):
            self.add_module(f"block{i}", Block(728, 728, 3, 1))
        self.block12 = Block(728, 1024, 2, 2, grow_first=False)
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.conv4 = SeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(2048, num_classes)

    def forward(self, x):
        x = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        for i in range(1, 13):
            x = getattr(self, f"block{i}")(x)
        x = self.relu(self.bn4(self.conv4(self.relu(self.bn3(self.conv3(x))))))
        return self.fc(self.avgpool(x).flatten(1))


@register("xception")
def xception(num_classes=1000, in_channels=3):
    return Xception(num_classes, in_channels)
