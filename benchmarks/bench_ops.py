"""Forward+backward timings of convolution, pooling and batch norm, and an MLP training step, next to PyTorch.

    python benchmarks/bench_ops.py [--device cpu|cuda] [--only mlp|conv|pool]
"""
import argparse

from cases import CONV_SHAPES
from timing import Workers, machine, table


def conv_cases(workers):
    return [(f"conv2d fwd+bwd N={n} C={c} H={h} K={k} R={r} s={s} p={p}",
             *workers.compare("conv", n=n, c=c, h=h, k=k, r=r, s=s, p=p)) for n, c, h, k, r, s, p in CONV_SHAPES]


def pool_bn_cases(workers):
    shape = "(32,64,32,32)"
    return [(f"max_pool2d 3x3/2 pad 1 fwd+bwd {shape}", *workers.compare("max_pool", kernel=3, stride=2, padding=1)),
            (f"max_pool2d 2x2/2 fwd+bwd {shape}", *workers.compare("max_pool", kernel=2, stride=2, padding=0)),
            (f"batch_norm train fwd+bwd {shape}", *workers.compare("batch_norm"))]


def mlp_case(workers, batch=128):
    return [(f"MLP 784-256-10 training step (SGD momentum), batch {batch}",
             *workers.compare("mlp_step", repeats=15, batch=batch))]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", choices=["mlp", "conv", "pool"], default=None)
    args = ap.parse_args()
    rows = []
    with Workers(args.device) as workers:
        if args.only in (None, "mlp"):
            rows += mlp_case(workers)
        if args.only in (None, "conv"):
            rows += conv_cases(workers)
        if args.only in (None, "pool"):
            rows += pool_bn_cases(workers)
    print(table(rows, f"float32, device {args.device}, {machine()}, medians"))


if __name__ == "__main__":
    main()
