"""minicnn: a from-scratch deep-learning engine for convolutional networks on NumPy (CPU) and CuPy (GPU)."""
from . import _process  # noqa: F401  (first: thread and malloc settings, before Numba loads OpenMP)
from . import data, detection, functional, init, models, nn, ops, optim, reference, viz
from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor
from .backend import Device, cuda, kernels_mode, manual_seed, use_kernels
from .functional import cat, conv_output_size, stack
from .gradcheck import GradcheckError, gradcheck
from .summary import summary
from .torch_checkpoint import load_torch_checkpoint

__version__ = "0.1.0"
