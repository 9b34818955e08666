"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay (PyTorch's rule):
d = g + wd p;  b = mu b + (1 - dampening) d  (b = d at the first step);  p -= lr (d + mu b if nesterov else b)."""
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
        d = grad + group["weight_decay"] * p.data if group["weight_decay"] else grad
        mu = group["momentum"]
        if mu:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= mu
                buf += d if group["dampening"] == 0 else (1 - group["dampening"]) * d  # no temporary when undamped
            d = d + mu * buf if group["nesterov"] else buf
        p.data -= group["lr"] * d
