"""PyTorch twins of minicnn's LeNet-5, ResNet-18, ResNet-50 and DenseNet-121 (same layout and parameter names), for
the benchmarks and for the tests that load PyTorch weights into minicnn. Written here because torchvision has no CPU
wheel to install; nothing in minicnn imports this file."""


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


def densenet121(torch, num_classes=1000):
    return densenet(torch, 32, (6, 12, 24, 16), 64, num_classes=num_classes)


def densenet(torch, growth_rate, block_config, num_init_features, bn_size=4, num_classes=1000, in_channels=3):
    """torchvision's DenseNet (as minicnn/models/densenet.py): features.conv0/norm0/relu0/pool0, then
    features.denseblockN.denselayerM (norm1, relu1, 1x1 conv1 to bn_size * k channels, norm2, relu2, 3x3 conv2 to k)
    and features.transitionN (norm, relu, 1x1 conv halving the channels, 2x2 average pool), features.norm5, classifier.
    Every layer concatenates all earlier feature maps, as torchvision does without memory_efficient."""
    from collections import OrderedDict
    nn = torch.nn

    class DenseLayer(nn.Module):
        def __init__(self, cin):
            super().__init__()
            self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU()
            self.conv1 = nn.Conv2d(cin, bn_size * growth_rate, 1, bias=False)
            self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth_rate), nn.ReLU()
            self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

        def forward(self, features):
            x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
            return self.conv2(self.relu2(self.norm2(x)))

    class DenseBlock(nn.Module):
        def __init__(self, num_layers, cin):
            super().__init__()
            for i in range(num_layers):
                self.add_module(f"denselayer{i + 1}", DenseLayer(cin + i * growth_rate))

        def forward(self, x):
            features = [x]
            for layer in self.children():
                features.append(layer(features))
            return torch.cat(features, 1)

    class DenseNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(OrderedDict([
                ("conv0", nn.Conv2d(in_channels, num_init_features, 7, 2, 3, bias=False)),
                ("norm0", nn.BatchNorm2d(num_init_features)), ("relu0", nn.ReLU()), ("pool0", nn.MaxPool2d(3, 2, 1))]))
            c = num_init_features
            for i, n in enumerate(block_config):
                self.features.add_module(f"denseblock{i + 1}", DenseBlock(n, c))
                c += n * growth_rate
                if i != len(block_config) - 1:
                    self.features.add_module(f"transition{i + 1}", nn.Sequential(OrderedDict([
                        ("norm", nn.BatchNorm2d(c)), ("relu", nn.ReLU()), ("conv", nn.Conv2d(c, c // 2, 1, bias=False)),
                        ("pool", nn.AvgPool2d(2, 2))])))
                    c //= 2
            self.features.add_module("norm5", nn.BatchNorm2d(c))
            self.classifier = nn.Linear(c, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight)
                elif isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            x = torch.relu(self.features(x))
            return self.classifier(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))
    return DenseNet()
