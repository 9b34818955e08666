"""The (leaky) ReLU, forward and backward, in one parallel pass each (NumPy needs two: a mask, then a product).
`slope` comes in the array's dtype. With slope 0 the negative side is exactly 0, also for -inf inputs and infinite
gradients (a product with 0 would give NaN there; PyTorch gives 0). The kernels see flat arrays, whatever the
tensor's shape, so each compiles once per dtype."""
import numpy as np
from numba import prange

from ._jit import cpu_kernel


def leaky_relu_forward(x, slope):
    """y = slope * x where x <= 0, else x (so a NaN passes through, as in PyTorch)."""
    return _leaky_relu(np.ascontiguousarray(x).reshape(-1), slope).reshape(x.shape)


def leaky_relu_backward(grad_y, x, slope):
    """grad_x = slope * grad_y where x <= 0 (at 0 too, like PyTorch), else grad_y."""
    flat = np.ascontiguousarray(grad_y).reshape(-1), np.ascontiguousarray(x).reshape(-1)
    return _leaky_relu_grad(*flat, slope).reshape(x.shape)


@cpu_kernel()
def _leaky_relu(xf, slope):
    y = np.empty_like(xf)
    for i in prange(xf.size):
        v = xf[i]
        y[i] = (v * slope if slope != 0 else 0) if v <= 0 else v
    return y


@cpu_kernel()
def _leaky_relu_grad(gf, xf, slope):
    grad_x = np.empty_like(gf)
    for i in prange(gf.size):
        grad_x[i] = (gf[i] * slope if slope != 0 else 0) if xf[i] <= 0 else gf[i]
    return grad_x
