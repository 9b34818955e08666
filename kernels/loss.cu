// Softmax cross-entropy with label smoothing, (N, C) logits. Forward: one thread per row computes the row's
// log-sum-exp (after subtracting the row maximum) and its loss
//   -(1 - eps) log p_y - eps/C sum_c log p_c;
// a label outside [0, C) gives a NaN loss. Backward: one thread per element, (softmax - q) * g / N with
// q = (1 - eps) onehot(y) + eps/C.

#include "common.cuh"

template <typename T>
__device__ void ce_fwd(const T* __restrict__ x, const long long* __restrict__ y, T* __restrict__ loss,
                       T* __restrict__ lse, long long N, int C, double eps) {
    GRID_STRIDE(N) {
        const T* row = x + idx * C;
        double m = (double)row[0];
        for (int c = 1; c < C; ++c) m = fmax(m, (double)row[c]);
        double s = 0.0, sum_x = 0.0;
        for (int c = 0; c < C; ++c) { s += exp((double)row[c] - m); sum_x += (double)row[c]; }
        const double l = m + log(s);
        lse[idx] = (T)l;
        const long long label = y[idx];
        if (label < 0 || label >= C) { loss[idx] = (T)__longlong_as_double(0x7ff8000000000000ULL); continue; }  // NaN
        // the smoothing term only when eps > 0: a -inf logit makes it -inf, and 0 * -inf would be NaN
        const double smooth = eps != 0.0 ? eps * (sum_x / C - l) : 0.0;
        loss[idx] = (T)(-(1.0 - eps) * ((double)row[label] - l) - smooth);
    }
}

template <typename T>
__device__ void ce_bwd(const T* __restrict__ x, const long long* __restrict__ y, const T* __restrict__ lse,
                       const T* __restrict__ g, T* __restrict__ dx, long long N, int C, double eps) {
    GRID_STRIDE(N * C) {
        const long long n = idx / C;
        const int c = (int)(idx % C);
        const double p = exp((double)x[idx] - (double)lse[n]);
        const double q = (c == y[n] ? 1.0 - eps : 0.0) + eps / C;
        dx[idx] = (T)((p - q) * (double)g[0] / N);
    }
}

#define ENTRY(T, S) \
extern "C" __global__ void cross_entropy_forward_##S(const T* x, const long long* y, T* loss, T* lse, long long N, int C, double eps) { ce_fwd<T>(x, y, loss, lse, N, C, eps); } \
extern "C" __global__ void cross_entropy_backward_##S(const T* x, const long long* y, const T* lse, const T* g, T* dx, long long N, int C, double eps) { ce_bwd<T>(x, y, lse, g, dx, N, C, eps); }

FLOAT_AND_DOUBLE(ENTRY)
