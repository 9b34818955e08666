"""The model registry: `create(name, num_classes=1000, **kw)` and `list_models()`."""
_MODELS = {}
_ALIASES = {}


def register(name, *aliases):
    def deco(fn):
        _MODELS[name] = fn
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


def create(name, num_classes=1000, **kw):
    return _MODELS[canonical_name(name)](num_classes=num_classes, **kw)
