// Non-maximum suppression: the suppression bitmask, one thread per 64-bit word (box i against 64 boxes j), then
// the greedy scan in one block. The algorithm and the mask's layout are in minicnn/reference/boxes.py: bit j % 64
// of mask[i * words + j / 64] is set when j > i, the labels match and IoU(i, j) > iou_threshold. The boxes come
// grouped by label, so a word stops at the first box of another label (and past box i's group, a word is 0).

#include "common.cuh"

// Products rounded on their own: no fused multiply-add, so the IoU is the CPU's (and torchvision's) bit for bit.
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <typename T>
__device__ T iou(const T* __restrict__ a, const T* __restrict__ b) {
    const T w = max(min(a[2], b[2]) - max(a[0], b[0]), T(0));
    const T h = max(min(a[3], b[3]) - max(a[1], b[1]), T(0));
    const T inter = mul_rn(w, h);
    const T area_a = mul_rn(a[2] - a[0], a[3] - a[1]), area_b = mul_rn(b[2] - b[0], b[3] - b[1]);
    return inter / (area_a + area_b - inter);
}

template <typename T>
__device__ void mask_rows(const T* __restrict__ boxes, const long long* __restrict__ labels,
                          unsigned long long* __restrict__ mask, long long n, long long words, double threshold) {
    GRID_STRIDE(n * words) {
        const long long i = idx / words, w = idx % words;
        unsigned long long bits = 0;
        for (long long j = max(i + 1, 64 * w); j < min(n, 64 * w + 64) && labels[j] == labels[i]; ++j)
            if (iou(boxes + 4 * i, boxes + 4 * j) > threshold) bits |= 1ULL << (j - 64 * w);
        mask[idx] = bits;
    }
}

// The greedy scan in one block. `removed` (words, zero on entry) collects the rows of the boxes kept. Boxes are
// taken a word (64 boxes) at a time: after a barrier every thread reads word b of `removed` into `current` and
// follows the word's boxes in it, all threads alike; keeping box i ORs mask row i's own word into `current` and
// its later words into `removed`, word v by thread (v - b - 1) % THREADS, so no two threads write one word.
template <typename T>
__device__ void scan(const unsigned long long* __restrict__ mask, unsigned long long* removed,
                     int* __restrict__ kept, long long n, long long words) {
    for (long long b = 0; b < words; ++b) {
        unsigned long long current = removed[b];
        for (long long i = 64 * b; i < min(n, 64 * b + 64); ++i) {
            const bool keep = !((current >> (i - 64 * b)) & 1ULL);
            if (threadIdx.x == 0) kept[i] = keep;
            if (!keep) continue;
            const unsigned long long* row = mask + i * words;
            current |= row[b];
            for (long long v = b + 1 + threadIdx.x; v < words; v += blockDim.x) removed[v] |= row[v];
        }
        __syncthreads();
    }
}

// The scan does not depend on T: its two entry points differ only in name, for _launch's dtype suffix.
#define ENTRY(T, S) \
extern "C" __global__ void nms_mask_##S(const T* boxes, const long long* labels, unsigned long long* mask, long long n, long long words, double threshold) { mask_rows<T>(boxes, labels, mask, n, words, threshold); } \
extern "C" __global__ void nms_scan_##S(const unsigned long long* mask, unsigned long long* removed, int* kept, long long n, long long words) { scan<T>(mask, removed, kept, n, words); }

FLOAT_AND_DOUBLE(ENTRY)
