"""Layers and containers with PyTorch's names, parameters and default initialisation."""
from .activation import Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .container import ModuleList, Sequential
from .linear import Flatten, Identity, Linear
from .module import Module, Parameter
