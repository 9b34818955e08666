"""Stochastic gradient descent, PyTorch's rule, written to be read. With weight decay wd, momentum mu, dampening
and Nesterov momentum (Sutskever et al. 2013):

    d = grad + wd p
    b = d at the first step, then b = mu b + (1 - dampening) d        (the momentum buffer)
    d = d + mu b with Nesterov momentum, else d = b                     (only with momentum)
    p = p - lr d
"""


def sgd_step(p, grad, buf, lr, weight_decay, momentum, keep, nesterov, first):
    """One step in place on p (and buf, the momentum buffer of p's shape; unused without momentum). keep is
    1 - dampening; the scalars come in p's dtype."""
    d = grad + weight_decay * p if weight_decay != 0 else grad
    if momentum != 0:
        buf[...] = d if first else momentum * buf + keep * d
        d = d + momentum * buf if nesterov else buf
    p -= lr * d
