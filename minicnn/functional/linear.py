"""Fully connected layer: y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch."""
import numpy as np

from ..autograd import Function
from ._utils import check_float


class Linear(Function):
    """grad_x = grad_y W, grad_W = grad_y^T x, grad_b = sum of grad_y over the batch. Saved for backward: x and W.
    Plain NumPy (or CuPy): one matrix product each way, with nothing faster to choose."""

    def forward(self, x, w, b=None):
        check_float("linear", x, kernel=False)
        check_float("linear", w, kernel=False)
        if w.ndim != 2 or x.ndim < 1 or x.shape[-1] != w.shape[1]:
            raise ValueError(f"linear: expected input (..., {w.shape[-1] if w.ndim else '?'}) for weight "
                             f"{tuple(w.shape)}, got input {tuple(x.shape)}")
        if b is not None and b.shape != (w.shape[0],):
            raise ValueError(f"linear: expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
        self.x, self.w, self.has_bias = x, w, b is not None
        y = x @ w.T
        return y + b if b is not None else y

    def backward(self, grad_y):
        rows = int(np.prod(grad_y.shape[:-1]))  # every leading axis as one (explicit: -1 fails on empty arrays)
        grad_y2 = grad_y.reshape(rows, grad_y.shape[-1])
        grad_x = grad_y @ self.w if self.needs_input_grad[0] else None
        grad_w = grad_y2.T @ self.x.reshape(rows, self.x.shape[-1]) if self.needs_input_grad[1] else None
        if not self.has_bias:
            return grad_x, grad_w
        return grad_x, grad_w, (grad_y2.sum(axis=0) if self.needs_input_grad[2] else None)


def linear(x, w, b=None):
    return Linear.apply(x, w) if b is None else Linear.apply(x, w, b)
