"""GoogLeNet / Inception v1 (Szegedy et al. 2015, "Going deeper with convolutions"), as in the paper's table.

An Inception module runs four branches on the same input and concatenates them along the channel axis:
1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5; 3x3 max pool -> 1x1 projection. The 1x1 reductions keep the 3x3 and
5x5 convolutions cheap. No batch normalisation (it came later); two auxiliary classifiers on inception 4a and 4d
add gradient to the middle of the network during training: in training mode the model returns (main, aux1, aux2)
and `googlenet_loss` weighs the auxiliary losses by 0.3. About 7.0 million parameters without the auxiliary heads
(the params column of the paper's table sums to 6.8 million) and 1.5 billion multiply-adds at 224x224.

Names follow torchvision (conv1, inception3a.branch1, aux1.fc1, ...), but the paper's network differs from
torchvision's in two ways, so torchvision checkpoints do not load: torchvision adds batch norm after every
convolution and uses a 3x3 convolution where the paper has 5x5.
"""
from .. import nn
from ..functional import cat
from ..functional import cross_entropy
from .registry import register


class BasicConv2d(nn.Module):
    """Convolution + ReLU."""

    def __init__(self, cin, cout, kernel_size, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, **kw)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class Inception(nn.Module):
    def __init__(self, cin, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(cin, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(cin, ch5x5red, 1), BasicConv2d(ch5x5red, ch5x5, 5, padding=2))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, padding=1, ceil_mode=True), BasicConv2d(cin, pool_proj, 1))

    def forward(self, x):
        return cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=1)


class InceptionAux(nn.Module):
    """5x5/3 average pooling (adaptive to 4x4, which it is at 224x224), 1x1 conv to 128, FC 1024, dropout 0.7."""

    def __init__(self, cin, num_classes):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(cin, 128, 1)
        self.fc1 = nn.Linear(2048, 1024)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        return self.fc2(self.dropout(self.relu(self.fc1(self.conv(self.pool(x)).flatten(1)))))


class GoogLeNet(nn.Module):
    def __init__(self, num_classes=1000, in_channels=3, aux_logits=True, dropout=0.4):
        super().__init__()
        self.aux_logits = aux_logits
        self.conv1 = BasicConv2d(in_channels, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.conv2 = BasicConv2d(64, 64, 1)
        self.conv3 = BasicConv2d(64, 192, 3, padding=1)
        self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes)
            self.aux2 = InceptionAux(528, num_classes)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.lrn2(self.conv3(self.conv2(self.lrn1(x)))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        aux1 = self.aux1(x) if self.aux_logits and self.training else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        aux2 = self.aux2(x) if self.aux_logits and self.training else None
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        out = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        return (out, aux1, aux2) if aux1 is not None else out


def googlenet_loss(outputs, target, aux_weight=0.3, label_smoothing=0.0):
    """Cross-entropy of the main output plus aux_weight times that of each auxiliary classifier."""
    if not isinstance(outputs, tuple):
        return cross_entropy(outputs, target, label_smoothing)
    main, *aux = outputs
    loss = cross_entropy(main, target, label_smoothing)
    for a in aux:
        loss = loss + aux_weight * cross_entropy(a, target, label_smoothing)
    return loss


@register("googlenet", "inception_v1")
def googlenet(num_classes=1000, in_channels=3, aux_logits=True, dropout=0.4):
    return GoogLeNet(num_classes, in_channels, aux_logits, dropout)
