"""Optimizer base: parameter groups, per-parameter state, state_dict in PyTorch's shape."""
import numpy as np

from .. import backend
from ..autograd import Tensor, no_grad


class Optimizer:
    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups = []
        for g in groups:
            group = dict(defaults, **g)
            group["params"] = list(group["params"])
            for p in group["params"]:
                if not isinstance(p, Tensor) or not p.requires_grad:
                    raise ValueError(f"{type(self).__name__}: every parameter must be a Tensor that requires grad")
            self.param_groups.append(group)
        self.state = {}  # id(param) -> dict of arrays and counters

    def zero_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def _params_with_grad(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    yield group, p, p.grad.data, self.state.setdefault(id(p), {})

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
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(own["params"]) for g, own in zip(groups, self.param_groups)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved parameter groups do not match "
                             "this optimizer's")
        params = self._all_params()
        for g, own in zip(groups, self.param_groups):
            own.update({k: v for k, v in g.items() if k != "params"})
        self.state = {}
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            self.state[id(p)] = {k: (backend.to_device(np.asarray(v).astype(p.dtype), p.device)
                                     if hasattr(v, "shape") and np.ndim(v) else v) for k, v in s.items()}
