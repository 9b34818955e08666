"""Solutions to examples/11_exercises.ipynb, in the notebook's order: one function (or class) per skeleton, with the
skeleton's name and signature, so that the notebook can put each in its skeleton's place.

Notation as in minicnn/geometry.py: x (N, C, H, W), w (K, C, KH, KW), b (K,), y (N, K, OH, OW) with
OH = (H + 2 pad - KH) // stride + 1. Gradients are named after what they are the gradient of (grad_x, ...).

The convolution and pooling here loop over output pixels on purpose: each line is the formula of one output, which
is what a student writes first. minicnn's own ops (reference/conv.py, reference/pool.py) loop over the KH x KW
kernel taps instead, each a strided slice of the whole batch, which is the same arithmetic and much faster.
"""
import numpy as np

from minicnn import nn


def _out_size(n, k, stride, pad):
    return (n + 2 * pad - k) // stride + 1


def _pad(x, pad):
    return np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))


# --- 1. convolution, one output pixel at a time -----------------------------------------------------------------------

def conv_forward_naive(x, w, b, stride=1, pad=0):
    """y[n, k, i, j] = b[k] + sum over c, r, s of w[k, c, r, s] x_padded[n, c, i stride + r, j stride + s]."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _out_size(H, KH, stride, pad), _out_size(W, KW, stride, pad)
    xp = _pad(x, pad)
    y = np.empty((N, K, OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            window = xp[:, :, i * stride:i * stride + KH, j * stride:j * stride + KW]    # (N, C, KH, KW)
            y[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b      # (N, K)
    return y


def conv_backward_naive(grad_y, x, w, stride=1, pad=0):
    """(grad_x, grad_w, grad_b). Output (i, j) read window(i, j) with every filter, so its gradient flows back
    along the same products: grad_w[k] += grad_y[n, k, i, j] window, grad_window += grad_y[n, k, i, j] w[k];
    grad_b[k] is the sum of grad_y[:, k] (the bias was added to every output of channel k)."""
    N, C, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = grad_y.shape[2:]
    xp = _pad(x, pad)
    grad_xp, grad_w = np.zeros_like(xp), np.zeros_like(w)
    for i in range(OH):
        for j in range(OW):
            rows, cols = slice(i * stride, i * stride + KH), slice(j * stride, j * stride + KW)
            g = grad_y[:, :, i, j]                                                       # (N, K)
            grad_w += np.tensordot(g, xp[:, :, rows, cols], axes=([0], [0]))              # (K, C, KH, KW)
            grad_xp[:, :, rows, cols] += np.tensordot(g, w, axes=([1], [0]))              # (N, C, KH, KW)
    grad_b = grad_y.sum(axis=(0, 2, 3))
    return grad_xp[:, :, pad:pad + H, pad:pad + W], grad_w, grad_b


# --- 2. im2col: the convolution as one matrix product -----------------------------------------------------------------

def im2col(x, kh, kw, stride=1, pad=0):
    """cols[(c, r, s), (n, i, j)] = x_padded[n, c, i stride + r, j stride + s], shape (C KH KW, N OH OW).
    One strided slice of the padded batch per kernel tap (r, s): KH KW slices, no loop over pixels."""
    N, C, H, W = x.shape
    OH, OW = _out_size(H, kh, stride, pad), _out_size(W, kw, stride, pad)
    xp = _pad(x, pad)
    cols = np.empty((C, kh, kw, N, OH, OW), dtype=x.dtype)
    for r in range(kh):
        for s in range(kw):
            tap = xp[:, :, r:r + stride * (OH - 1) + 1:stride, s:s + stride * (OW - 1) + 1:stride]  # (N, C, OH, OW)
            cols[:, r, s] = tap.transpose(1, 0, 2, 3)
    return cols.reshape(C * kh * kw, N * OH * OW)


def conv_forward_im2col(x, w, b, stride=1, pad=0):
    """Y = W cols + b: the (K, C KH KW) weight matrix times the (C KH KW, N OH OW) columns, reshaped to NCHW."""
    N, _, H, W = x.shape
    K, _, KH, KW = w.shape
    OH, OW = _out_size(H, KH, stride, pad), _out_size(W, KW, stride, pad)
    Y = w.reshape(K, -1) @ im2col(x, KH, KW, stride, pad) + b.reshape(K, 1)               # (K, N OH OW)
    return Y.reshape(K, N, OH, OW).transpose(1, 0, 2, 3)


# --- 3. pooling -------------------------------------------------------------------------------------------------------

def _windows(x, size, stride):
    """(OH, OW, and a function giving window (i, j) of x as (N, C, size, size))."""
    OH, OW = _out_size(x.shape[2], size, stride, 0), _out_size(x.shape[3], size, stride, 0)
    return OH, OW, lambda a, i, j: a[:, :, i * stride:i * stride + size, j * stride:j * stride + size]


def max_pool_forward(x, size=2, stride=2):
    """y[n, c, i, j] = the largest value of window (i, j)."""
    OH, OW, window = _windows(x, size, stride)
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            y[:, :, i, j] = window(x, i, j).max(axis=(2, 3))
    return y


def max_pool_backward(grad_y, x, size=2, stride=2):
    """Each window's gradient goes to the pixel that won it (the first maximum, as minicnn and PyTorch choose);
    a pixel that wins several overlapping windows receives the sum."""
    N, C = x.shape[:2]
    OH, OW, window = _windows(x, size, stride)
    grad_x = np.zeros_like(x)
    for i in range(OH):
        for j in range(OW):
            winner = window(x, i, j).reshape(N, C, -1).argmax(axis=2)                    # (N, C)
            chosen = np.arange(size * size) == winner[:, :, None]                          # (N, C, size size)
            window(grad_x, i, j)[...] += (chosen * grad_y[:, :, i, j, None]).reshape(N, C, size, size)
    return grad_x


def avg_pool_forward(x, size=2, stride=2):
    """y[n, c, i, j] = the mean of window (i, j)."""
    OH, OW, window = _windows(x, size, stride)
    y = np.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
    for i in range(OH):
        for j in range(OW):
            y[:, :, i, j] = window(x, i, j).mean(axis=(2, 3))
    return y


def avg_pool_backward(grad_y, x, size=2, stride=2):
    """Each window's gradient is shared equally by its size * size pixels (x gives only the shape)."""
    OH, OW, window = _windows(x, size, stride)
    grad_x = np.zeros_like(x)
    for i in range(OH):
        for j in range(OW):
            window(grad_x, i, j)[...] += grad_y[:, :, i, j, None, None] / (size * size)
    return grad_x


# --- 4. a residual block (He et al. 2016) -----------------------------------------------------------------------------

class ResidualBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)): two 3x3 convolutions (the first with the stride), the
    shortcut the identity, or a 1x1 convolution + batch norm ("projection") when the stride or the number of
    channels changes the shape. Names as torchvision's BasicBlock, so its state_dict loads here."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


# --- questions --------------------------------------------------------------------------------------------------------

def inception_cost(h, w, cin, n1x1, n3x3red, n3x3, n5x5red, n5x5, pool_proj):
    """(weights, multiply-accumulates) of one Inception module on an h x w x cin input, biases left out as in the
    paper's table. Every branch keeps the h x w resolution, so each weight is used once per output pixel:
    MACs = weights * h * w."""
    weights = (cin * n1x1                                   # 1x1 branch
               + cin * n3x3red + n3x3red * n3x3 * 3 * 3     # 1x1 reduce, then 3x3
               + cin * n5x5red + n5x5red * n5x5 * 5 * 5     # 1x1 reduce, then 5x5
               + cin * pool_proj)                           # 3x3 max pool (no weights), then 1x1 projection
    return weights, weights * h * w


def initial_loss(num_classes):
    """A fresh network's logits are small and alike, so softmax gives every class about 1/C and the cross-entropy
    -log(1/C) = log C."""
    return float(np.log(num_classes))
