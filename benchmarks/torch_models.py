"""PyTorch twins of minicnn's LeNet-5, ResNet-18 and ResNet-50 (same layout and parameter names), for the benchmarks and
for the tests that load PyTorch weights into minicnn. Written here because torchvision has no CPU wheel to
install; nothing in minicnn imports this file."""


def lenet5(torch, num_classes=10):
    nn = torch.nn

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
            self.classifier = nn.Sequential(nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                            nn.Linear(84, num_classes))

        def forward(self, x):
            return self.classifier(torch.flatten(self.features(x), 1))
    return LeNet5()


def resnet18(torch, num_classes=1000):
    return resnet(torch, False, [2, 2, 2, 2], num_classes)


def resnet50(torch, num_classes=1000):
    return resnet(torch, True, [3, 4, 6, 3], num_classes)


def resnet(torch, bottleneck, layers, num_classes):
    """torchvision's ResNet: basic blocks, or bottlenecks that stride in their 3x3 convolution (v1.5)."""
    nn = torch.nn
    expansion = 4 if bottleneck else 1

    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            cout = planes * expansion  # modules in torchvision's order, so state_dict keys come in its order
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False) if bottleneck else \
                nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride if bottleneck else 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            if bottleneck:
                self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
                self.bn3 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            if bottleneck:
                out = self.bn3(self.conv3(torch.relu(out)))
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (planes, stride, n) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2), layers)):
                blocks = [Block(cin, planes, stride)] + [Block(planes * expansion, planes, 1) for _ in range(n - 1)]
                setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
                cin = planes * expansion
            self.fc = nn.Linear(512 * expansion, num_classes)

        def forward(self, x):
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))
    return ResNet()
