"""The model registry: `create(name, num_classes=1000, **kw)`, `list_models()`, and each model's task
("classification", or "detection" for the detectors, which take boxes and return them)."""
_MODELS = {}
_ALIASES = {}
_TASKS = {}


def register(name, *aliases, task="classification"):
    def deco(fn):
        _MODELS[name] = fn
        _TASKS[name] = task
        for a in aliases:
            _ALIASES[a] = name
        return fn
    return deco


def canonical_name(name):
    """The registered name for a name or alias; a ValueError listing the choices otherwise."""
    name = _ALIASES.get(name, name)
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(list_models())}")
    return name


def list_models():
    return sorted(_MODELS)


def task_of(name):
    """"classification" or "detection": what the model (a name or alias) is trained for."""
    return _TASKS[canonical_name(name)]


def create(name, num_classes=None, weights=None, **kw):
    """The model `name` (or an alias) for `num_classes` classes (1000 when None), other arguments passed on.
    weights: the path of a PyTorch checkpoint (.pth/.pt, or .safetensors) with torchvision's names, e.g.
    create("resnet18", weights="resnet18-f37072fd.pth"), read without PyTorch; num_classes is then taken from the
    checkpoint's classifier when None, and must agree with it otherwise (minicnn.torch_checkpoint.build_with_weights).
    """
    build = _MODELS[canonical_name(name)]
    if weights is None:
        return build(num_classes=1000 if num_classes is None else num_classes, **kw)
    from ..torch_checkpoint import build_with_weights
    return build_with_weights(lambda n: build(num_classes=n, **kw), weights, num_classes, name)
