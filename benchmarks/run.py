"""All the benchmarks in one command: ops (conv2d at the convolution issue's shapes, max_pool2d, batch_norm), the
MLP, LeNet-5 and ResNet-18 training steps and the ResNet-18 step's peak memory, each next to PyTorch (taking turns
with it, each in a process of its own: benchmarks/timing.py); a markdown table with the ratios and a bar chart.

    python benchmarks/run.py [--device cpu|cuda] [--write]

--write appends the table (with date, machine and command) to benchmarks/RESULTS.md and saves the chart as
benchmarks/ratios-DEVICE.png.
"""
import argparse
import datetime
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_models  # noqa: E402
import bench_ops  # noqa: E402
from timing import Workers, machine, table  # noqa: E402


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
    gpu = args.device.startswith("cuda")
    with Workers(args.device) as workers:
        rows = bench_models.timings(workers, 224 if gpu else 64, 64 if gpu else 16)
        rows += bench_ops.mlp_case(workers) + bench_ops.conv_cases(workers) + bench_ops.pool_bn_cases(workers)
    lines = [table(rows, f"{datetime.date.today()} — device {args.device}, {machine()}"), "",
             f"Command: `python benchmarks/run.py --device {args.device}`"]
    if not gpu:
        lines += ["", bench_models.memory_line()]
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
