"""The model zoo: `create(name, num_classes=1000, **kw)`, `list_models()`, and a function per model."""
from .lenet import LeNet5, lenet5
from .registry import canonical_name, create, list_models, register
