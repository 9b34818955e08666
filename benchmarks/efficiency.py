"""How far from the machine's limit each compute-bound row of RESULTS.md runs: the row's floating-point work over
its median time (minicnn's and PyTorch's, read from a section of RESULTS.md), next to the sgemm peak of this
machine (NumPy's OpenBLAS on large square float32 products, all cores, best of several runs).

    python benchmarks/efficiency.py [--section cpu|cpu-avx2] [--isa native|avx2]

Work per row: a convolution's forward is 2 x its multiply-accumulates (MACs); a training step (or a conv2d
fwd+bwd row) is 3 x the forward's (the input gradient and the weight gradient each cost one forward; the first
layer's input gradient, which no framework computes, is left out); inference is 1 x. MACs come from `mc.summary`
(convolutions and linear layers). Run it with --isa matching the section, so that the peak is the same ISA's.
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from timing import isa_env  # noqa: E402

PEAK_SIZE = 2048  # float32 products of PEAK_SIZE x PEAK_SIZE matrices for the peak


def sgemm_peak(isa):
    """Best GFLOP/s of NumPy's float32 matmul on square matrices, in a fresh process (with the ISA's environment)."""
    code = ("import time\nimport numpy as np\n"
            f"n = {PEAK_SIZE}\n"
            "a, b = (np.random.default_rng(0).standard_normal((n, n)).astype(np.float32) for _ in range(2))\n"
            "times = []\n"
            "for _ in range(8):\n"
            "    t = time.perf_counter()\n"
            "    a @ b\n"
            "    times.append(time.perf_counter() - t)\n"
            "print(2 * n ** 3 / min(times) / 1e9)\n")
    env = dict(os.environ, **isa_env(isa, "minicnn"))  # NumPy and OpenBLAS as the minicnn worker has them
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def _macs(arch, shape, batch):
    import minicnn as mc
    mc.manual_seed(0)
    return mc.summary(getattr(mc.models, arch)(), shape).total_macs * batch


def _first_layer_macs(arch, shape, batch):
    """MACs of the model's first convolution: its input gradient is not computed in a training step."""
    import minicnn as mc
    convs = [r for r in mc.summary(getattr(mc.models, arch)(), shape).rows if r.type == "Conv2d"]
    return convs[0].macs * batch


def work(name):
    """Floating-point operations of a RESULTS.md row, or None for rows bound by memory or start-up."""
    conv = re.match(r"conv2d fwd\+bwd N=(\d+) C=(\d+) H=(\d+) K=(\d+) (\d+)x\d+ s=(\d+) p=(\d+)", name)
    if conv:
        n, c, h, k, r, s, p = map(int, conv.groups())
        out = (h + 2 * p - r) // s + 1
        return 3 * 2 * n * k * out * out * c * r * r
    model = re.match(r"(LeNet-5|ResNet-18|DenseNet-121) (training step|inference)", name)
    if not model or "batch-1" in name:
        return None
    arch = {"LeNet-5": "lenet5", "ResNet-18": "resnet18", "DenseNet-121": "densenet121"}[model.group(1)]
    batch = int(re.search(r"batch (\d+)", name).group(1))
    size = re.search(r"(\d+)x\1", name)
    shape = (1, 28, 28) if arch == "lenet5" else (3, int(size.group(1)), int(size.group(1)))
    macs = _macs(arch, shape, batch)
    if model.group(2) == "inference":
        return 2 * macs
    return 2 * (3 * macs - _first_layer_macs(arch, shape, batch))


def rows_of(section):
    """(case, minicnn ms, PyTorch ms) of the table in RESULTS.md's section `section`."""
    text = (HERE / "RESULTS.md").read_text()
    body = text.split(f"<!-- results:{section}:start -->")[1].split(f"<!-- results:{section}:end -->")[0]
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \| [\d.]+ \|$", body, flags=re.M)
    return [(case, float(mine), float(theirs)) for case, mine, theirs in rows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--section", default="cpu", help="the RESULTS.md section to read (cpu, cpu-avx2)")
    parser.add_argument("--isa", default="native", choices=["native", "avx2"])
    args = parser.parse_args()
    peak = sgemm_peak(args.isa)
    print(f"sgemm peak (NumPy/OpenBLAS, float32, {PEAK_SIZE}^3, {os.cpu_count()} cores, {args.isa}): "
          f"{peak:.0f} GFLOP/s\n")
    print("| case | GFLOP | minicnn GFLOP/s (% of peak) | PyTorch GFLOP/s (% of peak) |")
    print("| --- | ---: | ---: | ---: |")
    for case, mine, theirs in rows_of(args.section):
        flops = work(case)
        if flops is None:
            continue
        rates = [flops / (ms * 1e-3) / 1e9 for ms in (mine, theirs)]
        print(f"| {case} | {flops / 1e9:.2f} | " + " | ".join(f"{r:.0f} ({100 * r / peak:.0f} %)" for r in rates)
              + " |")


if __name__ == "__main__":
    main()
