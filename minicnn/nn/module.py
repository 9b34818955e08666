"""Module: the base class of every layer and model, with automatic registration of parameters, buffers and
submodules (assign them as attributes), state_dict with PyTorch's key names, and device/dtype moves."""
from collections import OrderedDict

import numpy as np

from .. import backend
from ..autograd import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires_grad=True by default)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"


class _HookHandle:
    """What register_forward_hook and register_forward_pre_hook return: remove() detaches the hook (once is enough,
    twice is harmless)."""

    def __init__(self, hooks, hook):
        self._hooks, self._key = hooks, object()
        hooks[self._key] = hook

    def remove(self):
        self._hooks.pop(self._key, None)


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})

    # --- registration ----------------------------------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if name in self._buffers and (value is None or isinstance(value, Tensor)) and not isinstance(value, Parameter):
            self._buffers[name] = value
            return
        for store in (self._parameters, self._buffers, self._modules, self.__dict__):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for store in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(store)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor):
        """A non-learnable state tensor saved in state_dict (BatchNorm's running statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor if tensor is None or isinstance(tensor, Tensor) else Tensor(tensor)

    def register_parameter(self, name, param):
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def add_module(self, name, module):
        self._modules[name] = module

    # --- traversal -------------------------------------------------------------------------------------------------
    def named_modules(self, prefix=""):
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            yield name, mod
            children = [(f"{name}.{n}" if name else n, m) for n, m in mod._modules.items() if m is not None]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named(self, store):
        seen = set()
        for mod_name, mod in self.named_modules():
            for name, t in getattr(mod, store).items():
                if t is None or id(t) in seen:
                    continue
                seen.add(id(t))
                yield (f"{mod_name}.{name}" if mod_name else name), t

    def named_parameters(self):
        return self._named("_parameters")

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self):
        return self._named("_buffers")

    def buffers(self):
        return (b for _, b in self.named_buffers())

    # --- modes, gradients, devices ---------------------------------------------------------------------------------
    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def to(self, device=None, dtype=None):
        """Move every parameter and buffer (in place, so optimizers keep their references) to a device and/or cast
        the floating-point ones to a dtype."""
        if dtype is not None and np.dtype(dtype).kind != "f":
            raise ValueError(f"{type(self).__name__}.to: dtype must be a floating-point dtype, got {np.dtype(dtype)}")
        if device is not None:
            backend.Device(device)  # a malformed device is an error before anything moves
        for t in list(self.parameters()) + list(self.buffers()):
            data = t.data
            if dtype is not None and data.dtype.kind == "f":
                data = data.astype(dtype)
            if device is not None:
                data = backend.to_device(data, device)
            t.data = data
            if t.grad is not None:
                t.grad = Tensor(backend.to_device(t.grad.data.astype(data.dtype), backend.device_of(data)))
        return self

    def float(self):
        return self.to(dtype=np.float32)

    def double(self):
        return self.to(dtype=np.float64)

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    # --- state -----------------------------------------------------------------------------------------------------
    def state_dict(self):
        """An ordered mapping from PyTorch-style names (`features.0.weight`, `bn1.running_mean`) to host NumPy
        copies of every parameter and buffer."""
        out = OrderedDict()
        for mod_name, mod in self.named_modules():
            for store in (mod._parameters, mod._buffers):
                for name, t in store.items():
                    if t is not None:
                        out[f"{mod_name}.{name}" if mod_name else name] = np.array(t.numpy(), copy=True)
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copy values into the existing parameters and buffers, keeping their dtype and device. With strict=True,
        missing or unexpected keys are an error; a wrong shape always is. Returns (missing, unexpected)."""
        own = OrderedDict()
        for mod_name, mod in self.named_modules():
            for store in (mod._parameters, mod._buffers):
                for name, t in store.items():
                    if t is not None:
                        own[f"{mod_name}.{name}" if mod_name else name] = t
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, t in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = np.asarray(value.numpy() if isinstance(value, Tensor) else value)
            if value.dtype.kind not in "biuf":
                raise ValueError(f"load_state_dict: '{key}' holds {value.dtype} values, expected numbers")
            if tuple(value.shape) != t.shape:
                raise ValueError(f"load_state_dict: '{key}' has shape {tuple(value.shape)} in the state dict, "
                                 f"but {t.shape} in the model")
            t.data = backend.to_device(value.astype(t.dtype, copy=True), t.device)
        return missing, unexpected

    # --- calling and printing --------------------------------------------------------------------------------------
    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def __call__(self, *args, **kwargs):
        if not (self._forward_pre_hooks or self._forward_hooks):
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_pre_hook(self, hook):
        """Call hook(module, args) before every forward (args: the positional arguments, a tuple); a result other
        than None replaces them (a tuple, or one value that becomes a 1-tuple). Returns a handle whose remove()
        detaches the hook."""
        return _HookHandle(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook):
        """Call hook(module, inputs, output) after every forward; returns a handle whose remove() detaches it."""
        return _HookHandle(self._forward_hooks, hook)

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"{type(self).__name__}({self.extra_repr()}" + ("" if self._modules else ")")]
        if self._modules:
            for name, mod in self.named_children():
                child = repr(mod).replace("\n", "\n  ")
                lines.append(f"  ({name}): {child}")
            lines.append(")")
        return "\n".join(lines)
