"""The model zoo: `create(name, num_classes=1000, **kw)`, `list_models()`, and a function per model.
Every model accepts `num_classes` and `in_channels`."""
from .alexnet import alexnet, alexnet_original, zfnet
from .densenet import DenseNet, densenet121, densenet161, densenet169, densenet201, densenet_bc100
from .faster_rcnn import FasterRCNN, fasterrcnn
from .googlenet import GoogLeNet, googlenet, googlenet_loss
from .inception import InceptionV3, inception_v3
from .lenet import LeNet5, lenet5
from .registry import canonical_name, create, list_models, register, task_of
from .resnet import (CifarResNet, ResNet, resnet18, resnet20, resnet32, resnet34, resnet44, resnet50, resnet56,
                     resnet101, resnet110, resnet152)
from .vgg import VGG, vgg11, vgg11_bn, vgg11_lrn, vgg13, vgg13_bn, vgg16, vgg16_bn, vgg16_c, vgg19, vgg19_bn
from .xception import Xception, xception
from .yolo import YOLOv1, yolo_v1
