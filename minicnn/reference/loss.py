"""Softmax cross-entropy with label smoothing, written to be read.

For logits x (N, C) and labels y, with log p = log softmax(x) computed stably as x - lse, lse the row's
log-sum-exp (max + log sum exp(x - max)), and the target distribution q = (1 - eps) onehot(y) + eps / C (label
smoothing, Szegedy et al. 2016):

    loss_n = -sum_c q_nc log p_nc = -(1 - eps) log p_{n, y_n} - eps mean_c log p_nc
    grad_x = (softmax(x) - q) grad_loss / N      for the mean loss, with grad_loss its incoming gradient

The smoothing term is only added when eps > 0: a logit of -inf has log p = -inf, and 0 times -inf would be NaN.
"""
from ..backend import xp_of


def cross_entropy_forward(x, target, eps):
    """(loss per row, log-sum-exp per row) of logits x (N, C) against integer labels (N,)."""
    xp = xp_of(x)
    top = x.max(axis=1, keepdims=True)
    lse = top + xp.log(xp.exp(x - top).sum(axis=1, keepdims=True))
    log_p = x - lse
    loss = -(1 - eps) * log_p[xp.arange(len(x)), target]
    if eps:
        loss = loss - eps * log_p.mean(axis=1)
    return loss, lse[:, 0]


def cross_entropy_backward(x, target, lse, grad_loss, eps):
    """grad_x of the mean loss; grad_loss holds its incoming gradient (one element)."""
    xp = xp_of(x)
    n, c = x.shape
    grad = xp.exp(x - lse.reshape(-1, 1)) - eps / c
    grad[xp.arange(n), target] -= 1 - eps
    return grad * (grad_loss.reshape(()) / n)
