"""VGG (Simonyan and Zisserman 2015): stacks of 3x3 convolutions, 2x2/2 max pooling, three fully connected layers.

Configurations of the paper's Table 1: A (vgg11), A-LRN (vgg11_lrn: LRN after the first layer), B (vgg13),
C (vgg16_c: 1x1 convolutions as the last layer of blocks 3-5), D (vgg16, 138,357,544 parameters), E (vgg19); and
the batch-normalised variants vgg11_bn ... vgg19_bn. Layout and names are torchvision's (features, avgpool,
classifier), so torchvision checkpoints load unchanged. Two 3x3 layers see a 5x5 window, three see 7x7, with
27 C^2 weights instead of 49 C^2.
"""
from .. import nn
from .alexnet import AlexNet
from .registry import register

# numbers are 3x3 convolutions, "1:n" a 1x1 convolution to n channels, "M" max pooling, "L" LRN
CONFIGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "L", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, "1:256", "M", 512, 512, "1:512", "M", 512, 512, "1:512", "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def make_features(config, in_channels=3, batch_norm=False):
    layers, c = [], in_channels
    for item in config:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        elif item == "L":
            layers.append(nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0))
        else:
            k, out = (1, int(item[2:])) if isinstance(item, str) else (3, item)
            layers.append(nn.Conv2d(c, out, k, padding=k // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            c = out
    return nn.Sequential(*layers)


class VGG(AlexNet):
    def __init__(self, config, num_classes=1000, in_channels=3, batch_norm=False, dropout=0.5):
        super().__init__(make_features(CONFIGS[config], in_channels, batch_norm), num_classes, 512 * 7 * 7,
                         pool=(7, 7), dropout=dropout, dropout_first=False)


def _register(name, config, batch_norm):
    def build(num_classes=1000, in_channels=3, dropout=0.5):
        return VGG(config, num_classes, in_channels, batch_norm, dropout)
    build.__name__ = name
    build.__doc__ = f"VGG configuration {config}{' with batch normalisation' if batch_norm else ''}."
    register(name)(build)
    return build


vgg11 = _register("vgg11", "A", False)
vgg11_lrn = _register("vgg11_lrn", "A-LRN", False)
vgg13 = _register("vgg13", "B", False)
vgg16_c = _register("vgg16_c", "C", False)
vgg16 = _register("vgg16", "D", False)
vgg19 = _register("vgg19", "E", False)
vgg11_bn = _register("vgg11_bn", "A", True)
vgg13_bn = _register("vgg13_bn", "B", True)
vgg16_bn = _register("vgg16_bn", "D", True)
vgg19_bn = _register("vgg19_bn", "E", True)
