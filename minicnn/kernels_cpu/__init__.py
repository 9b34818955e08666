"""The CPU's fast kernels, on Numba: convolution (im2col/col2im, the direct kernels plane by plane and, for layers
with many inputs per output, with their accumulators in SIMD registers through `Vec` intrinsics: conv_tiled.py,
simd.py), pooling, batch normalisation, the (leaky) ReLU and the fused SGD update. LRN, dropout and the softmax
cross-entropy have nothing faster on the CPU than their reference (minicnn/reference/), which is used as is.

kernels_gpu has the same functions with the same signatures in CUDA C, and so does the reference, which every
kernel here is tested against; the register-tiled convolution is the CPU's alone (on the GPU each thread already
holds its own output). Geometry comes as one object (minicnn/geometry.py), unpacked where a Numba kernel is called.

Every parallel iteration owns its outputs: forward kernels compute one row of `cols`, one (n, c) plane or one
tile of outputs, and backward kernels give each (n, c) plane of grad_x (or each weight, or each chunk's partial
sum of the weights) to one thread, which adds into it in a fixed order. No two threads ever write one location:
there are no races and the result is the same on every run, on one thread or many. Small inputs run on the
calling thread (`_jit.cpu_kernel`). Kernels are compiled on first use and cached on disk, so the compile time is
paid once per machine.
"""
from ..reference import cross_entropy_backward, cross_entropy_forward, dropout_forward, lrn_backward, lrn_forward
from .activation import leaky_relu_backward, leaky_relu_forward
from .boxes import nms_keep, nms_mask
from .conv import (col2im, col2im_shifted, conv_direct, conv_direct_backward, conv_direct_input, conv_direct_weight,
                   im2col, im2col_shifted)
from .conv_tiled import conv_tiled, conv_tiled_backward
from .norm import batch_norm_apply, batch_norm_backward, batch_norm_stats
from .optim import sgd_step
from .pool import (avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d_backward, global_avg_pool2d_forward,
                   global_max_pool2d_backward, global_max_pool2d_forward, max_pool2d_backward, max_pool2d_forward,
                   max_pool2d_values)
from .roi import roi_align_backward, roi_align_forward, roi_pool_backward, roi_pool_forward

__all__ = ["im2col", "col2im", "im2col_shifted", "col2im_shifted", "conv_direct", "conv_direct_backward",
           "conv_direct_weight", "conv_direct_input", "conv_tiled", "conv_tiled_backward", "max_pool2d_forward",
           "max_pool2d_values", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
           "global_avg_pool2d_forward", "global_avg_pool2d_backward", "global_max_pool2d_forward",
           "global_max_pool2d_backward", "batch_norm_stats", "batch_norm_apply", "batch_norm_backward", "lrn_forward",
           "lrn_backward", "leaky_relu_forward", "leaky_relu_backward", "dropout_forward", "cross_entropy_forward",
           "cross_entropy_backward", "sgd_step", "roi_pool_forward", "roi_pool_backward", "roi_align_forward",
           "roi_align_backward", "nms_mask", "nms_keep"]
