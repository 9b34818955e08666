"""Layers and containers with PyTorch's names, parameters and default initialisation."""
from .activation import Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleList, Sequential
from .conv import Conv2d
from .linear import Flatten, Identity, Linear
from .module import Module, Parameter
from .norm import BatchNorm1d, BatchNorm2d, LocalResponseNorm
from .pool import AdaptiveAvgPool2d, AvgPool2d, GlobalAvgPool2d, GlobalMaxPool2d, MaxPool2d
