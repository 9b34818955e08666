"""The reference implementation of minicnn's ops: plain NumPy, written to be read. Start here.

Every function takes and returns arrays (NumPy, or CuPy on the GPU: the array module comes from the input) and
follows the lecture's notation (minicnn/geometry.py). Each file gives the formulas, the paper and the backward pass
beside the forward one:

    conv.py         convolution by im2col and col2im
    pool.py         max and average pooling, over windows and over whole feature maps
    norm.py         batch normalisation, local response normalisation
    activation.py   (leaky) ReLU, inverted dropout
    loss.py         softmax cross-entropy with label smoothing
    optim.py        the SGD update (momentum, Nesterov, weight decay)
    boxes.py        non-maximum suppression: the greedy loop, and the bitmask the fast kernels scan
    roi.py          RoI pooling (Fast R-CNN) and RoI align (Mask R-CNN)

Linear layers, softmax, adaptive average pooling and the Adam and RMSprop updates are plain NumPy in one place
only, their op (functional/linear.py, activation.py, pool.py; optim/adaptive.py): read them there.

The ops of minicnn.functional check their inputs, then run these functions under `mc.use_kernels("reference")`
(or MINICNN_KERNELS=reference), and the fast kernels otherwise: Numba on the CPU (kernels_cpu), CUDA on the GPU
(kernels_gpu), which have the same function names and signatures. The tests hold every fast kernel to these
functions. Where the CPU has nothing faster than the reference, kernels_cpu uses the reference itself.
"""
from .activation import dropout_forward, leaky_relu_backward, leaky_relu_forward
from .boxes import nms_keep, nms_mask
from .conv import col2im, conv2d_backward, conv2d_forward, im2col
from .loss import cross_entropy_backward, cross_entropy_forward
from .norm import batch_norm_apply, batch_norm_backward, batch_norm_stats, lrn_backward, lrn_forward
from .optim import sgd_step
from .pool import (avg_pool2d_backward, avg_pool2d_forward, global_avg_pool2d_backward, global_avg_pool2d_forward,
                   global_max_pool2d_backward, global_max_pool2d_forward, max_pool2d_backward, max_pool2d_forward,
                   max_pool2d_values)
from .roi import roi_align_backward, roi_align_forward, roi_pool_backward, roi_pool_forward

__all__ = ["im2col", "col2im", "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_values",
           "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward", "global_avg_pool2d_forward",
           "global_avg_pool2d_backward", "global_max_pool2d_forward", "global_max_pool2d_backward", "batch_norm_stats",
           "batch_norm_apply", "batch_norm_backward", "lrn_forward", "lrn_backward", "leaky_relu_forward",
           "leaky_relu_backward", "dropout_forward", "cross_entropy_forward", "cross_entropy_backward", "sgd_step",
           "roi_pool_forward", "roi_pool_backward", "roi_align_forward", "roi_align_backward", "nms_mask", "nms_keep"]
