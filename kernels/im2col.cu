// im2col and col2im for 2-D convolution. One thread per output element, grid-stride loops, 64-bit indices.
// cols has shape (C*KH*KW, N*OH*OW): row (c, r, s), column (n, i, j) holds
// x[n, c, i*SH - PH + r*DH, j*SW - PW + s*DW], or 0 outside the image.
// col2im is a gather: each input pixel sums the column entries that read it, so there are no atomics.

#include "common.cuh"

template <typename T>
__device__ void im2col_impl(const T* __restrict__ x, T* __restrict__ cols, long long N, int C, int H, int W,
                            int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW) {
    const long long P = (long long)OH * OW;
    const long long NP = N * P;
    const long long total = (long long)C * KH * KW * NP;
    GRID_STRIDE(total) {
        const long long col = idx % NP;
        const long long row = idx / NP;
        const int s = (int)(row % KW);
        const int r = (int)((row / KW) % KH);
        const int c = (int)(row / ((long long)KW * KH));
        const long long n = col / P;
        const int p = (int)(col % P);
        const int hi = (p / OW) * SH - PH + r * DH;
        const int wi = (p % OW) * SW - PW + s * DW;
        cols[idx] = (hi >= 0 && hi < H && wi >= 0 && wi < W) ? x[((n * C + c) * H + hi) * W + wi] : T(0);
    }
}

template <typename T>
__device__ void col2im_impl(const T* __restrict__ cols, T* __restrict__ dx, long long N, int C, int H, int W,
                            int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW) {
    const long long P = (long long)OH * OW;
    const long long NP = N * P;
    const long long total = N * C * H * W;
    GRID_STRIDE(total) {
        const int wi = (int)(idx % W);
        const int hi = (int)((idx / W) % H);
        const int c = (int)((idx / ((long long)W * H)) % C);
        const long long n = idx / ((long long)W * H * C);
        T acc = T(0);
        for (int r = 0; r < KH; ++r) {
            const int t = hi + PH - r * DH;
            if (t < 0 || t % SH != 0 || t / SH >= OH) continue;
            const int i = t / SH;
            for (int s = 0; s < KW; ++s) {
                const int u = wi + PW - s * DW;
                if (u < 0 || u % SW != 0 || u / SW >= OW) continue;
                const long long row = ((long long)c * KH + r) * KW + s;
                acc += cols[row * NP + n * P + (long long)i * OW + u / SW];
            }
        }
        dx[idx] = acc;
    }
}

// The stride-1 layout of an already padded x (im2col_shifted in kernels_cpu.py): each output row is computed at the
// input's full width W (its last W - OW columns are junk the caller drops), so column q = i*W + j of row (c, r, s)
// and image n holds x[n, c].flat[q + r*DH*W + s*DW], or 0 past the end of the plane.
template <typename T>
__device__ void im2col_shifted_impl(const T* __restrict__ x, T* __restrict__ cols, long long N, int C, int H, int W,
                                    int KH, int KW, int DH, int DW, int OH) {
    const long long span = (long long)OH * W;
    const long long plane = (long long)H * W;
    const long long NS = N * span;
    const long long total = (long long)C * KH * KW * NS;
    GRID_STRIDE(total) {
        const long long row = idx / NS;
        const long long n = (idx % NS) / span;
        const long long p = idx % span + ((row / KW) % KH) * DH * W + (row % KW) * DW;
        const long long c = row / ((long long)KW * KH);
        cols[idx] = p < plane ? x[(n * C + c) * plane + p] : T(0);
    }
}

// Its adjoint, as a gather: each input element sums the (at most KH*KW) column entries that copied it.
template <typename T>
__device__ void col2im_shifted_impl(const T* __restrict__ cols, T* __restrict__ dx, long long N, int C, int H, int W,
                                    int KH, int KW, int DH, int DW, int OH) {
    const long long span = (long long)OH * W;
    const long long plane = (long long)H * W;
    const long long NS = N * span;
    const long long total = N * C * plane;
    GRID_STRIDE(total) {
        const long long p = idx % plane;
        const long long c = (idx / plane) % C;
        const long long n = idx / (plane * C);
        T acc = T(0);
        for (int r = 0; r < KH; ++r) {
            for (int s = 0; s < KW; ++s) {
                const long long q = p - (long long)r * DH * W - (long long)s * DW;
                if (q >= 0 && q < span) acc += cols[((c * KH + r) * KW + s) * NS + n * span + q];
            }
        }
        dx[idx] = acc;
    }
}

#define SHIFT_ARGS long long N, int C, int H, int W, int KH, int KW, int DH, int DW, int OH
#define SHIFT_PASS N, C, H, W, KH, KW, DH, DW, OH
#define CONV_ARGS long long N, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, \
                  int DW, int OH, int OW
#define CONV_PASS N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW
#define ENTRY(T, S) \
extern "C" __global__ void im2col_##S(const T* x, T* cols, CONV_ARGS) { im2col_impl<T>(x, cols, CONV_PASS); } \
extern "C" __global__ void col2im_##S(const T* cols, T* dx, CONV_ARGS) { col2im_impl<T>(cols, dx, CONV_PASS); } \
extern "C" __global__ void im2col_shifted_##S(const T* x, T* cols, SHIFT_ARGS) { im2col_shifted_impl<T>(x, cols, SHIFT_PASS); } \
extern "C" __global__ void col2im_shifted_##S(const T* cols, T* dx, SHIFT_ARGS) { col2im_shifted_impl<T>(cols, dx, SHIFT_PASS); }

FLOAT_AND_DOUBLE(ENTRY)
