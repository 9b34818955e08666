"""All the benchmarks in one command: ops (conv2d at the convolution issue's shapes, max_pool2d, batch_norm), the
MLP, LeNet-5 and ResNet-18 training steps and the ResNet-18 step's peak memory, each next to PyTorch in the same
process; a markdown table with the ratios and a bar chart of them.

    python benchmarks/run.py [--device cpu|cuda] [--write]

--write appends the table (with date, machine and command) to benchmarks/RESULTS.md and saves the chart as
benchmarks/ratios-DEVICE.png.
"""
import argparse
import datetime
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_models  # noqa: E402  (imports minicnn before NumPy)
import bench_ops  # noqa: E402
from timing import table  # noqa: E402


def chart(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if r[2]]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    ratios = [r[1] / r[2] for r in rows]
    ax.barh([r[0] for r in rows][::-1], ratios[::-1], color=["tab:green" if q <= 1 else "tab:orange" for q in ratios[::-1]])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xlabel("minicnn time / PyTorch time (lower is better)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    torch = bench_ops.torch
    if torch is not None and args.device == "cpu":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    gpu = args.device.startswith("cuda")
    rows = bench_models.timings(args.device, 224 if gpu else 64, 64 if gpu else 16)
    rows += bench_ops.mlp_case(args.device) + bench_ops.conv_cases(args.device) + bench_ops.pool_bn_cases(args.device)
    machine = (f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, numpy {bench_ops.np.__version__}, "
               f"torch {torch.__version__ if torch else 'absent'}")
    lines = [table(rows, f"{datetime.date.today()} — device {args.device}, {machine}"), "",
             f"Command: `python benchmarks/run.py --device {args.device}`"]
    if not gpu:
        ours = bench_models.peak_step_memory("minicnn", 64, 16)
        mem = f"ResNet-18 step (64x64, batch 16), peak memory above the resident set: minicnn {ours / 2**20:.0f} MiB"
        if torch is not None:
            theirs = bench_models.peak_step_memory("torch", 64, 16)
            mem += f", PyTorch {theirs / 2**20:.0f} MiB (ratio {ours / theirs:.2f})"
        lines += ["", mem]
    text = "\n".join(lines)
    print(text)
    if args.write:
        png = HERE / f"ratios-{args.device.split(':')[0]}.png"
        chart(rows, png, f"minicnn / PyTorch, {args.device}, {datetime.date.today()}")
        with open(HERE / "RESULTS.md", "a") as f:
            f.write(f"\n## Benchmark run {datetime.date.today()}, device {args.device}\n\n{text}\n\n![ratios]({png.name})\n")
        print(f"appended to {HERE / 'RESULTS.md'}, chart in {png}")


if __name__ == "__main__":
    main()
