"""Forward+backward timings of convolution, pooling and batch norm, and an MLP training step, next to PyTorch.

    python benchmarks/bench_ops.py [--device cpu|cuda] [--only mlp|conv|pool]
"""
import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import minicnn as mc  # noqa: E402  (first: it tunes OpenBLAS's threads before NumPy loads it)
import numpy as np  # noqa: E402
import minicnn.functional as F  # noqa: E402
from timing import race, step_pair, table  # noqa: E402

try:
    import torch
except ImportError:
    torch = None

# (N, C, H, K, R, stride, padding): the convolution issue's three shapes
CONV_SHAPES = [(32, 64, 32, 64, 3, 1, 1), (128, 6, 14, 16, 5, 1, 0), (8, 3, 112, 64, 7, 2, 3)]


def fwd_bwd(f, ones):
    """A callable running f() and a backward pass with a gradient of ones."""
    def run():
        y = f()
        y.backward(ones(y))
    return run


def mc_ones(y, _cache={}):
    key = (y.shape, str(y.device), y.dtype)
    if key not in _cache:
        _cache[key] = mc.backend.xp_of(y.data).ones(y.shape, dtype=y.dtype)
    return _cache[key]


def torch_ones(y):
    return torch.ones_like(y)


def pair(device, ours, theirs):
    fns = {"minicnn": fwd_bwd(ours, mc_ones)}
    if torch is not None:
        fns["torch"] = fwd_bwd(theirs, torch_ones)
    t = race(fns, device)
    return t["minicnn"], t.get("torch")


def leaves(device, *arrays):
    ours = [mc.tensor(a, requires_grad=True, device=device) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True, device=device) for a in arrays] if torch else [None] * len(arrays)
    return ours, theirs


def conv_cases(device):
    rng = np.random.default_rng(0)
    rows = []
    for n, c, h, k, r, s, p in CONV_SHAPES:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        w = (rng.standard_normal((k, c, r, r)) * 0.1).astype(np.float32)
        (mx, mw, mb), (tx, tw, tb) = leaves(device, x, w, np.zeros(k, np.float32))
        t = pair(device, lambda: F.conv2d(mx, mw, mb, stride=s, padding=p),
                 lambda: torch.nn.functional.conv2d(tx, tw, tb, stride=s, padding=p))
        rows.append((f"conv2d fwd+bwd N={n} C={c} H={h} K={k} R={r} s={s} p={p}", *t))
    return rows


def pool_bn_cases(device):
    x = np.random.default_rng(0).standard_normal((32, 64, 32, 32)).astype(np.float32)
    (mx, mwt, mbs), (tx, twt, tbs) = leaves(device, x, np.ones(64, np.float32), np.zeros(64, np.float32))
    rm, rv = (mc.tensor(a, device=device) for a in (np.zeros(64, np.float32), np.ones(64, np.float32)))
    if torch is not None:
        trm, trv = torch.zeros(64, device=device), torch.ones(64, device=device)
    shape = "(32,64,32,32)"
    return [
        (f"max_pool2d 3x3/2 pad 1 fwd+bwd {shape}", *pair(device, lambda: F.max_pool2d(mx, 3, 2, 1),
                                                         lambda: torch.nn.functional.max_pool2d(tx, 3, 2, 1))),
        (f"max_pool2d 2x2/2 fwd+bwd {shape}", *pair(device, lambda: F.max_pool2d(mx, 2, 2),
                                                   lambda: torch.nn.functional.max_pool2d(tx, 2, 2))),
        (f"batch_norm train fwd+bwd {shape}",
         *pair(device, lambda: F.batch_norm(mx, rm, rv, mwt, mbs, training=True),
               lambda: torch.nn.functional.batch_norm(tx, trm, trv, twt, tbs, training=True))),
    ]


def mlp_case(device, batch=128):
    rng = np.random.default_rng(0)
    x, y = rng.random((batch, 784), dtype=np.float32), rng.integers(0, 10, batch)
    mc.manual_seed(0)
    model = mc.nn.Sequential(mc.nn.Linear(784, 256), mc.nn.ReLU(), mc.nn.Linear(256, 10)).to(device)

    def theirs(torch):
        return torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    return [(f"MLP 784-256-10 training step (SGD momentum), batch {batch}",
             *step_pair(model, theirs, x, y, device, 30))]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", choices=["mlp", "conv", "pool"], default=None)
    args = ap.parse_args()
    if torch is not None and args.device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, device {args.device}, "
          f"torch {torch.__version__ if torch else 'absent'}, numpy {np.__version__}")
    rows = []
    if args.only in (None, "mlp"):
        rows += mlp_case(args.device)
    if args.only in (None, "conv"):
        rows += conv_cases(args.device)
    if args.only in (None, "pool"):
        rows += pool_bn_cases(args.device)
    print(table(rows, f"float32, device {args.device}, medians"))


if __name__ == "__main__":
    main()
