"""Optimizers (same update rules as PyTorch) and learning-rate schedulers."""
from . import lr_scheduler
from .adaptive import Adam, AdamW, RMSprop
from .optimizer import Optimizer
from .sgd import SGD
