"""All the benchmarks in one command: ops (conv2d at the convolution issue's shapes and a 1x1 convolution,
max_pool2d, batch_norm), the MLP, LeNet-5, ResNet-18 and DenseNet-121 training steps, LeNet-5 (batch 1) and ResNet-18
inference, LeNet-5's cold start (empty Numba cache) and the ResNet-18 step's peak memory, each next to PyTorch
(taking turns with it, each in a process of its own that imports NumPy first: benchmarks/timing.py); a markdown
table with the ratios and a bar chart.

    python benchmarks/run.py [--device cpu|cuda] [--isa native|avx2] [--minicnn-first] [--cases A,B] [--repeats N]
                             [--write]

--isa avx2 makes both frameworks run AVX2 code on an AVX-512 CPU (timing.isa_env: Numba targets haswell with the
host's AVX-512 features off and caches its kernels apart, in benchmarks/.numba-avx2; NumPy's AVX-512 loops off;
OpenBLAS as Haswell; PyTorch's ATen, oneDNN and MKL at AVX2). --minicnn-first has each worker import its framework
before NumPy, the order the benchmarks used to take (minicnn then sets OpenBLAS's threads up before NumPy loads it).
--cases keeps the rows whose name holds one of the comma-separated substrings (case-insensitive: "1x1,batch-1,cold",
"memory" for the memory line); --repeats sets every row's number of turns (a quick run).

The cold-start row times a fresh worker process per run, with NUMBA_CACHE_DIR a new empty directory, from just
before the process starts (interpreter start-up, imports, building the model and data included) to the end of the
first training step; PyTorch's likewise.

--write replaces the run's section of benchmarks/RESULTS.md (between `<!-- results:KEY:start -->` and
`<!-- results:KEY:end -->`, KEY the device, with "-avx2" after it for --isa avx2: `cpu`, `cpu-avx2`, `cuda`; added
after the other sections when absent) with this run's table, headed by the date, the machine (CPU model and SIMD
width), the library versions, the ISA, the import order and the command, and saves the chart as
benchmarks/ratios-KEY.png (one file per key, overwritten). Both files are written atomically. What limits each row
(RESULTS.md, below the tables) and the dated history (LOG.md) are kept by hand. --write needs all the rows: not
with --cases.
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
from timing import ISAS, machine, selected, table  # noqa: E402

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


def section_key(device, isa="native"):
    """The key of a run's section of RESULTS.md: the device ("cpu", "cuda"), with "-ISA" after it for a targeted
    ISA ("cpu-avx2")."""
    return device if isa == "native" else f"{device}-{isa}"


def markers(key):
    """The comment lines that delimit a section of RESULTS.md (key: section_key)."""
    return f"<!-- results:{key}:start -->", f"<!-- results:{key}:end -->"


TITLES = {"cpu": "CPU", "cuda": "GPU (CUDA)", "cpu-avx2": "CPU, AVX2 code", "cuda-avx2": "GPU (CUDA), AVX2 host code"}


def section(key, date, where, command, table_text, extra=(), chart=None, setup=()):
    """A section of RESULTS.md, markers included: heading, the run's date, machine, setup lines (ISA, import
    order) and command, the table, extra lines (the memory probe's), the chart."""
    start, end = markers(key)
    lines = [start, f"## {TITLES.get(key, key)}", "", f"- Date: {date}", f"- Machine: {where}"]
    lines += [f"- {line}" for line in setup]
    lines += [f"- Command: `{command}`", "", table_text]
    lines += [line for e in extra for line in ("", e)]
    if chart:
        lines += ["", f"![minicnn time / PyTorch time, {key}]({chart})"]
    return "\n".join(lines + [end])


def machine_line(gpu=False):
    """CPU model (SIMD width), architecture, cores and library versions; the GPU's name on a GPU run."""
    model, simd = cpu_info()
    line = f"{model} ({simd}), {machine()}"
    name = gpu_name() if gpu else None
    return line + (f"; GPU {name}" if name else "")


def isa_line(isa, simd, probe=None):
    """The ISA a run's workers ran, for the section's header: "ISA: native (AVX-512)", "ISA: AVX2 (targeted on an
    AVX-512 CPU: ...)", with what the workers report (worker.probe) after it."""
    if isa == "native":
        line = f"ISA: native ({simd})"
    else:
        line = (f"ISA: {isa.upper()} (targeted on an {simd} CPU: Numba for haswell with the host's AVX-512 "
                "features off, NumPy's AVX-512 loops off, OPENBLAS_CORETYPE=Haswell; PyTorch with "
                "ATEN_CPU_CAPABILITY=avx2, ONEDNN_MAX_CPU_ISA=AVX2, MKL_ENABLE_INSTRUCTIONS=AVX2)")
    return line + (f"; the workers report: {probe}" if probe else "")


def order_line(framework_first):
    if framework_first:
        return "Import order: each worker imports its framework before NumPy (--minicnn-first)"
    return "Import order: each worker imports NumPy before its framework, as users do"


def replace_section(text, key, new_section):
    """text (RESULTS.md) with the marked section `key` replaced by new_section (the markers included); where the
    file has no such section, new_section goes after the last section, or at the end."""
    start, end = markers(key)
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


def write_section(key, new_section, path=RESULTS):
    """Replace (or add) the section `key` of the results file in place, atomically."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    updated = replace_section(text, key, new_section)
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


def check_isa(isa, simd):
    """An error message where this CPU cannot run `isa` code, else None."""
    if isa == "avx2" and simd not in ("AVX2", "AVX-512"):
        return f"--isa avx2 needs an x86 CPU with AVX2; this one has {simd}"
    return None


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ap.add_argument("--isa", choices=ISAS, default="native",
                    help="native (default): each library's own choice; avx2: AVX2 code on an AVX-512 CPU")
    ap.add_argument("--minicnn-first", action="store_true",
                    help="each worker imports its framework before NumPy (default: NumPy first, as users do)")
    ap.add_argument("--cases", type=lambda s: [p.strip() for p in s.split(",") if p.strip()], default=None,
                    metavar="A,B,...", help="only the rows whose name holds one of these substrings "
                    "(case-insensitive), e.g. \"1x1,batch-1,cold\"; \"memory\" for the memory line")
    ap.add_argument("--repeats", type=int, default=None, metavar="N",
                    help="turns per row for every row, in place of each row's own (a quick run)")
    ap.add_argument("--write", action="store_true", help="replace this run's section of RESULTS.md and its chart")
    args = ap.parse_args(argv)
    if args.write and args.cases:
        ap.error("--write records every row: drop --cases")
    if args.repeats is not None and args.repeats < 1:
        ap.error("--repeats must be at least 1")
    problem = check_isa(args.isa, cpu_info()[1])
    if problem:
        ap.error(problem)
    return args


MEMORY_ROW = "ResNet-18 training step peak memory"


def main():
    args = parse_args()
    import bench_models
    import bench_ops
    from timing import Workers, measure
    gpu = args.device.startswith("cuda")
    device = args.device.split(":")[0]
    key = section_key(device, args.isa)
    command = shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]])
    date = datetime.date.today()
    todo = selected(bench_models.cases(gpu) + bench_ops.cases(), args.cases)
    memory = not gpu and bool(selected([MEMORY_ROW], args.cases))
    if not todo and not memory:
        sys.exit(f"no row's name holds any of {args.cases}")

    def log(row):
        name, ours, theirs = row
        ratio = f", ratio {ours / theirs:.2f}" if theirs else ""
        print(f"{name}: minicnn {ours * 1e3:.3f} ms" + (f", PyTorch {theirs * 1e3:.3f} ms" if theirs else "") +
              ratio, file=sys.stderr, flush=True)
    with Workers(args.device, args.isa, args.minicnn_first, args.repeats) as workers:
        probe = workers.probe()
        rows = measure(workers, todo, log)
    extra = [bench_models.memory_line(isa=args.isa, framework_first=args.minicnn_first)] if memory else []
    where = machine_line(gpu)
    setup = [isa_line(args.isa, cpu_info()[1], probe), order_line(args.minicnn_first)]
    print(section(key, date, where, command, table(rows), extra, setup=setup))
    if args.write:
        png = HERE / f"ratios-{key}.png"
        chart(rows, png, f"minicnn / PyTorch, {args.device}, {'' if args.isa == 'native' else args.isa + ', '}{date}")
        write_section(key, section(key, date, where, command, table(rows), extra, png.name, setup))
        print(f"replaced the {key} section of {RESULTS}, chart in {png}")


if __name__ == "__main__":
    main()
