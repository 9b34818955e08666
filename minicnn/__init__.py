"""minicnn: a from-scratch deep-learning engine for convolutional networks on NumPy (CPU) and CuPy (GPU)."""
import os as _os

# CPU threading. OpenBLAS's worker threads busy-wait about 0.1 s after every matrix product, and Numba's OpenMP
# workers busy-wait after every kernel: on a few cores each steals the cores the other needs next (conv2d
# forward+backward ran 2-3x slower, see benchmarks/RESULTS.md). OpenBLAS reads its setting when NumPy loads it,
# so it only takes effect when minicnn is imported before NumPy; a value set by the user wins.
_os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import data, functional, init, models, nn, optim
from .autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, tensor
from .backend import Device, cuda, manual_seed
from .functional import cat, conv_output_size, stack
from .gradcheck import GradcheckError, gradcheck
from .summary import summary

__version__ = "0.1.0"
