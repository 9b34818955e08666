"""LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998, "Gradient-based learning applied to document recognition").

Two convolution + pooling blocks and three fully connected layers: 1x28x28 -> conv 5x5 (padding 2) 6x28x28 ->
pool 6x14x14 -> conv 5x5 16x10x10 -> pool 16x5x5 -> 120 -> 84 -> 10; 61,706 parameters for 10 classes.
The paper's network used scaled tanh units and trainable average-pooling "subsampling" on 32x32 inputs; this is the
common modern form with ReLU and max pooling, which trains faster to the same accuracy.
"""
from .. import nn
from .registry import register


class LeNet5(nn.Module):
    def __init__(self, num_classes=10, in_channels=1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))

    def forward(self, x):
        if x.shape[2:] != (28, 28):
            raise ValueError(f"LeNet5: expected 28x28 images, got input of shape {x.shape}")
        return self.classifier(self.features(x).flatten(1))


@register("lenet5", "lenet")
def lenet5(num_classes=10, in_channels=1):
    return LeNet5(num_classes, in_channels)
