"""All the benchmarks in one command: ops (conv2d at the convolution issue's shapes, max_pool2d, batch_norm), the
MLP, LeNet-5 and ResNet-18 training steps and the ResNet-18 step's peak memory, each next to PyTorch (taking turns
with it, each in a process of its own: benchmarks/timing.py); a markdown table with the ratios and a bar chart.

    python benchmarks/run.py [--device cpu|cuda] [--write]

--write replaces the device's section of benchmarks/RESULTS.md (between `<!-- results:DEVICE:start -->` and
`<!-- results:DEVICE:end -->`; added after the other devices' sections when absent) with this run's table, headed
by the date, the machine (CPU model and SIMD width), the library versions and the command, and saves the chart as
benchmarks/ratios-DEVICE.png (one file per device, overwritten). Both files are written atomically. What limits
each row (RESULTS.md, below the tables) and the dated history (LOG.md) are kept by hand.
"""
import argparse
import datetime
import os
import platform
import re
import shlex
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from timing import machine, table  # noqa: E402

RESULTS = HERE / "RESULTS.md"


def cpu_info(path="/proc/cpuinfo"):
    """(CPU model, SIMD width) from /proc/cpuinfo: the first "model name", and "AVX-512" where the flags hold
    avx512f, "AVX2" where they hold avx2, else "SSE/NEON". Unknown parts fall back to platform's answers."""
    model, flags = None, set()
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE/NEON"
    return model, simd


def gpu_name():
    """The GPU's name and CuPy's version, or None without them."""
    try:
        import cupy
        name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
        return f"{name.decode() if isinstance(name, bytes) else name}, cupy {cupy.__version__}"
    except Exception:  # no CuPy, no driver, no device
        return None


def markers(device):
    """The comment lines that delimit a device's section of RESULTS.md."""
    return f"<!-- results:{device}:start -->", f"<!-- results:{device}:end -->"


TITLES = {"cpu": "CPU", "cuda": "GPU (CUDA)"}


def section(device, date, where, command, table_text, extra=(), chart=None):
    """A device's section of RESULTS.md, markers included: heading, the run's date, machine and command, the table,
    extra lines (the memory probe's), the chart."""
    start, end = markers(device)
    lines = [start, f"## {TITLES.get(device, device)}", "", f"- Date: {date}", f"- Machine: {where}",
             f"- Command: `{command}`", "", table_text]
    lines += [line for e in extra for line in ("", e)]
    if chart:
        lines += ["", f"![minicnn time / PyTorch time, {device}]({chart})"]
    return "\n".join(lines + [end])


def machine_line(gpu=False):
    """CPU model (SIMD width), architecture, cores and library versions; the GPU's name on a GPU run."""
    model, simd = cpu_info()
    line = f"{model} ({simd}), {machine()}"
    name = gpu_name() if gpu else None
    return line + (f"; GPU {name}" if name else "")


def replace_section(text, device, new_section):
    """text (RESULTS.md) with the device's marked section replaced by new_section (the markers included); where the
    file has no section for the device, new_section goes after the last device's section, or at the end."""
    start, end = markers(device)
    found = re.search(re.escape(start) + r".*?" + re.escape(end), text, flags=re.S)
    if found:
        return text[:found.start()] + new_section + text[found.end():]
    ends = list(re.finditer(r"<!-- results:[\w-]+:end -->", text))
    if ends:
        at = ends[-1].end()
        return text[:at] + "\n\n" + new_section + text[at:]
    return text.rstrip("\n") + ("\n\n" if text.strip() else "") + new_section + "\n"


def write_atomically(path, write, mode="w"):
    """write(file) into a temporary file of a unique name beside path, then moved over path in one step: a reader
    (or a second run) never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_section(device, new_section, path=RESULTS):
    """Replace (or add) the device's section of the results file in place, atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    updated = replace_section(text, device, new_section)
    write_atomically(path, lambda f: f.write(updated))


def chart(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if r[2]]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.2))
    ratios = [r[1] / r[2] for r in rows]
    colors = ["tab:green" if q <= 1 else "tab:orange" for q in ratios]
    ax.barh([r[0] for r in rows][::-1], ratios[::-1], color=colors[::-1])
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xlabel("minicnn time / PyTorch time (lower is better)")
    ax.set_title(title)
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, dpi=90, format="png"), mode="wb")
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import bench_models
    import bench_ops
    from timing import Workers
    gpu = args.device.startswith("cuda")
    device = args.device.split(":")[0]
    command = shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])
    date = datetime.date.today()
    with Workers(args.device) as workers:
        rows = bench_models.timings(workers, 224 if gpu else 64, 64 if gpu else 16)
        rows += bench_ops.mlp_case(workers) + bench_ops.conv_cases(workers) + bench_ops.pool_bn_cases(workers)
    extra = [] if gpu else [bench_models.memory_line()]
    where = machine_line(gpu)
    print(section(device, date, where, command, table(rows), extra))
    if args.write:
        png = HERE / f"ratios-{device}.png"
        chart(rows, png, f"minicnn / PyTorch, {args.device}, {date}")
        write_section(device, section(device, date, where, command, table(rows), extra, png.name))
        print(f"replaced the {device} section of {RESULTS}, chart in {png}")


if __name__ == "__main__":
    main()
