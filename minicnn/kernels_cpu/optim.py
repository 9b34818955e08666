"""Fused optimizer updates: one pass over each parameter instead of one NumPy pass per term of the rule."""
from numba import prange

from ._jit import cpu_kernel


@cpu_kernel()
def sgd_step(p, grad, buf, lr, weight_decay, momentum, keep, nesterov, first):
    """SGD in place, PyTorch's rule term by term in p's dtype (the scalars too): d = g + wd p; with momentum,
    b = d at the first step, else b = mu b + keep d (keep = 1 - dampening), and d = d + mu b (Nesterov) or b;
    p -= lr d. p, grad and buf are contiguous arrays of one shape (buf is unused, and may be empty, without
    momentum)."""
    pf, gf, bf = p.reshape(-1), grad.reshape(-1), buf.reshape(-1)
    for i in prange(pf.size):
        d = gf[i] + weight_decay * pf[i] if weight_decay != 0 else gf[i]
        if momentum != 0:
            b = d if first else momentum * bf[i] + keep * d
            bf[i] = b
            d = d + momentum * b if nesterov else b
        pf[i] -= lr * d
