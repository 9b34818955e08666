"""Finite-difference gradient checking.

For each input that requires a gradient, every entry is perturbed by +-eps and the central difference
(f(x + eps) - f(x - eps)) / 2 eps of the scalar s = sum(f(x) * w) (w a fixed random weighting of the outputs) is
compared with what backward gives. For large inputs, where one entry at a time would take too long, a single
random direction v is checked instead: (s(x + eps v) - s(x - eps v)) / 2 eps against <grad, v>.
Work in float64: float32 central differences are too noisy to tell a bug from rounding.
"""
import numpy as np

from .autograd import Tensor


class GradcheckError(AssertionError):
    pass


def _scalar(fn, inputs, weights):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return sum(float((o.numpy().astype(np.float64) * w).sum()) for o, w in zip(outs, weights))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, max_entries=2000, seed=0):
    """Check fn's backward against central differences. Returns True or raises GradcheckError that names the
    input, the index and both values. Inputs with more than `max_entries` entries get a random-direction check."""
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    if not any(x.requires_grad for x in inputs):
        raise ValueError("gradcheck: expected at least one input that requires grad")
    if not all(isinstance(v, (int, float)) and v >= 0 for v in (eps, atol, rtol)) or not eps > 0:
        raise ValueError(f"gradcheck: eps must be > 0 and atol, rtol >= 0, got {eps!r}, {atol!r}, {rtol!r}")
    for i, x in enumerate(inputs):
        if x.requires_grad and x.dtype != np.float64:
            raise ValueError(f"gradcheck: input {i} is {x.dtype}; gradient checks need float64 inputs")
    rng = np.random.default_rng(seed)
    for x in inputs:
        x.grad = None
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    weights = [rng.standard_normal(o.shape) for o in outs]
    total = None
    for o, w in zip(outs, weights):
        term = (o * Tensor(np.asarray(w)).to(o.device)).sum()
        total = term if total is None else total + term
    total.backward()

    for i, x in enumerate(inputs):
        if not x.requires_grad:
            continue
        analytic = np.zeros(x.shape) if x.grad is None else x.grad.numpy().astype(np.float64)
        data = x.data  # perturbed in place, restored after each probe
        if x.size <= max_entries:
            for idx in np.ndindex(*x.shape):
                orig = data[idx].item() if data.ndim else data.item()
                data[idx] = orig + eps
                plus = _scalar(fn, inputs, weights)
                data[idx] = orig - eps
                minus = _scalar(fn, inputs, weights)
                data[idx] = orig
                numeric = (plus - minus) / (2 * eps)
                if not np.isclose(analytic[idx], numeric, atol=atol, rtol=rtol):
                    raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}) at index {idx}: "
                                         f"backward gives {analytic[idx]:.10g}, finite differences {numeric:.10g}")
        else:
            v = rng.standard_normal(x.shape)
            orig = data.copy()
            v_dev = Tensor(v).to(x.device).data
            data[...] = orig + eps * v_dev
            plus = _scalar(fn, inputs, weights)
            data[...] = orig - eps * v_dev
            minus = _scalar(fn, inputs, weights)
            data[...] = orig
            numeric = (plus - minus) / (2 * eps)
            directional = float((analytic * v).sum())
            if not np.isclose(directional, numeric, atol=atol * np.sqrt(x.size), rtol=rtol):
                raise GradcheckError(f"gradcheck: input {i} (shape {x.shape}), random direction: "
                                     f"backward gives {directional:.10g}, finite differences {numeric:.10g}")
    return True
