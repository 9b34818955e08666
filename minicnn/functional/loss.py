"""Loss functions: softmax cross-entropy (with label smoothing), the multiclass SVM (hinge) loss and mean squared
error, each the mean over the batch; and the two losses of the detectors (Faster R-CNN's objectness and box
regression), binary cross-entropy on logits and the smooth L1 loss, with PyTorch's reductions ("mean", "sum",
"none")."""
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


REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _grad_scale(g, shape, reduction):
    """The incoming gradient of a reduced loss spread back over the elements: g / numel for "mean"."""
    size = int(np.prod(shape))
    return g / size if reduction == "mean" and size else g


class BinaryCrossEntropyWithLogits(Function):
    """l = -w [t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed without overflow as
    l = w [max(x, 0) - x t + log(1 + exp(-|x|))]; dl/dx = w (sigmoid(x) - t), dl/dt = -w x. Saved for backward:
    x, t and the weight."""

    def __init__(self, weight, reduction):
        self.weight, self.reduction = weight, reduction

    def forward(self, x, t):
        xp = xp_of(x)
        self.x, self.t = x, t
        loss = xp.maximum(x, 0) - x * t + xp.log1p(xp.exp(-xp.abs(x)))
        if self.weight is not None:
            loss = loss * self.weight
        return _reduce(loss, self.reduction)

    def backward(self, g):
        xp = xp_of(g)
        g = _grad_scale(g, self.x.shape, self.reduction)
        if self.weight is not None:
            g = g * self.weight
        e = xp.exp(-xp.abs(self.x))
        sig = xp.where(self.x >= 0, 1 / (1 + e), e / (1 + e))  # sigmoid(x), without overflow
        return (sig - self.t) * g, -self.x * g


class SmoothL1(Function):
    """Fast R-CNN's robust box loss (Girshick 2015, eq. 3), with PyTorch's beta: for d = x - t,
    l = 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0: the L1 loss |d|);
    dl/dx = d / beta where |d| < beta, else sign(d); dl/dt = -dl/dx. Saved for backward: d."""

    def __init__(self, beta, reduction):
        self.beta, self.reduction = beta, reduction

    def forward(self, x, t):
        xp = xp_of(x)
        self.d = x - t
        ad = xp.abs(self.d)
        if self.beta == 0:
            return _reduce(ad, self.reduction)
        return _reduce(xp.where(ad < self.beta, 0.5 * self.d * self.d / self.beta, ad - 0.5 * self.beta),
                       self.reduction)

    def backward(self, g):
        xp = xp_of(g)
        g = _grad_scale(g, self.d.shape, self.reduction)
        slope = xp.sign(self.d) if self.beta == 0 else xp.where(xp.abs(self.d) < self.beta, self.d / self.beta,
                                                                 xp.sign(self.d))
        grad = (slope * g).astype(self.d.dtype, copy=False)
        return grad, -grad


def _pointwise_inputs(name, input, target, reduction):
    """input as a floating Tensor and target as a Tensor of its shape, dtype and device; the reduction checked."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    input = _tensor(input)
    check_float(name, input.data, kernel=False)
    if not isinstance(target, Tensor):
        data = target if is_gpu_array(target) else np.asarray(target)
        if data.dtype.kind not in "biuf":
            raise ValueError(f"{name}: expected a numeric target, got dtype {data.dtype}")
        target = Tensor(xp_of(input.data).asarray(data, dtype=input.dtype))
    if target.shape != input.shape:
        raise ValueError(f"{name}: input and target must have one shape, got {input.shape} and {target.shape}")
    if target.dtype != input.dtype:
        target = target.to(dtype=input.dtype)
    return input, target


def binary_cross_entropy_with_logits(input, target, weight=None, reduction="mean"):
    """Binary cross-entropy of logits `input` against targets in [0, 1] of the same shape (torch's
    binary_cross_entropy_with_logits without pos_weight): the sigmoid and the log fused, stable for any logit.
    weight (broadcast against the input) scales each element's loss; reduction "mean", "sum" or "none".

        >>> binary_cross_entropy_with_logits(mc.tensor([0.0, -1000.0]), [1.0, 0.0], reduction="none").numpy()
        array([0.6931472, 0.       ], dtype=float32)
    """
    name = "binary_cross_entropy_with_logits"
    input, target = _pointwise_inputs(name, input, target, reduction)
    if weight is not None:
        w = weight.data if isinstance(weight, Tensor) else weight
        w = xp_of(input.data).asarray(w, dtype=input.dtype)
        try:
            fits = np.broadcast_shapes(w.shape, input.shape) == input.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name}: weight of shape {tuple(w.shape)} does not broadcast to the input's "
                             f"{input.shape}")
        weight = w
    return BinaryCrossEntropyWithLogits.apply(input, target, weight=weight, reduction=reduction)


def smooth_l1_loss(input, target, beta=1.0, reduction="mean"):
    """Smooth L1 (Huber-like) loss of input against target (torch's smooth_l1_loss): quadratic for |x - t| < beta,
    linear beyond, so a box far from its target pulls with a bounded gradient. Faster R-CNN uses beta = 1/9.

        >>> smooth_l1_loss(mc.tensor([0.5, 3.0]), [0.0, 0.0], reduction="none").numpy()
        array([0.125, 2.5  ], dtype=float32)
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or not beta >= 0:
        raise ValueError(f"smooth_l1_loss: beta must be a number >= 0, got {beta!r}")
    input, target = _pointwise_inputs("smooth_l1_loss", input, target, reduction)
    return SmoothL1.apply(input, target, beta=float(beta), reduction=reduction)
