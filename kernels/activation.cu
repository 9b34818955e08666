// ReLU / leaky ReLU and inverted dropout. One thread per element, grid-stride loops, 64-bit indices.
// Dropout draws its mask from a counter-based generator (splitmix64 of seed and element index): no state on the
// device, the same mask for the same seed, and mask and scaling are applied in one pass.

#include "common.cuh"

template <typename T>
__device__ void leaky_relu_fwd(const T* __restrict__ x, T* __restrict__ y, long long n, T slope) {
    GRID_STRIDE(n) { const T v = x[idx]; y[idx] = v <= T(0) ? (slope != T(0) ? v * slope : T(0)) : v; }
}

template <typename T>
__device__ void leaky_relu_bwd(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx, long long n,
                               T slope) {
    GRID_STRIDE(n) { dx[idx] = x[idx] <= T(0) ? (slope != T(0) ? g[idx] * slope : T(0)) : g[idx]; }
}

__device__ unsigned long long splitmix64(unsigned long long z) {
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// mask[i] = scale where u(seed, i) >= p, else 0; y = x * mask
template <typename T>
__device__ void dropout_fwd(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ mask, long long n, double p,
                            T scale, unsigned long long seed) {
    GRID_STRIDE(n) {
        const double u = (double)(splitmix64(seed ^ (0xD1B54A32D192ED03ULL * (unsigned long long)(idx + 1))) >> 11)
                         * (1.0 / 9007199254740992.0);
        const T m = u >= p ? scale : T(0);
        mask[idx] = m;
        y[idx] = x[idx] * m;
    }
}

#define ENTRY(T, S) \
extern "C" __global__ void leaky_relu_forward_##S(const T* x, T* y, long long n, T slope) { leaky_relu_fwd<T>(x, y, n, slope); } \
extern "C" __global__ void leaky_relu_backward_##S(const T* g, const T* x, T* dx, long long n, T slope) { leaky_relu_bwd<T>(g, x, dx, n, slope); } \
extern "C" __global__ void dropout_forward_##S(const T* x, T* y, T* mask, long long n, double p, T scale, unsigned long long seed) { dropout_fwd<T>(x, y, mask, n, p, scale, seed); }

FLOAT_AND_DOUBLE(ENTRY)
