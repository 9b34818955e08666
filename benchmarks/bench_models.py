"""Model timings next to PyTorch (same architecture, same data): training steps (SGD with momentum) of LeNet-5,
ResNet-18 and DenseNet-121, inference (eval mode, no_grad) of LeNet-5 on one image and of ResNet-18, the cold start
(the first LeNet-5 step in a fresh process with an empty Numba cache), and the peak memory of a ResNet-18 step.

    python benchmarks/bench_models.py [--device cpu|cuda] [--isa native|avx2] [--minicnn-first]
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

from timing import Case, Workers, have_torch, isa_env, machine, measure, selected, table

HERE = Path(__file__).resolve().parent
COLD_BATCH = 64  # the batch size of `minicnn train lenet5`


def cases(gpu=False):
    """The model rows, with their sizes on a GPU (224x224 images, larger batches) or a CPU (64x64, small)."""
    size, resnet_batch, densenet_batch = (224, 64, 32) if gpu else (64, 16, 8)
    at = f"{size}x{size}"
    rows = [Case(f"LeNet-5 training step, batch {batch}", "lenet_step", dict(batch=batch), repeats=20)
            for batch in (32, 128)]
    rows += [Case("LeNet-5 batch-1 inference (eval, no_grad)", "inference", dict(arch="lenet5", batch=1),
                  repeats=20, per_turn=10),
             Case(f"ResNet-18 training step, {at}, batch {resnet_batch}", "resnet_step",
                  dict(size=size, batch=resnet_batch), repeats=6, per_turn=2),
             Case(f"ResNet-18 inference (eval, no_grad), {at}, batch {resnet_batch}", "inference",
                  dict(arch="resnet18", size=size, batch=resnet_batch), repeats=6, per_turn=3),
             Case(f"DenseNet-121 training step, {at}, batch {densenet_batch}", "densenet_step",
                  dict(size=size, batch=densenet_batch), repeats=5, per_turn=2)]
    if not gpu:  # the kernel cache in question is Numba's, the CPU kernels'
        rows.append(Case(f"LeNet-5 cold start, batch {COLD_BATCH}: process start to end of first training step, "
                         "empty Numba cache", "lenet_step", dict(batch=COLD_BATCH), repeats=3, cold=True))
    return rows


def timings(workers, gpu=False, patterns=None, log=None):
    return measure(workers, selected(cases(gpu), patterns), log)


MEMORY_PROBE = r"""
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
framework, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if sys.argv[4] == "numpy-first":
    import numpy
if framework == "minicnn":
    import minicnn as mc, minicnn.functional as F
    import numpy
    mc.manual_seed(0)
    model = mc.models.resnet18()
    opt = mc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = mc.tensor(numpy.random.default_rng(0).standard_normal((batch, 3, size, size)).astype(numpy.float32))
    def step():
        loss = F.cross_entropy(model(x), numpy.zeros(batch, int)); opt.zero_grad(); loss.backward(); opt.step()
else:
    import torch, torch_models
    torch.set_num_threads(2)
    model = torch_models.resnet18(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 3, size, size)
    def step():
        loss = torch.nn.functional.cross_entropy(model(x), torch.zeros(batch, dtype=torch.long))
        opt.zero_grad(); loss.backward(); opt.step()
step()  # the first step allocates the optimizer state and warms every cache
def status(key):
    return int(next(l for l in open("/proc/self/status") if l.startswith(key)).split()[1])
import ctypes
ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap back first: minicnn keeps it for reuse (minicnn/_process.py)
base = status("VmRSS:")
open("/proc/self/clear_refs", "w").write("5")  # reset the peak (VmHWM) to the current size
step()
print((status("VmHWM:") - base) * 1024)
"""


def peak_step_memory(framework, size, batch, isa="native", framework_first=False):
    """Bytes a second training step adds on top of the resident set before it (Linux /proc), in a fresh process
    that imports NumPy first (or its framework first) and runs `isa` code, as the timing workers do."""
    code = MEMORY_PROBE.format(root=str(HERE.parent), here=str(HERE))
    order = "framework-first" if framework_first else "numpy-first"
    out = subprocess.run([sys.executable, "-c", code, framework, str(size), str(batch), order], capture_output=True,
                         text=True, check=True, env={**os.environ, **isa_env(isa, framework)})
    return int(out.stdout.strip().splitlines()[-1])


def memory_line(size=64, batch=16, isa="native", framework_first=False):
    ours = peak_step_memory("minicnn", size, batch, isa, framework_first)
    line = (f"ResNet-18 step ({size}x{size}, batch {batch}), peak memory above the resident set: "
            f"minicnn {ours / 2**20:.0f} MiB")
    if have_torch():
        theirs = peak_step_memory("torch", size, batch, isa, framework_first)
        line += f", PyTorch {theirs / 2**20:.0f} MiB (ratio {ours / theirs:.2f})"
    return line


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--isa", choices=["native", "avx2"], default="native")
    ap.add_argument("--minicnn-first", action="store_true")
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    with Workers(args.device, args.isa, args.minicnn_first) as workers:
        rows = timings(workers, gpu)
    order = "framework imported before NumPy" if args.minicnn_first else "NumPy imported first"
    print(table(rows, f"models, float32, device {args.device}, ISA {args.isa}, {order}, {machine()}, medians"))
    if not gpu:
        print("\n" + memory_line(isa=args.isa, framework_first=args.minicnn_first))


if __name__ == "__main__":
    main()
