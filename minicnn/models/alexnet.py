"""AlexNet (Krizhevsky, Sutskever and Hinton 2012) and ZFNet (Zeiler and Fergus 2013).

- `alexnet`: torchvision's single-tower layout (64-192-384-256-256 channels, adaptive 6x6 pooling), 61,100,840
  parameters; its state_dict loads torchvision checkpoints unchanged.
- `alexnet_original`: the 2012 paper: 227x227 input, 96-256-384-384-256 channels, the two GPU towers as grouped
  convolutions (groups=2) on conv2, conv4 and conv5, local response normalisation after conv1 and conv2,
  overlapping 3x3/2 max pooling, dropout 0.5; 60,965,224 parameters.
- `zfnet`: AlexNet with a 7x7/2 first layer and a 5x5/2 second layer, 3x3/2 pooling, LRN, single tower.
"""
from .. import nn
from .registry import register


class AlexNet(nn.Module):
    """A features/avgpool/classifier network, the layout shared by torchvision's AlexNet and VGG."""

    def __init__(self, features, num_classes, fc_in, pool=(6, 6), dropout=0.5, dropout_first=True):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(pool)
        head = [nn.Linear(fc_in, 4096), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(),
                nn.Dropout(dropout), nn.Linear(4096, num_classes)]
        if dropout_first:  # torchvision's AlexNet: dropout before each of the first two fully connected layers
            head = [nn.Dropout(dropout), head[0], head[1], nn.Dropout(dropout), head[3], head[4], head[6]]
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


@register("alexnet")
def alexnet(num_classes=1000, in_channels=3, dropout=0.5):
    features = nn.Sequential(
        nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))
    return AlexNet(features, num_classes, 256 * 6 * 6, dropout=dropout)


@register("alexnet_original")
def alexnet_original(num_classes=1000, in_channels=3, dropout=0.5):
    """Input 227x227: conv1 55x55x96, pool 27x27, conv2 27x27x256, pool 13x13, conv3-5 13x13, pool 6x6x256."""
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2))
    return AlexNet(features, num_classes, 256 * 6 * 6, dropout=dropout, dropout_first=False)


@register("zfnet")
def zfnet(num_classes=1000, in_channels=3, dropout=0.5):
    """Input 224x224: conv1 7x7/2 110x110x96, pool 55x55, conv2 5x5/2 26x26x256, pool 13x13, conv3-5, pool 6x6."""
    lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, 7, stride=2, padding=1), nn.ReLU(), nn.LocalResponseNorm(**lrn),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(96, 256, 5, stride=2), nn.ReLU(), nn.LocalResponseNorm(**lrn), nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True))
    return AlexNet(features, num_classes, 256 * 6 * 6, dropout=dropout, dropout_first=False)
