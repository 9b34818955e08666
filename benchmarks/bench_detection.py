"""The detection operators next to torchvision's: roi_align and roi_pool forward+backward as in a Faster R-CNN
box head, and NMS on 2,000 boxes as on a region proposal network's output.

    python benchmarks/bench_detection.py [--torch-python PATH] [--device cpu|cuda] [--repeats N]

torchvision's compiled operators must match the installed PyTorch build; where they do not (the CPU-only torch of
the dev extra, say), --torch-python runs PyTorch's worker under another interpreter that has a matching pair, e.g.
a virtual environment made with `python -m venv --system-site-packages ENV && ENV/bin/pip install torch
torchvision`. The table is printed; benchmarks/RESULTS.md keeps it by hand.
"""
import argparse

from run import cpu_info
from timing import Case, Workers, machine, measure, table

FEATURES = dict(n=2, c=256, h=50, scale=1 / 16)  # two 800 x 800 images at a stride of 16, 256 channels


def cases():
    rows = [Case(f"{op} fwd+bwd, 512 RoIs, 7x7, features (2,256,50,50)", "roi_op",
                 dict(op=op, rois=512, out=7, **FEATURES)) for op in ("roi_align", "roi_pool")]
    return rows + [Case(f"nms, {count} boxes, IoU threshold 0.7", "nms", dict(count=count, threshold=0.7))
                   for count in (2000,)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--torch-python", default=None, metavar="PATH",
                    help="the interpreter of PyTorch's worker, one where torchvision imports")
    ap.add_argument("--repeats", type=int, default=None, metavar="N")
    args = ap.parse_args()
    with Workers(args.device, repeats=args.repeats, torch_python=args.torch_python) as workers:
        rows = measure(workers, cases())
    model, simd = cpu_info()
    print(table(rows, f"float32, device {args.device}, {model} ({simd}), {machine()}, medians; torchvision's "
                      f"worker: {args.torch_python or 'this interpreter'}"))


if __name__ == "__main__":
    main()
