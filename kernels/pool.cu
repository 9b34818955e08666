// 2-D pooling, forward and backward. One thread per output element (forward) or per input pixel (backward:
// a gather over the windows that contain the pixel, so no atomics). Max pooling pads with -inf, keeps the flat
// index y*W + x of the first maximum (a NaN wins, as in PyTorch); average pooling divides by PyTorch's divisor.

#include "common.cuh"

template <typename T>
__device__ bool beats(T v, T best) { return v > best || isnan((double)v); }

// -inf without math.h (NVRTC has no INFINITY macro)
template <typename T> __device__ T neg_inf();
template <> __device__ float neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ double neg_inf<double>() { return __longlong_as_double(0xfff0000000000000ULL); }

// The part [start, end) of pooling window i (of size k) that lies inside an input of size n.
__device__ void window(int i, int stride, int pad, int k, int n, int& start, int& end) {
    start = max(i * stride - pad, 0);
    end = min(i * stride - pad + k, n);
}

template <typename T>
__device__ void max_fwd(const T* __restrict__ x, T* __restrict__ out, int* __restrict__ argmax, long long NC, int H,
                        int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW) {
    GRID_STRIDE(NC * OH * OW) {
        const int j = (int)(idx % OW);
        const int i = (int)((idx / OW) % OH);
        const long long plane = idx / ((long long)OW * OH);
        int h0, h1, w0, w1;
        window(i, SH, PH, KH, H, h0, h1);
        window(j, SW, PW, KW, W, w0, w1);
        const T* xp = x + plane * H * W;
        T best = neg_inf<T>();
        int best_idx = h0 * W + w0;
        for (int y = h0; y < h1; ++y)
            for (int xx = w0; xx < w1; ++xx) {
                const T v = xp[y * W + xx];
                if (beats(v, best)) { best = v; best_idx = y * W + xx; }
            }
        out[idx] = best;
        argmax[idx] = best_idx;
    }
}

template <typename T>
__device__ void max_bwd(const T* __restrict__ g, const int* __restrict__ argmax, T* __restrict__ dx, long long NC,
                        int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW) {
    GRID_STRIDE(NC * H * W) {
        const int xx = (int)(idx % W);
        const int y = (int)((idx / W) % H);
        const long long plane = idx / ((long long)W * H);
        const int a = y + PH - KH + 1, b = xx + PW - KW + 1;
        const int i0 = a <= 0 ? 0 : (a + SH - 1) / SH, i1 = min(OH - 1, (y + PH) / SH);
        const int j0 = b <= 0 ? 0 : (b + SW - 1) / SW, j1 = min(OW - 1, (xx + PW) / SW);
        const long long base = plane * OH * OW;
        const int me = y * W + xx;
        T acc = T(0);
        for (int i = i0; i <= i1; ++i)
            for (int j = j0; j <= j1; ++j)
                if (argmax[base + i * OW + j] == me) acc += g[base + i * OW + j];
        dx[idx] = acc;
    }
}

__device__ int avg_divisor(int i, int j, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int include) {
    const int h0 = i * SH - PH, w0 = j * SW - PW;
    const int h1 = min(h0 + KH, H + PH), w1 = min(w0 + KW, W + PW);
    if (include) return (h1 - h0) * (w1 - w0);
    return (min(h1, H) - max(h0, 0)) * (min(w1, W) - max(w0, 0));
}

template <typename T>
__device__ void avg_fwd(const T* __restrict__ x, T* __restrict__ out, long long NC, int H, int W, int KH, int KW,
                        int SH, int SW, int PH, int PW, int OH, int OW, int include) {
    GRID_STRIDE(NC * OH * OW) {
        const int j = (int)(idx % OW);
        const int i = (int)((idx / OW) % OH);
        const long long plane = idx / ((long long)OW * OH);
        int h0, h1, w0, w1;
        window(i, SH, PH, KH, H, h0, h1);
        window(j, SW, PW, KW, W, w0, w1);
        const T* xp = x + plane * H * W;
        double acc = 0.0;
        for (int y = h0; y < h1; ++y)
            for (int xx = w0; xx < w1; ++xx) acc += xp[y * W + xx];
        out[idx] = (T)(acc / avg_divisor(i, j, H, W, KH, KW, SH, SW, PH, PW, include));
    }
}

template <typename T>
__device__ void avg_bwd(const T* __restrict__ g, T* __restrict__ dx, long long NC, int H, int W, int KH, int KW,
                        int SH, int SW, int PH, int PW, int OH, int OW, int include) {
    GRID_STRIDE(NC * H * W) {
        const int xx = (int)(idx % W);
        const int y = (int)((idx / W) % H);
        const long long plane = idx / ((long long)W * H);
        const int a = y + PH - KH + 1, b = xx + PW - KW + 1;
        const int i0 = a <= 0 ? 0 : (a + SH - 1) / SH, i1 = min(OH - 1, (y + PH) / SH);
        const int j0 = b <= 0 ? 0 : (b + SW - 1) / SW, j1 = min(OW - 1, (xx + PW) / SW);
        const long long base = plane * OH * OW;
        double acc = 0.0;
        for (int i = i0; i <= i1; ++i)
            for (int j = j0; j <= j1; ++j)
                acc += (double)g[base + i * OW + j] / avg_divisor(i, j, H, W, KH, KW, SH, SW, PH, PW, include);
        dx[idx] = (T)acc;
    }
}

// Global pooling: one thread per (n, c) plane for the forward pass, one per pixel for the backward pass.
template <typename T>
__device__ void gavg_fwd(const T* __restrict__ x, T* __restrict__ out, long long NC, int HW) {
    GRID_STRIDE(NC) {
        double acc = 0.0;
        for (int k = 0; k < HW; ++k) acc += x[idx * HW + k];
        out[idx] = (T)(acc / HW);
    }
}

template <typename T>
__device__ void gavg_bwd(const T* __restrict__ g, T* __restrict__ dx, long long NC, int HW) {
    GRID_STRIDE(NC * HW) { dx[idx] = g[idx / HW] / (T)HW; }
}

template <typename T>
__device__ void gmax_fwd(const T* __restrict__ x, T* __restrict__ out, int* __restrict__ argmax, long long NC, int HW) {
    GRID_STRIDE(NC) {
        T best = neg_inf<T>();
        int best_idx = 0;
        for (int k = 0; k < HW; ++k) {
            const T v = x[idx * HW + k];
            if (beats(v, best)) { best = v; best_idx = k; }
        }
        out[idx] = best;
        argmax[idx] = best_idx;
    }
}

template <typename T>
__device__ void gmax_bwd(const T* __restrict__ g, const int* __restrict__ argmax, T* __restrict__ dx, long long NC,
                         int HW) {
    GRID_STRIDE(NC * HW) { dx[idx] = (argmax[idx / HW] == (int)(idx % HW)) ? g[idx / HW] : T(0); }
}

#define POOL_ARGS long long NC, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW
#define POOL_PASS NC, H, W, KH, KW, SH, SW, PH, PW, OH, OW
#define ENTRY(T, S) \
extern "C" __global__ void max_pool2d_forward_##S(const T* x, T* out, int* argmax, POOL_ARGS) { max_fwd<T>(x, out, argmax, POOL_PASS); } \
extern "C" __global__ void max_pool2d_backward_##S(const T* g, const int* argmax, T* dx, POOL_ARGS) { max_bwd<T>(g, argmax, dx, POOL_PASS); } \
extern "C" __global__ void avg_pool2d_forward_##S(const T* x, T* out, POOL_ARGS, int include) { avg_fwd<T>(x, out, POOL_PASS, include); } \
extern "C" __global__ void avg_pool2d_backward_##S(const T* g, T* dx, POOL_ARGS, int include) { avg_bwd<T>(g, dx, POOL_PASS, include); } \
extern "C" __global__ void global_avg_pool2d_forward_##S(const T* x, T* out, long long NC, int HW) { gavg_fwd<T>(x, out, NC, HW); } \
extern "C" __global__ void global_avg_pool2d_backward_##S(const T* g, T* dx, long long NC, int HW) { gavg_bwd<T>(g, dx, NC, HW); } \
extern "C" __global__ void global_max_pool2d_forward_##S(const T* x, T* out, int* argmax, long long NC, int HW) { gmax_fwd<T>(x, out, argmax, NC, HW); } \
extern "C" __global__ void global_max_pool2d_backward_##S(const T* g, const int* argmax, T* dx, long long NC, int HW) { gmax_bwd<T>(g, argmax, dx, NC, HW); }

FLOAT_AND_DOUBLE(ENTRY)
