"""The ops of minicnn, one family per file. `import minicnn.functional as F`."""
from .. import autograd as _autograd
from ..geometry import conv_output_size
from .activation import leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from .clamp import clamp, maximum, minimum
from .conv import conv2d
from .dropout import dropout
from .linear import linear
from .loss import binary_cross_entropy_with_logits, cross_entropy, hinge_loss, mse_loss, smooth_l1_loss
from .math import add, argmax, div, exp, log, matmul, max, mean, mul, neg, pow, sqrt, sub, sum, unbroadcast
from .norm import batch_norm, local_response_norm
from .pool import adaptive_avg_pool2d, avg_pool2d, global_avg_pool2d, global_max_pool2d, max_pool2d
from .shape import cast, cat, flatten, getitem, reshape, stack, to_device, transpose

_autograd._bind_functional(__import__(__name__, fromlist=["*"]))
