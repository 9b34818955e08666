"""Training-step timings of LeNet-5 and ResNet-18 next to PyTorch (same architecture, same data, SGD with
momentum), and the peak memory of a ResNet-18 step.

    python benchmarks/bench_models.py [--device cpu|cuda]
"""
import argparse
import subprocess
import sys
from pathlib import Path

from timing import Workers, have_torch, machine, table

HERE = Path(__file__).resolve().parent


def timings(workers, resnet_size, resnet_batch):
    rows = [(f"LeNet-5 training step, batch {batch}", *workers.compare("lenet_step", repeats=20, batch=batch))
            for batch in (32, 128)]
    rows.append((f"ResNet-18 training step, {resnet_size}x{resnet_size}, batch {resnet_batch}",
                 *workers.compare("resnet_step", repeats=6, per_turn=2, size=resnet_size, batch=resnet_batch)))
    return rows


MEMORY_PROBE = r"""
import sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
framework, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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


def peak_step_memory(framework, size, batch):
    """Bytes a second training step adds on top of the resident set before it (Linux /proc), in a fresh process."""
    code = MEMORY_PROBE.format(root=str(HERE.parent), here=str(HERE))
    out = subprocess.run([sys.executable, "-c", code, framework, str(size), str(batch)], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def memory_line(size=64, batch=16):
    ours = peak_step_memory("minicnn", size, batch)
    line = (f"ResNet-18 step ({size}x{size}, batch {batch}), peak memory above the resident set: "
            f"minicnn {ours / 2**20:.0f} MiB")
    if have_torch():
        theirs = peak_step_memory("torch", size, batch)
        line += f", PyTorch {theirs / 2**20:.0f} MiB (ratio {ours / theirs:.2f})"
    return line


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    gpu = args.device.startswith("cuda")
    with Workers(args.device) as workers:
        rows = timings(workers, 224 if gpu else 64, 64 if gpu else 16)
    print(table(rows, f"training steps, float32, device {args.device}, {machine()}, medians"))
    if not gpu:
        print("\n" + memory_line())


if __name__ == "__main__":
    main()
