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


def create(name, num_classes=1000, **kw):
    return _MODELS[canonical_name(name)](num_classes=num_classes, **kw)
