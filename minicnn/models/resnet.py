"""Residual networks (He et al. 2016, "Deep residual learning for image recognition").

A residual block learns F(x) and outputs relu(F(x) + x): the identity path carries the signal and the gradient
through any depth. Basic blocks (two 3x3) for 18/34 layers, bottlenecks (1x1 reduce, 3x3, 1x1 expand by 4) for
50/101/152, in torchvision's layout (conv1, bn1, layer1..layer4, fc; downsample = 1x1 conv + BN), so torchvision
checkpoints load unchanged and compute torchvision's function: a bottleneck that halves the resolution strides in
its 3x3 convolution (torchvision's "v1.5", 4.1/7.8/11.5 billion multiply-adds at 224x224 for 50/101/152 layers).
The paper's own variant strides in the first 1x1 convolution (`stride_in_3x3=False`: 3.8/7.6/11.3 billion, the
figures of its Table 1; 1.8 and 3.6 billion for 18 and 34 layers, whose basic blocks are the same in both). Its
weights have the same names and shapes but give other outputs, so the variant is chosen by name, never guessed.

The CIFAR networks of the paper's section 4.2 (resnet20/32/44/56/110): 3 stages of n basic blocks at 16/32/64
channels on 32x32 images, depth 6n + 2, with the parameter-free option-A shortcut (subsample, pad channels with
zeros).
"""
from .. import nn
from ..functional import cat
from .. import init
from ..autograd import Tensor
from ..backend import xp_of
from .registry import register


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None, stride_in_3x3=True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None, stride_in_3x3=True):
        super().__init__()
        s1, s3 = (1, stride) if stride_in_3x3 else (stride, 1)
        self.conv1 = nn.Conv2d(cin, planes, 1, stride=s1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=s3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(self.relu(self.bn2(self.conv2(out)))))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


def _init_weights(model, zero_init_residual=False):
    """He normal (fan_out) for convolutions, BN weight 1 and bias 0, as torchvision does."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            init.ones_(m.weight)
            init.zeros_(m.bias)
    if zero_init_residual:  # each block starts as the identity (Goyal et al. 2017)
        for m in model.modules():
            if isinstance(m, Bottleneck):
                init.zeros_(m.bn3.weight)
            elif isinstance(m, BasicBlock):
                init.zeros_(m.bn2.weight)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, in_channels=3, stride_in_3x3=True, zero_init_residual=False):
        super().__init__()
        self.block, self.cin = block, 64
        self.stride_in_3x3 = stride_in_3x3
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.layer1 = self._stage(64, layers[0], 1)
        self.layer2 = self._stage(128, layers[1], 2)
        self.layer3 = self._stage(256, layers[2], 2)
        self.layer4 = self._stage(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_weights(self, zero_init_residual)

    def _stage(self, planes, blocks, stride):
        out = planes * self.block.expansion
        down = None
        if stride != 1 or self.cin != out:
            down = nn.Sequential(nn.Conv2d(self.cin, out, 1, stride=stride, bias=False), nn.BatchNorm2d(out))
        layers = [self.block(self.cin, planes, stride, down, self.stride_in_3x3)]
        self.cin = out
        layers += [self.block(out, planes, stride_in_3x3=self.stride_in_3x3) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _register(name, block, layers):
    def build(num_classes=1000, in_channels=3, **kw):
        return ResNet(block, layers, num_classes, in_channels, **kw)
    build.__name__ = name
    build.__doc__ = (f"ResNet with {block.__name__} blocks {layers}, torchvision's layout and function; "
                     "stride_in_3x3=False gives the paper's variant of the bottleneck.")
    register(name)(build)
    return build


resnet18 = _register("resnet18", BasicBlock, [2, 2, 2, 2])
resnet34 = _register("resnet34", BasicBlock, [3, 4, 6, 3])
resnet50 = _register("resnet50", Bottleneck, [3, 4, 6, 3])
resnet101 = _register("resnet101", Bottleneck, [3, 4, 23, 3])
resnet152 = _register("resnet152", Bottleneck, [3, 8, 36, 3])


class ShortcutA(nn.Module):
    """Option A of the paper: take every other pixel and pad the new channels with zeros (no parameters)."""

    def __init__(self, extra_channels):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x):
        x = x[:, :, ::2, ::2]
        zeros = Tensor(xp_of(x.data).zeros((x.shape[0], self.extra) + x.shape[2:], dtype=x.dtype))  # on x's device
        return cat([x, zeros], axis=1)


class CifarBasicBlock(BasicBlock):
    def __init__(self, cin, planes, stride=1):
        super().__init__(cin, planes, stride, ShortcutA(planes - cin) if stride != 1 or cin != planes else None)


class CifarResNet(nn.Module):
    def __init__(self, depth, num_classes=10, in_channels=3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n + 2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        stages, cin = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = [CifarBasicBlock(cin, planes, stride)] + [CifarBasicBlock(planes, planes) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = planes
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.GlobalAvgPool2d()
        self.fc = nn.Linear(64, num_classes)
        _init_weights(self)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def _register_cifar(depth):
    def build(num_classes=10, in_channels=3):
        return CifarResNet(depth, num_classes, in_channels)
    build.__name__ = f"resnet{depth}"
    build.__doc__ = f"The CIFAR ResNet of depth {depth} (6n + 2, n = {(depth - 2) // 6})."
    register(build.__name__)(build)
    return build


resnet20, resnet32, resnet44, resnet56, resnet110 = (_register_cifar(d) for d in (20, 32, 44, 56, 110))
