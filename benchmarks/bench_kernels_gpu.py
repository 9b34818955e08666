"""Achieved memory bandwidth of the CUDA im2col and pooling kernels: bytes moved / time, against the device's own
copy bandwidth (a large device-to-device copy, bytes read + written).

    python benchmarks/bench_kernels_gpu.py
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import cupy as cp  # noqa: E402
import numpy as np  # noqa: E402

from minicnn import kernels_gpu as K  # noqa: E402


def gpu_time(fn, repeats=20):
    fn()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    times = []
    for _ in range(repeats):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return float(np.median(times))


def main():
    a = cp.ones(256 * 2**20 // 4, cp.float32)
    b = cp.empty_like(a)
    copy_bw = 2 * a.nbytes / gpu_time(lambda: cp.copyto(b, a))
    print(f"device copy bandwidth (read + write): {copy_bw / 1e9:.0f} GB/s\n")
    print("| kernel | shape | bytes moved (MB) | time (ms) | GB/s | of copy bandwidth |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    x = cp.random.standard_normal((64, 64, 56, 56), dtype=cp.float32)
    cases = []
    cols = K.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, 56, 56)
    cases.append(("im2col 3x3 p1", lambda: K.im2col(x, 3, 3, 1, 1, 1, 1, 1, 1, 56, 56), x.nbytes + cols.nbytes))
    cases.append(("col2im 3x3 p1", lambda: K.col2im(cols, 64, 64, 56, 56, 3, 3, 1, 1, 1, 1, 1, 1, 56, 56),
                  x.nbytes + cols.nbytes))
    out, arg = K.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, 28, 28)
    cases.append(("max_pool2d fwd 3x3/2", lambda: K.max_pool2d_forward(x, 3, 3, 2, 2, 1, 1, 28, 28),
                  x.nbytes + out.nbytes + arg.nbytes))
    cases.append(("max_pool2d bwd 3x3/2", lambda: K.max_pool2d_backward(out, arg, 56, 56, 3, 3, 2, 2, 1, 1),
                  x.nbytes + out.nbytes + arg.nbytes))
    cases.append(("avg_pool2d fwd 2x2/2", lambda: K.avg_pool2d_forward(x, 2, 2, 2, 2, 0, 0, 28, 28, True),
                  x.nbytes + out.nbytes))
    for name, fn, nbytes in cases:
        t = gpu_time(fn)
        print(f"| {name} | (64,64,56,56) float32 | {nbytes / 1e6:.0f} | {t * 1e3:.3f} | {nbytes / t / 1e9:.0f} | "
              f"{nbytes / t / copy_bw:.0%} |")


if __name__ == "__main__":
    main()
