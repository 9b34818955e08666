"""Numba kernels for the CPU: convolution (im2col/col2im and the direct kernels), 2-D pooling and batch
normalisation and the (leaky) ReLU, forward and backward, and the fused SGD update. kernels_gpu has the same
functions, with the same signatures, in CUDA C. Behind conv_direct*, layers with many inputs per output run on
register-tiled kernels (conv_tiled.py), which hold their accumulators in SIMD registers through `Vec`
intrinsics (simd.py).

Every parallel iteration owns its outputs: forward kernels compute one row of `cols`, one (n, c) plane or one
tile of outputs, and backward kernels give each (n, c) plane of dx (or each weight, or each chunk's partial sum
of the weights) to one thread, which adds into it in a fixed order.
No two threads ever write one location: there are no races and the result is the same on every run, on one thread
or many. Small inputs run on the calling thread (`_jit.cpu_kernel`: waking Numba's threads costs more than they
save there). Kernels are compiled on first use and cached on disk, so the compile time is paid once per machine.
"""
from .activation import leaky_relu_backward, leaky_relu_forward
from .conv import (col2im, col2im_shifted, conv_direct, conv_direct_backward, conv_direct_input, conv_direct_weight,
                   im2col, im2col_shifted)
from .norm import batch_norm_apply, batch_norm_backward, batch_norm_stats
from .optim import sgd_step
from .pool import (avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d_backward, global_avg_pool2d_forward,
                   global_max_pool2d_backward, global_max_pool2d_forward, max_pool2d_backward, max_pool2d_forward)

__all__ = ["im2col", "col2im", "im2col_shifted", "col2im_shifted", "conv_direct", "conv_direct_backward",
           "conv_direct_weight", "conv_direct_input", "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward",
           "avg_pool2d_backward", "global_avg_pool2d_forward", "global_avg_pool2d_backward",
           "global_max_pool2d_forward", "global_max_pool2d_backward", "batch_norm_stats", "batch_norm_apply",
           "batch_norm_backward", "leaky_relu_forward", "leaky_relu_backward", "sgd_step"]
