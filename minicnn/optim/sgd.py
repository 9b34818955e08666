"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch's rule):
d = g + wd p;  b = mu b + (1 - dampening) d  (b = d at the first step);  p -= lr (d + mu b if nesterov else b)."""
from ..backend import xp_of
from ..functional._utils import kernels_for
from .optimizer import Optimizer


class SGD(Optimizer):
    def __init__(self, params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def update(self, group, p, grad, state):
        """One fused kernel pass per parameter (kernels_cpu/optim.py, kernels/optim.cu), in p's dtype."""
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
