// Shared by every kernel file: the block size, the grid-stride loop and the float/double entry points.
#pragma once

// Threads per block: kernels_gpu.py compiles with -DTHREADS=_THREADS and launches every block with that many.
#ifndef THREADS
#error "THREADS (threads per block) is undefined: compile with -DTHREADS=256, as kernels_gpu.py does"
#endif
static_assert(THREADS > 0 && (THREADS & (THREADS - 1)) == 0, "the block reductions need a power-of-two THREADS");

// One iteration per index idx in [0, total), the grid striding over it; 64-bit so sizes may pass 2^31.
#define GRID_STRIDE(total) \
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < (total); \
         idx += (long long)blockDim.x * gridDim.x)

// A file defines ENTRY(T, S), its extern "C" kernels name_##S on element type T, and ends with
// FLOAT_AND_DOUBLE(ENTRY): the name_f32 and name_f64 entry points kernels_gpu.py launches.
#define FLOAT_AND_DOUBLE(ENTRY) ENTRY(float, f32) ENTRY(double, f64)
