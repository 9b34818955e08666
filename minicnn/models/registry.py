"""The model registry: `create(name, num_classes=1000, **kw)`, `list_models()`, and each model's task
("classification", or "detection" for the detectors, which take boxes and return them)."""
import numbers
import os

from ..torch_checkpoint import load_torch_checkpoint, state_dict_from

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
    if not isinstance(name, str):
        raise TypeError(f"models: a model's name is a str, got {type(name).__name__}")
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
    """The model `name` (or an alias) for `num_classes` classes, other arguments passed on. num_classes None: the
    model's own default, that of the data set it is made for (1000 for the ImageNet networks, 10 for LeNet-5, the
    CIFAR networks and the detectors).
    weights: the path of a PyTorch checkpoint (.pth/.pt, or .safetensors) with torchvision's names, e.g.
    create("resnet18", weights="resnet18-f37072fd.pth"), read without PyTorch; num_classes is then taken from the
    checkpoint's classifier when None, and must agree with it otherwise (build_with_weights).
    """
    if not isinstance(name, str):
        raise TypeError(f"create: name must be a str (see models.list_models()), got {type(name).__name__}")
    build = _MODELS[canonical_name(name)]
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral)
                                    or num_classes < 1):
        raise ValueError(f"create: num_classes must be None or a positive int, got {num_classes!r}")
    num_classes = None if num_classes is None else int(num_classes)
    if weights is not None and not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"create: weights must be the path of a checkpoint file, got {type(weights).__name__} (a "
                        "state_dict goes to model.load_state_dict)")
    if weights is None:
        return build(**kw) if num_classes is None else build(num_classes=num_classes, **kw)
    return build_with_weights(lambda n: build(num_classes=n, **kw), weights, num_classes, name)


def _classifier(model, state, num_classes):
    """(key, classes in the checkpoint) of the model's last Linear layer with num_classes outputs (the classifier;
    a hidden layer may have as many), or None when the model or the checkpoint has none."""
    found = None
    for name, module in model.named_modules():
        key = f"{name}.weight" if name else "weight"
        if getattr(module, "out_features", None) == num_classes and key in state and state[key].ndim == 2:
            found = key, state[key].shape[0]
    return found


def _few(keys):
    return ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")


def build_with_weights(build, path, num_classes=None, name="model"):
    """`build(num_classes)` a model and load the PyTorch checkpoint at `path` into it (read by
    minicnn.torch_checkpoint): what create(name, weights=path) does.

    num_classes: when None it is read from the checkpoint's classifier (the last Linear layer of the model with
    as many outputs as classes: fc.weight, classifier.6.weight, ...); when given it must agree with it.
    num_batches_tracked buffers are loaded when the checkpoint has them (torchvision's files do) and keep the
    model's value when it has not (files from PyTorch before 0.4.1). Any other missing or unexpected key, or a
    shape that differs from the model's, is a ValueError naming the keys (and the two shapes).
    """
    where = f"create({name!r}, weights='{path}')"
    state = dict(state_dict_from(load_torch_checkpoint(path)))
    # a first guess, to build once: the rows of the last matrix (torchvision's classifiers come last)
    built = num_classes if num_classes is not None else \
        next((v.shape[0] for k, v in reversed(state.items()) if v.ndim == 2 and k.endswith("weight")), 1000)
    model = build(built)
    classifier = _classifier(model, state, built)
    if classifier is not None and classifier[1] != built:
        key, classes = classifier
        if num_classes is not None:
            raise ValueError(f"{where}: the checkpoint's classifier {key!r} has {classes} classes, but "
                             f"num_classes={num_classes}; leave num_classes out to take the checkpoint's")
        model = build(classes)
    own = model.state_dict()
    state.update({k: v for k, v in own.items() if k.endswith("num_batches_tracked") and k not in state})
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"{where}: the checkpoint does not fit the model: {len(missing)} keys missing "
                         f"({_few(missing)}), {len(unexpected)} unexpected ({_few(unexpected)})")
    for key, value in own.items():
        if state[key].shape != value.shape:
            raise ValueError(f"{where}: {key!r} has shape {state[key].shape} in the checkpoint, but the model "
                             f"expects {value.shape}")
    model.load_state_dict(state, strict=True)
    return model
