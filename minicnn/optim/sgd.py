"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch's rule):
d = g + wd p;  b = mu b + (1 - dampening) d  (b = d at the first step);  p -= lr (d + mu b if nesterov else b)."""
from ..backend import xp_of
from ..functional._utils import check_float, kernels_for
from .optimizer import Optimizer, check_hyper


class SGD(Optimizer):
    STATE_ARRAYS = ("momentum_buffer",)  # absent until the first step with momentum

    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def check_group(self, group):
        for name in ("lr", "momentum", "weight_decay"):
            check_hyper("SGD", name, group[name])
        check_hyper("SGD", "dampening", group["dampening"], high=1.0)
        if not isinstance(group["nesterov"], bool):
            raise TypeError(f"SGD: nesterov must be True or False, got {group['nesterov']!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")

    def update(self, group, p, grad, state):
        """One fused kernel pass per parameter (kernels_cpu/optim.py, kernels/optim.cu), in p's dtype."""
        check_float("SGD.step", p.data)
        xp, t = xp_of(p.data), p.data.dtype.type
        if not p.data.flags.c_contiguous:
            p.data = xp.ascontiguousarray(p.data)
        mu = group["momentum"]
        first = mu != 0 and "momentum_buffer" not in state
        if first:
            state["momentum_buffer"] = xp.empty_like(p.data)
        buf = state["momentum_buffer"] if mu != 0 else xp.empty(0, p.data.dtype)
        kernels_for(p.data).sgd_step(p.data, xp.ascontiguousarray(grad, dtype=p.data.dtype), buf, t(group["lr"]),
                                     t(group["weight_decay"]), t(mu), t(1 - group["dampening"]), group["nesterov"],
                                     first)
