// im2col and col2im for 2-D convolution. One thread per output element, grid-stride loops, 64-bit indices.
// cols has shape (C*KH*KW, N*OH*OW): row (c, r, s), column (n, i, j) holds
// x[n, c, i*SH - PH + r*DH, j*SW - PW + s*DW], or 0 outside the image.
// col2im is a gather: each input pixel sums the column entries that read it, so there are no atomics.

template <typename T>
__device__ void im2col_impl(const T* __restrict__ x, T* __restrict__ cols, long long N, int C, int H, int W,
                            int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, int OH, int OW) {
    const long long P = (long long)OH * OW;
    const long long NP = N * P;
    const long long total = (long long)C * KH * KW * NP;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
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
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < total;
         idx += (long long)blockDim.x * gridDim.x) {
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

#define CONV_ARGS long long N, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, \
                  int DW, int OH, int OW
#define CONV_PASS N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW

extern "C" __global__ void im2col_f32(const float* x, float* cols, CONV_ARGS) { im2col_impl<float>(x, cols, CONV_PASS); }
extern "C" __global__ void im2col_f64(const double* x, double* cols, CONV_ARGS) { im2col_impl<double>(x, cols, CONV_PASS); }
extern "C" __global__ void col2im_f32(const float* cols, float* dx, CONV_ARGS) { col2im_impl<float>(cols, dx, CONV_PASS); }
extern "C" __global__ void col2im_f64(const double* cols, double* dx, CONV_ARGS) { col2im_impl<double>(cols, dx, CONV_PASS); }
