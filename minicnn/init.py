"""Weight initialisers, in place, as in torch.nn.init.

He et al. 2015 (Kaiming): std = gain / sqrt(fan), gain = sqrt(2 / (1 + a^2)) for (leaky) ReLU.
Glorot and Bengio 2010 (Xavier): std = gain * sqrt(2 / (fan_in + fan_out)).
A uniform initialiser with bound sqrt(3) * std has the same variance as the normal one.
Values are drawn from minicnn's CPU generator (seeded by manual_seed) and copied to the tensor's device.
"""
import math

import numpy as np

from . import backend


def calculate_fan_in_and_fan_out(tensor):
    """fan_in = in_channels * receptive field, fan_out = out_channels * receptive field."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in and fan out need a tensor with at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    if nonlinearity in ("linear", "conv2d", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


_CHUNK = 1 << 20


def _fill(tensor, draw, offset, scale):
    """tensor = offset + scale * draw(shape), drawn in float64 (the same numbers whatever the tensor's dtype), a chunk
    of the flattened tensor at a time: the numbers equal one draw of the whole shape."""
    out = np.empty(tensor.shape, tensor.dtype)
    flat = out.reshape(-1)
    for start in range(0, flat.size, _CHUNK):
        values = draw((min(_CHUNK, flat.size - start),), np.float64)
        values *= scale
        values += offset
        flat[start:start + values.size] = values
    tensor.data[...] = backend.to_device(out, tensor.device)
    return tensor


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _std(gain, fan):
    """gain / sqrt(fan); a tensor without elements (fan 0) has nothing to fill, as in PyTorch."""
    return gain / math.sqrt(fan) if fan else 0.0


def uniform_(tensor, a=0.0, b=1.0):
    return _fill(tensor, backend.uniform, a, b - a)


def normal_(tensor, mean=0.0, std=1.0):
    return _fill(tensor, backend.normal, mean, std)


def constant_(tensor, value):
    tensor.data[...] = value
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    return normal_(tensor, 0.0, _std(calculate_gain(nonlinearity, a), _fan(tensor, mode)))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    bound = math.sqrt(3.0) * _std(calculate_gain(nonlinearity, a), _fan(tensor, mode))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, _std(gain * math.sqrt(2.0), fan_in + fan_out))


def xavier_uniform_(tensor, gain=1.0):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    bound = _std(gain * math.sqrt(6.0), fan_in + fan_out)
    return uniform_(tensor, -bound, bound)


def default_weight_and_bias_(weight, bias):
    """PyTorch's default for Linear and Conv2d: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    for the weight, and the same bound for the bias (0 without inputs: Linear(0, n) computes the bias)."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        bound = _std(1.0, calculate_fan_in_and_fan_out(weight)[0])
        uniform_(bias, -bound, bound)
