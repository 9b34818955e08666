"""Densely connected networks (Huang et al. 2017, "Densely connected convolutional networks").

Inside a dense block every layer receives the concatenation of all earlier feature maps and adds k new ones
(the growth rate): layer l sees k0 + (l - 1) k channels. Each layer is BN-ReLU-1x1 conv (4k channels, the
"bottleneck") - BN-ReLU-3x3 conv (k channels); transitions halve the channels (compression 0.5) and the
resolution (2x2 average pooling). torchvision's layout (features.denseblockN.denselayerM, features.transitionN,
features.norm5, classifier), so its checkpoints load unchanged. densenet_bc100 is the paper's CIFAR DenseNet-BC
(depth 100, k = 12, 3 blocks of 16 layers, 0.8 million parameters).
"""
from collections import OrderedDict

from .. import nn
from ..functional import cat
from .. import functional as F
from .. import init
from .registry import register


class DenseLayer(nn.Module):
    def __init__(self, cin, growth_rate, bn_size, drop_rate=0.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU()
        self.conv1 = nn.Conv2d(cin, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = drop_rate

    def forward(self, features):
        x = self.conv1(self.relu1(self.norm1(cat(features, axis=1))))
        x = self.conv2(self.relu2(self.norm2(x)))
        return F.dropout(x, self.drop_rate, self.training) if self.drop_rate else x


class DenseBlock(nn.Module):
    def __init__(self, num_layers, cin, growth_rate, bn_size, drop_rate=0.0):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth_rate, growth_rate, bn_size, drop_rate))

    def forward(self, x):
        features = [x]
        for layer in self.children():
            features.append(layer(features))
        return cat(features, axis=1)


class Transition(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(OrderedDict([("norm", nn.BatchNorm2d(cin)), ("relu", nn.ReLU()),
                                      ("conv", nn.Conv2d(cin, cout, 1, bias=False)), ("pool", nn.AvgPool2d(2, 2))]))


class DenseNet(nn.Module):
    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                 drop_rate=0.0, num_classes=1000, in_channels=3, cifar_stem=False, compression=0.5):
        super().__init__()
        if cifar_stem:  # 3x3 convolution, no pooling: for 32x32 images
            stem = [("conv0", nn.Conv2d(in_channels, num_init_features, 3, padding=1, bias=False))]
        else:
            stem = [("conv0", nn.Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False)),
                    ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU()),
                    ("pool0", nn.MaxPool2d(3, 2, padding=1))]
        self.features = nn.Sequential(OrderedDict(stem))
        c = num_init_features
        for i, n in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c, growth_rate, bn_size, drop_rate))
            c += n * growth_rate
            if i != len(block_config) - 1:
                out = int(c * compression)
                self.features.add_module(f"transition{i + 1}", Transition(c, out))
                c = out
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.classifier = nn.Linear(c, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                init.zeros_(m.bias)

    def forward(self, x):
        x = F.relu(self.features(x))
        return self.classifier(F.adaptive_avg_pool2d(x, (1, 1)).flatten(1))


def _register(name, growth_rate, block_config, num_init_features):
    def build(num_classes=1000, in_channels=3, drop_rate=0.0):
        return DenseNet(growth_rate, block_config, num_init_features, num_classes=num_classes,
                        in_channels=in_channels, drop_rate=drop_rate)
    build.__name__ = name
    build.__doc__ = f"DenseNet with growth rate {growth_rate} and blocks {block_config}."
    register(name)(build)
    return build


densenet121 = _register("densenet121", 32, (6, 12, 24, 16), 64)
densenet169 = _register("densenet169", 32, (6, 12, 32, 32), 64)
densenet201 = _register("densenet201", 32, (6, 12, 48, 32), 64)
densenet161 = _register("densenet161", 48, (6, 12, 36, 24), 96)


@register("densenet_bc100")
def densenet_bc100(num_classes=10, in_channels=3, drop_rate=0.0):
    """DenseNet-BC for CIFAR: depth 100, growth rate 12, 3 dense blocks of 16 bottleneck layers."""
    return DenseNet(12, (16, 16, 16), 24, num_classes=num_classes, in_channels=in_channels, drop_rate=drop_rate,
                    cifar_stem=True)
