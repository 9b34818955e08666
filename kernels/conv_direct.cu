// Direct convolution at stride 1 in the shifted layout (kernels_cpu/conv.py): x is already padded to (N, C, H, W),
// y is (N, K, OH, OW) with the bias added, g is (N, K, OH*W) with the last W - OW columns of each row zero. Output channel k
// reads the C/G input channels of its group, starting at (k / (K/G)) * C/G.
// conv_direct and conv_direct_input: one thread per output element, a gather (no atomics). conv_direct_weight:
// one block per weight element, reducing over images and positions in double precision.

#include "common.cuh"

template <typename T>
__device__ void direct_forward(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                               T* __restrict__ y, long long N, int C, int H, int W, int K, int G, int KH, int KW,
                               int DH, int DW, int OH, int OW) {
    const long long plane = (long long)H * W;
    const int CG = C / G;
    GRID_STRIDE(N * K * OH * OW) {
        const int j = (int)(idx % OW), i = (int)((idx / OW) % OH);
        const int k = (int)((idx / ((long long)OW * OH)) % K);
        const long long n = idx / ((long long)OW * OH * K);
        const long long q = (long long)i * W + j;
        const int c0 = (k / (K / G)) * CG;
        T acc = b[k];
        for (int c = 0; c < CG; ++c) {
            const T* src = x + (n * C + c0 + c) * plane;
            for (int r = 0; r < KH; ++r) {
                for (int s = 0; s < KW; ++s) {
                    acc += w[((k * CG + c) * KH + r) * KW + s] * src[q + (long long)r * DH * W + s * DW];
                }
            }
        }
        y[idx] = acc;
    }
}

template <typename T>
__device__ void direct_weight(const T* __restrict__ x, const T* __restrict__ g, T* __restrict__ dw, long long N,
                              int C, int H, int W, int K, int G, int KH, int KW, int DH, int DW, int OH) {
    __shared__ double shared[THREADS];
    const long long span = (long long)OH * W, plane = (long long)H * W;
    const int CG = C / G;
    const int tap = blockIdx.x;  // one block per weight element (k, c, r, s)
    const int s = tap % KW, r = (tap / KW) % KH, c = (tap / (KW * KH)) % CG, k = tap / (KW * KH * CG);
    const long long off = (long long)r * DH * W + s * DW;
    const long long m = span < plane - off ? span : plane - off;
    const int cin = (k / (K / G)) * CG + c;
    double acc = 0.0;
    for (long long i = threadIdx.x; i < N * m; i += blockDim.x) {
        const long long n = i / m, q = i % m;
        acc += (double)g[(n * K + k) * span + q] * (double)x[(n * C + cin) * plane + off + q];
    }
    shared[threadIdx.x] = acc;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half >>= 1) {
        if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) dw[tap] = (T)shared[0];
}

template <typename T>
__device__ void direct_input(const T* __restrict__ g, const T* __restrict__ w, T* __restrict__ dx, long long N,
                             int C, int H, int W, int K, int G, int KH, int KW, int DH, int DW, int OH) {
    const long long span = (long long)OH * W, plane = (long long)H * W;
    const int CG = C / G, KG = K / G;
    GRID_STRIDE(N * C * plane) {
        const long long p = idx % plane;
        const int c = (int)((idx / plane) % C);
        const long long n = idx / (plane * C);
        T acc = T(0);
        for (int kk = 0; kk < KG; ++kk) {
            const int k = (c / CG) * KG + kk;
            const T* src = g + (n * K + k) * span;
            for (int r = 0; r < KH; ++r) {
                for (int s = 0; s < KW; ++s) {
                    const long long q = p - (long long)r * DH * W - s * DW;
                    if (q >= 0 && q < span) acc += w[((k * CG + c % CG) * KH + r) * KW + s] * src[q];
                }
            }
        }
        dx[idx] = acc;
    }
}

#define DIRECT_ARGS long long N, int C, int H, int W, int K, int G, int KH, int KW, int DH, int DW, int OH
#define DIRECT_PASS N, C, H, W, K, G, KH, KW, DH, DW, OH

#define ENTRY(T, S) \
extern "C" __global__ void conv_direct_##S(const T* x, const T* w, const T* b, T* y, DIRECT_ARGS, int OW) { direct_forward<T>(x, w, b, y, DIRECT_PASS, OW); } \
extern "C" __global__ void conv_direct_weight_##S(const T* x, const T* g, T* dw, DIRECT_ARGS) { direct_weight<T>(x, g, dw, DIRECT_PASS); } \
extern "C" __global__ void conv_direct_input_##S(const T* g, const T* w, T* dx, DIRECT_ARGS) { direct_input<T>(g, w, dx, DIRECT_PASS); }

FLOAT_AND_DOUBLE(ENTRY)
