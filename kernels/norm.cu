// Batch normalisation on x viewed as (N, C, L) and local response normalisation across channels.
// Batch norm: one block per channel reduces in double precision (two passes: mean, then squared deviations) and
// its first thread updates the running statistics (unbiased variance) in the same kernel; the apply and backward
// passes are elementwise. The backward reduction recomputes xhat from x, so only x and the statistics are kept.

#include "common.cuh"

__device__ double block_sum(double v, double* shared) {
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
        __syncthreads();
    }
    const double total = shared[0];
    __syncthreads();
    return total;
}

template <typename T>
__device__ void bn_stats(const T* __restrict__ x, double* __restrict__ mean, double* __restrict__ var,
                         T* __restrict__ running_mean, T* __restrict__ running_var, long long N, int C, long long L,
                         double momentum, int update) {
    __shared__ double shared[THREADS];
    const int c = blockIdx.x;
    const long long M = N * L;
    double s = 0.0;
    for (long long k = threadIdx.x; k < M; k += blockDim.x) s += (double)x[((k / L) * C + c) * L + k % L];
    const double mu = block_sum(s, shared) / M;
    double ss = 0.0;
    for (long long k = threadIdx.x; k < M; k += blockDim.x) {
        const double d = (double)x[((k / L) * C + c) * L + k % L] - mu;
        ss += d * d;
    }
    const double v = block_sum(ss, shared) / M;
    if (threadIdx.x == 0) {
        mean[c] = mu;
        var[c] = v;
        if (update) {
            running_mean[c] = (T)((1.0 - momentum) * (double)running_mean[c] + momentum * mu);
            running_var[c] = (T)((1.0 - momentum) * (double)running_var[c] + momentum * v * M / (M - 1));
        }
    }
}

template <typename T>
__device__ void bn_apply(const T* __restrict__ x, T* __restrict__ y, const T* __restrict__ scale,
                         const T* __restrict__ shift, long long total, int C, long long L) {
    GRID_STRIDE(total) {
        const int c = (int)((idx / L) % C);
        y[idx] = x[idx] * scale[c] + shift[c];
    }
}

template <typename T>
__device__ void bn_bwd_reduce(const T* __restrict__ g, const T* __restrict__ x, const double* __restrict__ mean,
                              const double* __restrict__ invstd, double* __restrict__ sum_g,
                              double* __restrict__ sum_gx, long long N, int C, long long L) {
    __shared__ double shared[THREADS];
    const int c = blockIdx.x;
    const long long M = N * L;
    double a = 0.0, b = 0.0;
    for (long long k = threadIdx.x; k < M; k += blockDim.x) {
        const long long i = ((k / L) * C + c) * L + k % L;
        const double gv = (double)g[i];
        a += gv;
        b += gv * ((double)x[i] - mean[c]) * invstd[c];
    }
    a = block_sum(a, shared);
    b = block_sum(b, shared);
    if (threadIdx.x == 0) { sum_g[c] = a; sum_gx[c] = b; }
}

template <typename T>
__device__ void bn_bwd_apply(const T* __restrict__ g, const T* __restrict__ x, T* __restrict__ dx,
                             const double* __restrict__ mean, const double* __restrict__ invstd,
                             const double* __restrict__ weight, const double* __restrict__ sum_g,
                             const double* __restrict__ sum_gx, long long total, int C, long long L, long long M,
                             int training) {
    GRID_STRIDE(total) {
        const int c = (int)((idx / L) % C);
        const double scale = weight[c] * invstd[c];
        double v = (double)g[idx];
        if (training) v -= (sum_g[c] + ((double)x[idx] - mean[c]) * invstd[c] * sum_gx[c]) / M;
        dx[idx] = (T)(scale * v);
    }
}

// LRN: s_c = k + alpha/size * sum of x^2 over channels c - size/2 .. c + (size-1)/2; y_c = x_c s_c^-beta.
template <typename T>
__device__ void lrn_fwd(const T* __restrict__ x, T* __restrict__ y, T* __restrict__ s, long long total, int C,
                        long long L, int size, double alpha, double beta, double k) {
    GRID_STRIDE(total) {
        const int c = (int)((idx / L) % C);
        const long long base = idx - (long long)c * L;
        double acc = 0.0;
        for (int j = max(0, c - size / 2); j <= min(C - 1, c + (size - 1) / 2); ++j) {
            const double v = (double)x[base + (long long)j * L];
            acc += v * v;
        }
        const double sv = k + alpha / size * acc;
        s[idx] = (T)sv;
        y[idx] = (T)((double)x[idx] * pow(sv, -beta));
    }
}

// dx_j = g_j s_j^-beta - 2 alpha beta / size * x_j * sum over channels c whose window holds j of g_c x_c s_c^(-beta-1)
template <typename T>
__device__ void lrn_bwd(const T* __restrict__ g, const T* __restrict__ x, const T* __restrict__ s,
                        T* __restrict__ dx, long long total, int C, long long L, int size, double alpha, double beta) {
    GRID_STRIDE(total) {
        const int j = (int)((idx / L) % C);
        const long long base = idx - (long long)j * L;
        const double coef = 2.0 * alpha * beta / size;  // the second term; with beta = 0 it is left out (S^0 = 1)
        double acc = 0.0;
        for (int c = max(0, j - (size - 1) / 2); beta != 0.0 && c <= min(C - 1, j + size / 2); ++c) {
            const long long i = base + (long long)c * L;
            acc += (double)g[i] * (double)x[i] * pow((double)s[i], -beta - 1.0);
        }
        const double second = beta != 0.0 ? coef * (double)x[idx] * acc : 0.0;
        dx[idx] = (T)((double)g[idx] * pow((double)s[idx], -beta) - second);
    }
}

#define ENTRY(T, S) \
extern "C" __global__ void batch_norm_stats_##S(const T* x, double* mean, double* var, T* rm, T* rv, long long N, int C, long long L, double momentum, int update) { bn_stats<T>(x, mean, var, rm, rv, N, C, L, momentum, update); } \
extern "C" __global__ void batch_norm_apply_##S(const T* x, T* y, const T* scale, const T* shift, long long total, int C, long long L) { bn_apply<T>(x, y, scale, shift, total, C, L); } \
extern "C" __global__ void batch_norm_backward_reduce_##S(const T* g, const T* x, const double* mean, const double* invstd, double* sum_g, double* sum_gx, long long N, int C, long long L) { bn_bwd_reduce<T>(g, x, mean, invstd, sum_g, sum_gx, N, C, L); } \
extern "C" __global__ void batch_norm_backward_apply_##S(const T* g, const T* x, T* dx, const double* mean, const double* invstd, const double* weight, const double* sum_g, const double* sum_gx, long long total, int C, long long L, long long M, int training) { bn_bwd_apply<T>(g, x, dx, mean, invstd, weight, sum_g, sum_gx, total, C, L, M, training); } \
extern "C" __global__ void lrn_forward_##S(const T* x, T* y, T* s, long long total, int C, long long L, int size, double alpha, double beta, double k) { lrn_fwd<T>(x, y, s, total, C, L, size, alpha, beta, k); } \
extern "C" __global__ void lrn_backward_##S(const T* g, const T* x, const T* s, T* dx, long long total, int C, long long L, int size, double alpha, double beta) { lrn_bwd<T>(g, x, s, dx, total, C, L, size, alpha, beta); }

FLOAT_AND_DOUBLE(ENTRY)
