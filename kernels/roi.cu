// RoI pooling and RoI align, forward and backward (formulas in minicnn/reference/roi.py). The bins of RoI pooling
// and the samples of RoI align (rows and columns read, bilinear weights) come as small tables per RoI and axis,
// worked out by reference/roi.py in the input's dtype; RoI align's hold each RoI's own grid (SampleList). Forward:
// one thread per output element. Backward: one thread per input pixel, gathering over the RoIs of its image
// (order[starts[n]] .. order[starts[n + 1] - 1], in their original order) and the bins or samples of each that read
// it: no atomics, deterministic.

#include "common.cuh"

// torchvision's -FLT_MAX, where a bin's running maximum starts (for double too)
#define ROI_LOWEST (-3.40282346638528859812e+38)

// RoI pooling. rows [row0, row1) of bin i of RoI k: row0[k * OH + i]; columns [col0, col1) likewise (K, OW).
template <typename T>
__device__ void pool_fwd(const T* __restrict__ x, const long long* __restrict__ batch,
                         const long long* __restrict__ row0, const long long* __restrict__ row1,
                         const long long* __restrict__ col0, const long long* __restrict__ col1, T* __restrict__ out,
                         int* __restrict__ argmax, long long KC, int C, int H, int W, int OH, int OW) {
    GRID_STRIDE(KC * OH * OW) {
        const int j = (int)(idx % OW);
        const int i = (int)((idx / OW) % OH);
        const long long plane = idx / ((long long)OW * OH);
        const long long k = plane / C;
        const T* src = x + (batch[k] * C + plane % C) * H * W;
        const int r0 = (int)row0[k * OH + i], r1 = (int)row1[k * OH + i];
        const int c0 = (int)col0[k * OW + j], c1 = (int)col1[k * OW + j];
        T best = (T)ROI_LOWEST;
        int best_idx = -1;
        for (int y = r0; y < r1; ++y)
            for (int xx = c0; xx < c1; ++xx)
                if (src[y * W + xx] > best) { best = src[y * W + xx]; best_idx = y * W + xx; }  // first max, no NaN
        out[idx] = (r1 <= r0 || c1 <= c0) ? T(0) : best;
        argmax[idx] = best_idx;
    }
}

template <typename T>
__device__ void pool_bwd(const T* __restrict__ g, const int* __restrict__ argmax, const long long* __restrict__ order,
                         const long long* __restrict__ starts, const long long* __restrict__ row0,
                         const long long* __restrict__ row1, const long long* __restrict__ col0,
                         const long long* __restrict__ col1, T* __restrict__ dx, long long NC, int C, int H, int W,
                         int OH, int OW) {
    GRID_STRIDE(NC * H * W) {
        const int xx = (int)(idx % W);
        const int y = (int)((idx / W) % H);
        const long long plane = idx / ((long long)W * H);
        const long long n = plane / C, c = plane % C;
        const int me = y * W + xx;
        double acc = 0.0;
        for (long long s = starts[n]; s < starts[n + 1]; ++s) {
            const long long k = order[s];
            const long long base = (k * C + c) * OH * OW;
            for (int i = 0; i < OH; ++i) {
                if (y < row0[k * OH + i] || y >= row1[k * OH + i]) continue;
                for (int j = 0; j < OW; ++j)
                    if (xx >= col0[k * OW + j] && xx < col1[k * OW + j] && argmax[base + i * OW + j] == me)
                        acc += g[base + i * OW + j];
            }
        }
        dx[idx] = (T)acc;
    }
}

// RoI align. Sample a of bin i of RoI k reads rows at[u * R + e], e = off[k] + i * gh[k] + a, u = 0, 1 (before and
// after it), with weights w[u * R + e]; gh[k] samples per bin, R entries in all. Columns likewise (gw, Q entries).
template <typename T>
__device__ void align_fwd(const T* __restrict__ x, const long long* __restrict__ batch,
                          const long long* __restrict__ row_at, const T* __restrict__ row_w,
                          const long long* __restrict__ gh, const long long* __restrict__ row_off,
                          const long long* __restrict__ col_at, const T* __restrict__ col_w,
                          const long long* __restrict__ gw, const long long* __restrict__ col_off,
                          const T* __restrict__ count, T* __restrict__ out, long long KC, long long R, long long Q,
                          int C, int H, int W, int OH, int OW) {
    GRID_STRIDE(KC * OH * OW) {
        const int j = (int)(idx % OW);
        const int i = (int)((idx / OW) % OH);
        const long long plane = idx / ((long long)OW * OH);
        const long long k = plane / C;
        const T* src = x + (batch[k] * C + plane % C) * H * W;
        double acc = 0.0;
        for (long long a = 0; a < gh[k]; ++a)
            for (int u = 0; u < 2; ++u) {
                const long long e = u * R + row_off[k] + i * gh[k] + a;
                const long long yy = row_at[e];
                const T wy = row_w[e];
                for (long long b = 0; b < gw[k]; ++b)
                    for (int v = 0; v < 2; ++v) {
                        const long long f = v * Q + col_off[k] + j * gw[k] + b;
                        acc += (double)(wy * col_w[f]) * src[yy * W + col_at[f]];
                    }
            }
        out[idx] = (T)(acc / count[k]);
    }
}

// reach: the first and last row (reach[k], reach[K + k]) and column (reach[2K + k], reach[3K + k]) RoI k's samples
// read with a nonzero weight, so that a pixel skips at once the RoIs that never read it.
template <typename T>
__device__ void align_bwd(const T* __restrict__ g, const long long* __restrict__ order,
                          const long long* __restrict__ starts, const long long* __restrict__ row_at,
                          const T* __restrict__ row_w, const long long* __restrict__ gh,
                          const long long* __restrict__ row_off, const long long* __restrict__ col_at,
                          const T* __restrict__ col_w, const long long* __restrict__ gw,
                          const long long* __restrict__ col_off, const T* __restrict__ count,
                          const long long* __restrict__ reach, T* __restrict__ dx, long long NC, long long K,
                          long long R, long long Q, int C, int H, int W, int OH, int OW) {
    GRID_STRIDE(NC * H * W) {
        const int xx = (int)(idx % W);
        const int y = (int)((idx / W) % H);
        const long long plane = idx / ((long long)W * H);
        const long long n = plane / C, c = plane % C;
        double acc = 0.0;
        for (long long s = starts[n]; s < starts[n + 1]; ++s) {
            const long long k = order[s];
            if (y < reach[k] || y > reach[K + k] || xx < reach[2 * K + k] || xx > reach[3 * K + k]) continue;
            const T* gk = g + (k * C + c) * OH * OW;
            for (int i = 0; i < OH; ++i)
                for (long long a = 0; a < gh[k]; ++a)
                    for (int u = 0; u < 2; ++u) {
                        const long long e = u * R + row_off[k] + i * gh[k] + a;
                        if (row_at[e] != y || row_w[e] == T(0)) continue;
                        for (int j = 0; j < OW; ++j) {
                            const double share = (double)gk[i * OW + j] / count[k] * row_w[e];
                            for (long long b = 0; b < gw[k]; ++b)
                                for (int v = 0; v < 2; ++v) {
                                    const long long f = v * Q + col_off[k] + j * gw[k] + b;
                                    if (col_at[f] == xx) acc += share * col_w[f];
                                }
                        }
                    }
        }
        dx[idx] = (T)acc;
    }
}

#define POOL_BINS const long long* row0, const long long* row1, const long long* col0, const long long* col1
#define POOL_SIZES int C, int H, int W, int OH, int OW
#define ALIGN_TABLES(T) const long long* row_at, const T* row_w, const long long* gh, const long long* row_off, \
                        const long long* col_at, const T* col_w, const long long* gw, const long long* col_off, \
                        const T* count
#define ALIGN_PASS row_at, row_w, gh, row_off, col_at, col_w, gw, col_off, count
#define ALIGN_SIZES long long R, long long Q, int C, int H, int W, int OH, int OW
#define ENTRY(T, S) \
extern "C" __global__ void roi_pool_forward_##S(const T* x, const long long* batch, POOL_BINS, T* out, int* argmax, \
                                                long long KC, POOL_SIZES) { \
    pool_fwd<T>(x, batch, row0, row1, col0, col1, out, argmax, KC, C, H, W, OH, OW); } \
extern "C" __global__ void roi_pool_backward_##S(const T* g, const int* argmax, const long long* order, \
                                                 const long long* starts, POOL_BINS, T* dx, long long NC, \
                                                 POOL_SIZES) { \
    pool_bwd<T>(g, argmax, order, starts, row0, row1, col0, col1, dx, NC, C, H, W, OH, OW); } \
extern "C" __global__ void roi_align_forward_##S(const T* x, const long long* batch, ALIGN_TABLES(T), T* out, \
                                                 long long KC, ALIGN_SIZES) { \
    align_fwd<T>(x, batch, ALIGN_PASS, out, KC, R, Q, C, H, W, OH, OW); } \
extern "C" __global__ void roi_align_backward_##S(const T* g, const long long* order, const long long* starts, \
                                                  ALIGN_TABLES(T), const long long* reach, T* dx, long long NC, \
                                                  long long K, ALIGN_SIZES) { \
    align_bwd<T>(g, order, starts, ALIGN_PASS, reach, dx, NC, K, R, Q, C, H, W, OH, OW); }

FLOAT_AND_DOUBLE(ENTRY)
