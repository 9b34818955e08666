"""Optimizers with per-parameter step sizes.

RMSprop (Hinton, lecture 6e, 2012): s = a s + (1 - a) g^2;  p -= lr g / (sqrt(s) + eps).
Adam (Kingma and Ba 2015): m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
    p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
AdamW (Loshchilov and Hutter 2019): Adam with decoupled weight decay p -= lr wd p.
"""
import math

from ..backend import xp_of
from .optimizer import Optimizer, check_hyper


class RMSprop(Optimizer):
    STATE_ARRAYS = ("square_avg", "momentum_buffer", "grad_avg")
    STATE_COUNTERS = ("step",)

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def check_group(self, group):
        for name in ("lr", "eps", "weight_decay", "momentum"):
            check_hyper("RMSprop", name, group[name])
        check_hyper("RMSprop", "alpha", group["alpha"], high=1.0)
        if not isinstance(group["centered"], bool):
            raise TypeError(f"RMSprop: centered must be True or False, got {group['centered']!r}")

    def required_state(self, group):
        return ("step", "square_avg") + ("momentum_buffer",) * bool(group["momentum"]) + \
            ("grad_avg",) * group["centered"]

    def update(self, group, p, g, state):
        xp = xp_of(g)
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        a = group["alpha"]
        state.setdefault("step", 0)
        for name in self.required_state(group)[1:]:  # zeros before the first step (or a newly switched-on option)
            if name not in state:
                state[name] = xp.zeros_like(p.data)
        state["step"] += 1
        sq = state["square_avg"]
        sq *= a
        sq += (1 - a) * g * g
        if group["centered"]:
            ga = state["grad_avg"]
            ga *= a
            ga += (1 - a) * g
            avg = xp.sqrt(sq - ga * ga) + group["eps"]
        else:
            avg = xp.sqrt(sq) + group["eps"]
        if group["momentum"]:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += g / avg
            p.data -= group["lr"] * buf
        else:
            p.data -= group["lr"] * g / avg


class Adam(Optimizer):
    decoupled = False
    STATE_ARRAYS = ("exp_avg", "exp_avg_sq")
    STATE_COUNTERS = ("step",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def check_group(self, group):
        name = type(self).__name__
        for key in ("lr", "eps", "weight_decay"):
            check_hyper(name, key, group[key])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name}: betas must be a pair of numbers, got {betas!r}")
        for b in betas:
            check_hyper(name, "each of betas", b, high=1.0, high_open=True)
        group["betas"] = tuple(betas)

    def required_state(self, group):
        return ("step", "exp_avg", "exp_avg_sq")

    def update(self, group, p, g, state):
        xp = xp_of(g)
        lr, (b1, b2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if weight_decay and self.decoupled:
            p.data *= 1 - lr * weight_decay
        elif weight_decay:
            g = g + weight_decay * p.data
        if not state:
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        denom = xp.sqrt(v) / math.sqrt(1 - b2**t) + group["eps"]
        p.data -= (lr / (1 - b1**t)) * m / denom


class AdamW(Adam):
    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
