"""Forward+backward timings of convolution, pooling and batch norm, and an MLP training step, next to PyTorch.

    python benchmarks/bench_ops.py [--device cpu|cuda] [--isa native|avx2] [--minicnn-first] [--only mlp|conv|pool]
"""
import argparse

from cases import CONV_SHAPES
from timing import Case, Workers, machine, measure, table


def conv_cases():
    return [Case(f"conv2d fwd+bwd N={n} C={c} H={h} K={k} {r}x{r} s={s} p={p}", "conv",
                 dict(n=n, c=c, h=h, k=k, r=r, s=s, p=p)) for n, c, h, k, r, s, p in CONV_SHAPES]


def pool_bn_cases():
    shape = "(32,64,32,32)"
    return [Case(f"max_pool2d 3x3/2 pad 1 fwd+bwd {shape}", "max_pool", dict(kernel=3, stride=2, padding=1)),
            Case(f"max_pool2d 2x2/2 fwd+bwd {shape}", "max_pool", dict(kernel=2, stride=2, padding=0)),
            Case(f"batch_norm train fwd+bwd {shape}", "batch_norm", {})]


def mlp_case(batch=128):
    return [Case(f"MLP 784-256-10 training step (SGD momentum), batch {batch}", "mlp_step", dict(batch=batch),
                 repeats=15)]


def cases():
    return mlp_case() + conv_cases() + pool_bn_cases()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--isa", choices=["native", "avx2"], default="native")
    ap.add_argument("--minicnn-first", action="store_true")
    ap.add_argument("--only", choices=["mlp", "conv", "pool"], default=None)
    args = ap.parse_args()
    todo = []
    if args.only in (None, "mlp"):
        todo += mlp_case()
    if args.only in (None, "conv"):
        todo += conv_cases()
    if args.only in (None, "pool"):
        todo += pool_bn_cases()
    with Workers(args.device, args.isa, args.minicnn_first) as workers:
        rows = measure(workers, todo)
    order = "framework imported before NumPy" if args.minicnn_first else "NumPy imported first"
    print(table(rows, f"float32, device {args.device}, ISA {args.isa}, {order}, {machine()}, medians"))


if __name__ == "__main__":
    main()
