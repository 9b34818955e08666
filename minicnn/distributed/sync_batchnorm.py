"""Synchronised batch normalisation: batch norm over the global batch, whose shards live on different ranks.

With plain BatchNorm each rank normalises its shard with the shard's own statistics, so N ranks with a global batch
B train like one process whose batch norm layers see groups of B/N images ("ghost" batch norm). SyncBatchNorm gives
every rank the statistics of the whole global batch, so N ranks compute what one process computes on B images.

Forward (Ioffe and Szegedy 2015; PyTorch's SyncBatchNorm): rank r has m_r values per channel with mean mu_r and
biased variance v_r. One allgather of (m_r, mu_r, v_r) and every rank combines them (Chan, Golub and LeVeque 1979):
    M = sum_r m_r,   mu = sum_r m_r mu_r / M,   var = sum_r m_r (v_r + (mu_r - mu)^2) / M,
which is the two-pass variance of the whole batch, with no cancellation. xhat = (x - mu) / sqrt(var + eps),
y = weight xhat + bias; the running statistics move as in BatchNorm, with the unbiased var M / (M - 1).

Backward. For one process with the M values of a channel (g = dL/dy):
    dx = weight / sqrt(var + eps) * (g - sum(g) / M - xhat * sum(g xhat) / M),
and the two sums run over the whole global batch: one allreduce of (sum g, sum g xhat), as PyTorch's SyncBatchNorm
does. minicnn's GradientReducer gives rank r's gradients the weight n_r / N (its share of the samples of the global
mean loss) after backward, so rank r's g is 1 / s_r times its part of the global gradient, s_r = m_r / M. The sums
are therefore taken as sum_r s_r (sum over rank r of g), and dx on rank r comes out as
    dx = weight / sqrt(var + eps) * (g - (A + xhat B) / m_r),   (A, B) = sum_r s_r (sum g, sum g xhat),
which is the full-batch gradient once weighted by s_r, also for shards of unequal size; with equal shards it is
PyTorch's formula. It is computed as BatchNorm's backward on the rank's own values (whose kernel works in float64,
so float32 keeps its precision where g is nearly cancelled) plus the affine correction from the local sums to A, B.
This assumes the loss is a mean over the samples and the images have one size on every rank.
The gradients of weight and bias are the local sums, which the GradientReducer adds up like any other.
"""
import numpy as np

from ..autograd import Function
from ..backend import xp_of
from ..functional._utils import kernels_for
from ..nn.norm import BatchNorm1d, BatchNorm2d, _BatchNorm
from .comm import world


class SyncBatchNormFunction(Function):
    """Training-mode batch norm of (N, C, ...) over the ranks of `comm`; saves x (as (N, C, L)) and the statistics."""

    def __init__(self, comm, running_mean, running_var, has_weight, has_bias, momentum, eps):
        self.comm, self.rm, self.rv = comm, running_mean, running_var
        self.has_weight, self.has_bias, self.momentum, self.eps = has_weight, has_bias, momentum, eps

    def forward(self, x, *affine):
        xp, kern = xp_of(x), kernels_for(x)
        c = x.shape[1]
        x3 = xp.ascontiguousarray(x).reshape(x.shape[0], c, -1)
        m = x3.shape[0] * x3.shape[2]
        empty = xp.empty(0, x.dtype)
        mean_r, var_r = kern.batch_norm_stats(x3, empty, empty, 0.0, False)
        stats = self.comm.allgather(xp.concatenate([xp.full(1, float(m)), mean_r, var_r]))
        counts, means, variances = stats[:, :1], stats[:, 1:c + 1], stats[:, c + 1:]
        total = float(counts.sum())
        if total < 2:
            raise ValueError(f"SyncBatchNorm: training needs more than one value per channel over all ranks, got "
                             f"input {tuple(x.shape)} on {self.comm.size} rank(s)")
        shares = counts / total  # m_r / M: exactly 1 in a group of one, where the statistics stay the kernel's
        mean = (shares * means).sum(axis=0)
        var = (shares * (variances + (means - mean) ** 2)).sum(axis=0)
        if self.rm is not None:
            self.rm[...] = (1 - self.momentum) * self.rm.astype(np.float64) + self.momentum * mean
            self.rv[...] = (1 - self.momentum) * self.rv.astype(np.float64) + self.momentum * var * total / (total - 1)
        invstd = 1.0 / xp.sqrt(var + self.eps)
        weight = affine[0].astype(xp.float64) if self.has_weight else xp.ones(c)
        bias = affine[-1].astype(xp.float64) if self.has_bias else xp.zeros(c)
        scale = weight * invstd
        self.x3, self.mean, self.invstd, self.weight, self.share = x3, mean, invstd, weight, m / total
        return kern.batch_norm_apply(x3, scale.astype(x.dtype), (bias - mean * scale).astype(x.dtype)).reshape(x.shape)

    def backward(self, grad_y):
        xp, kern = xp_of(grad_y), kernels_for(grad_y)
        x3, mean, invstd, c = self.x3, self.mean, self.invstd, self.x3.shape[1]
        m = x3.shape[0] * x3.shape[2]
        g3 = xp.ascontiguousarray(grad_y).reshape(x3.shape)
        # batch norm's backward for this rank's values alone, and its sums: sum(g xhat), sum(g) per channel
        grad_x, sum_g_xhat, sum_g = kern.batch_norm_backward(g3, x3, mean, invstd, self.weight, True)
        sums = self.comm.allreduce(xp.concatenate([sum_g, sum_g_xhat]) * self.share)
        # plus scale / m ((sum_g - A) + xhat (sum_g_xhat - B)), which turns this rank's sums into the global ones:
        # an affine map of x per channel (zero in a group of one, where this is BatchNorm's backward exactly)
        scale = self.weight * invstd / m
        da, db = sum_g - sums[:c], (sum_g_xhat - sums[c:]) * invstd
        grad_x = grad_x + kern.batch_norm_apply(x3, (scale * db).astype(x3.dtype),
                                                (scale * (da - mean * db)).astype(x3.dtype))
        grads = (grad_x.reshape(grad_y.shape),)
        if self.has_weight:
            grads += (sum_g_xhat.astype(grad_y.dtype),)
        if self.has_bias:
            grads += (sum_g.astype(grad_y.dtype),)
        return grads


class SyncBatchNorm(_BatchNorm):
    """Batch norm over the global batch of all ranks (see the module's docstring), for (N, C), (N, C, L) and
    (N, C, H, W) inputs; BatchNorm's parameters, buffers and evaluation. `comm`: the group (default: the one init()
    made; before init() a group of one, where SyncBatchNorm computes what BatchNorm does)."""
    dims = (2, 3, 4)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, dtype=np.float32,
                 comm=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        self.comm = comm

    def forward(self, x):
        if not self.training and self.running_mean is not None:
            return super().forward(x)
        if x.ndim not in self.dims:
            raise ValueError(f"SyncBatchNorm: expected a 2-D, 3-D or 4-D input, got shape {x.shape}")
        factor = 0.0 if self.momentum is None else self.momentum
        track = self.training and self.track_running_stats
        if track:
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:
                factor = 1.0 / int(self.num_batches_tracked.item())
        affine = [t for t in (self.weight, self.bias) if t is not None]
        return SyncBatchNormFunction.apply(x, *affine, comm=self.comm or world(),
                                           running_mean=self.running_mean.data if track else None,
                                           running_var=self.running_var.data if track else None,
                                           has_weight=self.weight is not None, has_bias=self.bias is not None,
                                           momentum=factor, eps=self.eps)


def convert_sync_batchnorm(module, comm=None):
    """`module` with every BatchNorm1d and BatchNorm2d replaced by a SyncBatchNorm that holds the same parameter and
    buffer tensors (so an optimizer made before still updates them, and state_dict keys do not change). Returns the
    module (a new SyncBatchNorm when `module` itself is a batch norm)."""
    if isinstance(module, (BatchNorm1d, BatchNorm2d)):
        sync = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats, comm=comm)
        for name in ("weight", "bias"):
            sync.register_parameter(name, getattr(module, name))
        for name, buffer in module._buffers.items():
            sync.register_buffer(name, buffer)
        return sync.train(module.training)
    for name, child in list(module._modules.items()):
        if child is not None:
            module._modules[name] = convert_sync_batchnorm(child, comm)
    return module

