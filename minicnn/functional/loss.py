"""Loss functions: softmax cross-entropy (with label smoothing), the multiclass SVM (hinge) loss and mean squared
error. Each returns the mean over the batch."""
import numpy as np

from ..autograd import Function, Tensor
from ..backend import is_gpu_array, xp_of
from ._utils import check_float, kernels_for


def _check_targets(name, scores, target, check_range=True):
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise ValueError(f"{name}: expected scores of shape (N, C) with C >= 1, got {tuple(scores.shape)}")
    check_float(name, scores, kernel=is_gpu_array(scores))
    if target.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer class labels, got dtype {target.dtype}")
    if target.shape != scores.shape[:1]:
        raise ValueError(f"{name}: expected {scores.shape[0]} labels of shape ({scores.shape[0]},), "
                         f"got shape {tuple(target.shape)}")
    if check_range and target.size and (int(target.min()) < 0 or int(target.max()) >= scores.shape[1]):
        raise ValueError(f"{name}: labels must lie in [0, {scores.shape[1]}), got values from "
                         f"{int(target.min())} to {int(target.max())}")


class CrossEntropy(Function):
    """mean_i -sum_c q_ic log softmax(x_i)_c with q = (1 - eps) onehot(y) + eps / C (Szegedy et al. 2016 for the
    smoothing); grad_x = (softmax(x) - q) / N. Saved for backward: x and each row's log-sum-exp. The readable
    version is reference/loss.py."""

    def __init__(self, target, label_smoothing):
        self.target, self.eps = target, label_smoothing

    def forward(self, x):
        if not isinstance(self.eps, (int, float)) or isinstance(self.eps, bool) or not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"cross_entropy: label_smoothing must lie in [0, 1], got {self.eps}")
        self.x = x
        rows, self.lse = kernels_for(x).cross_entropy_forward(x, self.target, self.eps)
        return rows.mean() if x.shape[0] else xp_of(x).asarray(float("nan"), dtype=x.dtype)

    def backward(self, grad_loss):
        return kernels_for(grad_loss).cross_entropy_backward(self.x, self.target, self.lse, grad_loss, self.eps)


class HingeLoss(Function):
    """Multiclass SVM loss (Weston and Watkins 1999; cs231n): mean_i sum_{j != y_i} max(0, s_j - s_y + margin)."""

    def __init__(self, target, margin):
        self.target, self.margin = target, margin

    def forward(self, s):
        xp = xp_of(s)
        rows = xp.arange(s.shape[0])
        margins = s - s[rows, self.target][:, None] + s.dtype.type(self.margin)
        margins[rows, self.target] = 0
        self.active = (margins > 0).astype(s.dtype)
        return xp.maximum(margins, 0).sum(axis=1).mean()

    def backward(self, g):
        xp = xp_of(g)
        n = self.active.shape[0]
        grad = self.active.copy()
        grad[xp.arange(n), self.target] = -self.active.sum(axis=1)
        return grad * (g / n)


def _labels(name, target, scores, range_check_on_device=True):
    """The labels as an array on the scores' device, checked first. Checking the range of labels that are already
    on the GPU would wait for the device; cross_entropy skips that (its kernel gives a NaN loss for a label out of
    range, which the training loop reports), so a training step never synchronises."""
    data = target.data if isinstance(target, Tensor) else target
    data = data if is_gpu_array(data) else np.asarray(data)
    _check_targets(name, scores.data, data, check_range=range_check_on_device or not is_gpu_array(data))
    return xp_of(scores.data).asarray(data)


def _tensor(v):
    return v if isinstance(v, Tensor) else Tensor(v)


def cross_entropy(logits, target, label_smoothing=0.0):
    """Mean softmax cross-entropy of (N, C) logits against integer labels (N,)."""
    logits = _tensor(logits)
    return CrossEntropy.apply(logits, target=_labels("cross_entropy", target, logits, range_check_on_device=False),
                              label_smoothing=label_smoothing)


def hinge_loss(scores, target, margin=1.0):
    if not isinstance(margin, (int, float)) or isinstance(margin, bool):
        raise TypeError(f"hinge_loss: margin must be a number, got {margin!r}")
    scores = _tensor(scores)
    return HingeLoss.apply(scores, target=_labels("hinge_loss", target, scores), margin=margin)


def mse_loss(input, target):
    """mean((input - target)^2)."""
    input = _tensor(input)
    check_float("mse_loss", input.data, kernel=False)
    t = target if isinstance(target, Tensor) else Tensor(xp_of(input.data).asarray(target, dtype=input.dtype))
    if input.shape != t.shape:
        raise ValueError(f"mse_loss: input and target must have one shape, got {input.shape} and {t.shape}")
    return ((input - t) ** 2).mean()
