"""Fused optimizer updates: one pass over each parameter instead of one NumPy pass per term of the rule. The kernel
sees flat arrays, whatever the parameter's shape, so it compiles once per dtype."""
from numba import prange

from ._jit import cpu_kernel


def sgd_step(p, grad, buf, lr, weight_decay, momentum, keep, nesterov, first):
    """SGD in place, PyTorch's rule term by term in p's dtype (the scalars too): d = g + wd p; with momentum,
    b = d at the first step, else b = mu b + keep d (keep = 1 - dampening), and d = d + mu b (Nesterov) or b;
    p -= lr d. p, grad and buf are C-contiguous arrays of one shape (buf is unused, and may be empty, without
    momentum), updated through flat views."""
    if not (p.flags.c_contiguous and grad.flags.c_contiguous and buf.flags.c_contiguous):
        raise ValueError("sgd_step: expected C-contiguous parameter, gradient and momentum arrays")
    _sgd(p.reshape(-1), grad.reshape(-1), buf.reshape(-1), lr, weight_decay, momentum, keep, nesterov, first)


@cpu_kernel()
def _sgd(pf, gf, bf, lr, weight_decay, momentum, keep, nesterov, first):
    for i in prange(pf.size):
        d = gf[i] + weight_decay * pf[i] if weight_decay != 0 else gf[i]
        if momentum != 0:
            b = d if first else momentum * bf[i] + keep * d
            bf[i] = b
            d = d + momentum * b if nesterov else b
        pf[i] -= lr * d
