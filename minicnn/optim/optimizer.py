"""Optimizer base: parameter groups, per-parameter state, state_dict in PyTorch's shape.

Every array an update reads is checked here first, at the Python boundary: a parameter's gradient against the
parameter (shape, device, floating dtype) in `step`, and every state array of a loaded state_dict against its
parameter in `load_state_dict`. The updates run fused kernels without bounds checks, so a wrong shape reaching
them would corrupt memory instead of raising.
"""
import math

import numpy as np

from .. import backend
from ..autograd import Tensor, no_grad


def check_hyper(opt, name, value, low=0.0, high=math.inf, high_open=False):
    """A hyper-parameter: a real number in [low, high] (or [low, high) with high_open)."""
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
        raise TypeError(f"{opt}: {name} must be a number, got {value!r}")
    if not (low <= value < high if high_open else low <= value <= high):
        bounds = f"[{low}, {high})" if high_open else f"[{low}, {high}]"
        raise ValueError(f"{opt}: {name} must lie in {bounds}, got {value!r}")


class Optimizer:
    """Subclasses define `update(group, p, grad, state)`, `check_group(group)` (the hyper-parameters of one group),
    STATE_ARRAYS and STATE_COUNTERS (the names a parameter's state may hold: arrays of its shape, integer counters)
    and `required_state(group)` (the names it must hold once it has taken a step)."""

    STATE_ARRAYS = ()
    STATE_COUNTERS = ()

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params must be an iterable of Tensors or of dicts, got a single Tensor")
        params = list(params)
        if not params:
            raise ValueError(f"{name}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        seen = set()
        for g in groups:
            if not isinstance(g, dict) or "params" not in g:
                raise TypeError(f"{name}: parameter groups must be dicts with a 'params' entry, got {g!r}")
            group = dict(defaults, **g)
            group["params"] = [group["params"]] if isinstance(group["params"], Tensor) else list(group["params"])
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise ValueError(f"{name}: every parameter must be a Tensor that requires grad")
                if id(p) in seen:
                    raise ValueError(f"{name}: a parameter appears twice (it would be updated twice per step)")
                seen.add(id(p))
            self.check_group(group)
            self.param_groups.append(group)
        self.state = {}  # id(param) -> dict of arrays and counters

    def check_group(self, group):
        raise NotImplementedError

    def required_state(self, group):
        return ()

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def _params_with_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, self._checked_grad(p), self._state_of(p)

    def _state_of(self, p):
        """The state of p, its arrays on p's device and in p's dtype (the model may have moved since the last
        step: model.to("cuda") or .double()); an array of another shape is an error."""
        state = self.state.setdefault(id(p), {})
        for key in self.STATE_ARRAYS:
            v = state.get(key)
            if v is None:
                continue
            if tuple(v.shape) != p.shape:
                raise ValueError(f"{type(self).__name__}.step: state '{key}' has shape {tuple(v.shape)}, but its "
                                 f"parameter {p.shape}")
            if v.dtype != p.dtype or backend.device_of(v) != p.device:
                state[key] = backend.to_device(v, p.device).astype(p.dtype)
        return state

    def _checked_grad(self, p):
        """p's gradient, checked against p and in p's dtype."""
        g = p.grad.data if isinstance(p.grad, Tensor) else None
        if g is None or g.shape != p.data.shape or g.dtype.kind != "f" or backend.device_of(g) != p.device:
            raise ValueError(f"{type(self).__name__}.step: a parameter of shape {p.shape}, {p.dtype} on {p.device} "
                             f"has a .grad of {self._describe(p.grad)}; expected a floating-point gradient of its "
                             "shape on its device")
        return g if g.dtype == p.dtype else g.astype(p.dtype)

    @staticmethod
    def _describe(v):
        data = v.data if isinstance(v, Tensor) else v
        if not hasattr(data, "shape"):
            return type(v).__name__
        return f"shape {tuple(data.shape)}, {data.dtype} on {backend.device_of(data)}"

    @no_grad()
    def step(self):
        for group, p, grad, state in self._params_with_grad():
            self.update(group, p, grad, state)

    def update(self, group, p, grad, state):
        raise NotImplementedError

    def _all_params(self):
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self):
        """{'state': {index: {name: host array or number}}, 'param_groups': [{hyper-parameters, 'params': [index]}]}."""
        index = {id(p): i for i, p in enumerate(self._all_params())}
        state = {index[pid]: {k: (np.array(backend.to_device(v, "cpu")) if hasattr(v, "shape") else v)
                              for k, v in s.items()}
                 for pid, s in self.state.items() if pid in index}
        groups = [dict({k: v for k, v in g.items() if k != "params"}, params=[index[id(p)] for p in g["params"]])
                  for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Take the hyper-parameters and per-parameter state of `state_dict` (as `state_dict()` returns it). Every
        part is checked before anything changes: the groups must match this optimizer's, each state array must
        have its parameter's shape (it is cast to the parameter's dtype and device), each counter must be an
        integer >= 0."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{name}: expected a dict with 'state' and 'param_groups', got "
                             f"{type(state_dict).__name__}")
        groups = state_dict["param_groups"]
        if not isinstance(groups, (list, tuple)) or len(groups) != len(self.param_groups) or any(
                not isinstance(g, dict) or len(g.get("params", ())) != len(own["params"])
                for g, own in zip(groups, self.param_groups)):
            raise ValueError(f"{name}: the saved parameter groups do not match this optimizer's")
        new_groups = [dict(own, **{k: v for k, v in g.items() if k != "params"})
                      for g, own in zip(groups, self.param_groups)]
        for group in new_groups:
            self.check_group(group)
        params = self._all_params()
        group_of = {id(p): g for g in new_groups for p in g["params"]}
        if not isinstance(state_dict["state"], dict):
            raise ValueError(f"{name}: 'state' must be a dict, got {type(state_dict['state']).__name__}")
        state = {}
        for i, s in state_dict["state"].items():
            try:
                p = params[int(i)]
            except (TypeError, ValueError, IndexError):
                raise ValueError(f"{name}: state for parameter {i!r}, but the optimizer has {len(params)} "
                                 "parameters") from None
            state[id(p)] = self._checked_state(name, i, p, group_of[id(p)], s)
        for g, new in zip(self.param_groups, new_groups):
            g.update(new)
        self.state = state

    def _checked_state(self, name, i, p, group, saved):
        if not isinstance(saved, dict):
            raise ValueError(f"{name}: the state of parameter {i} must be a dict, got {type(saved).__name__}")
        counters = self.STATE_COUNTERS
        unknown = set(saved) - set(self.STATE_ARRAYS) - set(counters)
        if unknown:
            raise ValueError(f"{name}: unknown state {sorted(unknown)} for parameter {i} (expected names among "
                             f"{sorted(set(self.STATE_ARRAYS) | set(counters))})")
        missing = set(self.required_state(group)) - set(saved)
        if saved and missing:
            raise ValueError(f"{name}: the state of parameter {i} lacks {sorted(missing)}")
        out = {}
        for key, value in saved.items():
            if key in counters:
                v = np.asarray(value.numpy() if isinstance(value, Tensor) else backend.to_device(value, "cpu")
                               if hasattr(value, "shape") else value)
                if v.shape != () or v.dtype.kind not in "iuf" or not np.isfinite(v) or v < 0 or v != int(v):
                    raise ValueError(f"{name}: state '{key}' of parameter {i} must be an integer >= 0, got {value!r}")
                out[key] = int(v)
                continue
            v = value.data if isinstance(value, Tensor) else value
            v = np.asarray(backend.to_device(v, "cpu") if hasattr(v, "shape") else v)
            if v.shape != p.shape or v.dtype.kind not in "iuf":
                raise ValueError(f"{name}: state '{key}' of parameter {i} has {self._describe(v)}, expected "
                                 f"numbers of the parameter's shape {p.shape}")
            out[key] = backend.to_device(np.array(v, dtype=p.dtype, order="C", copy=True), p.device)  # its own copy
        return out
