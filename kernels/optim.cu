// Fused optimizer updates (kernels_cpu/optim.py): one thread per parameter element, grid-stride, in place.
// SGD, PyTorch's rule term by term in the parameter's type: d = g + wd p; with momentum b = d at the first step,
// else b = mu b + keep d (keep = 1 - dampening), and d = d + mu b (Nesterov) or b; p -= lr d.

#include "common.cuh"

template <typename T>
__device__ void sgd(T* __restrict__ p, const T* __restrict__ g, T* __restrict__ buf, long long n, T lr, T wd,
                    T mu, T keep, int nesterov, int first) {
    GRID_STRIDE(n) {
        T d = wd != T(0) ? g[idx] + wd * p[idx] : g[idx];
        if (mu != T(0)) {
            const T b = first ? d : mu * buf[idx] + keep * d;
            buf[idx] = b;
            d = nesterov ? d + mu * b : b;
        }
        p[idx] -= lr * d;
    }
}

#define ENTRY(T, S) \
extern "C" __global__ void sgd_step_##S(T* p, const T* g, T* buf, long long n, T lr, T wd, T mu, T keep, \
                                        int nesterov, int first) { sgd<T>(p, g, buf, n, lr, wd, mu, keep, nesterov, first); }

FLOAT_AND_DOUBLE(ENTRY)
