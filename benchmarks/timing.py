"""Side-by-side timing: minicnn and PyTorch each run in a worker process of its own (benchmarks/worker.py), and
this process has them take turns, a few timed runs each, so both see the same machine load; medians over all runs.

Why not one process: minicnn and PyTorch load the same OpenMP runtime (libgomp), which fixes its threads' wait
policy when the first of them loads it. Run together, one framework's setting is imposed on the other: with
minicnn's OMP_WAIT_POLICY=PASSIVE (minicnn/_process.py) PyTorch's LeNet-5 step took 9.1-16 ms instead of
7.1-7.9 ms, and with PyTorch's default spinning threads minicnn's took 62 ms instead of 10.5 (benchmarks/LOG.md).
Each worker runs with its framework's own settings, as a user's program would, and imports NumPy first (as a user's
notebook does) unless told to import its framework first.

ISA: `Workers(isa="avx2")` makes both workers run AVX2 code on an AVX-512 CPU (isa_env). Cold start: a fresh worker
per run with an empty Numba cache directory, timed from just before the process starts (interpreter start-up and
imports included) to the end of the first run of the case (Workers.cold_start).
"""
import functools
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
PAUSE = 0.02  # seconds between turns: PyTorch's OpenMP threads spin for about 9 ms after a step, then sleep
AVX2_NUMBA_CACHE = HERE / ".numba-avx2"  # minicnn's kernels compiled for AVX2, apart from the native ones
ISAS = ("native", "avx2")


def avx2_cpu_features(host=None):
    """The host's LLVM feature string ("+avx2,+fma,...") with every AVX-512 feature turned off (avx512*, AVX10,
    which implies AVX-512, evex512): for NUMBA_CPU_FEATURES. Numba takes the host's features unless that is set,
    so NUMBA_CPU_NAME=haswell alone still emits AVX-512 code."""
    if host is None:
        import llvmlite.binding as llvm
        host = llvm.get_host_cpu_features().flatten()

    def off(name):
        return "avx512" in name or name.startswith("avx10") or name == "evex512"
    features = [f for f in host.split(",") if f]
    return ",".join("-" + f[1:] if off(f[1:]) else f for f in features)


@functools.lru_cache(maxsize=None)
def numpy_avx512_targets():
    """NumPy's AVX-512 dispatch targets (X86_V4, AVX512_*: for NPY_DISABLE_CPU_FEATURES), read in a child process
    so that this one does not load NumPy; empty where NumPy has none."""
    code = ("import numpy\n"
            "try:\n    from numpy._core._multiarray_umath import __cpu_dispatch__ as d\n"
            "except ImportError:\n    from numpy.core._multiarray_umath import __cpu_dispatch__ as d\n"
            "print(' '.join(t for t in d if 'AVX512' in t or t == 'X86_V4'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def isa_env(isa, framework):
    """Environment variables that make a worker run `isa` code: {} for "native"; for "avx2" AVX-512 turned off in
    every library the framework's worker runs: Numba (NUMBA_CPU_NAME=haswell and the host's features less AVX-512,
    its cache in AVX2_NUMBA_CACHE), NumPy's own SIMD loops, OpenBLAS (NumPy's BLAS), and for PyTorch ATen's kernels
    (ATEN_CPU_CAPABILITY), oneDNN (its convolutions: ATen's setting does not reach them) and MKL (its BLAS)."""
    if isa == "native":
        return {}
    if isa != "avx2":
        raise ValueError(f"unknown ISA {isa!r}: one of {ISAS}")
    env = {"OPENBLAS_CORETYPE": "Haswell"}
    targets = numpy_avx512_targets()
    if targets:
        env["NPY_DISABLE_CPU_FEATURES"] = targets
    if framework == "minicnn":
        AVX2_NUMBA_CACHE.mkdir(exist_ok=True)
        ignore = AVX2_NUMBA_CACHE / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")  # git ignores the cache, and this file, without an entry in .gitignore
        env.update(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=avx2_cpu_features(),
                   NUMBA_CACHE_DIR=str(AVX2_NUMBA_CACHE))
    else:
        env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2", MKL_ENABLE_INSTRUCTIONS="AVX2")
    return env


def have_torch():
    return importlib.util.find_spec("torch") is not None


def machine():
    """The machine and library versions, for the table's title."""
    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "absent"
    return (f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores, numpy {version('numpy')}, "
            f"numba {version('numba')}, torch {version('torch')}")


class Case(NamedTuple):
    """A row of a table: its name, the case (benchmarks/cases.py) and its arguments, how many turns and runs a turn;
    cold: a cold-start row (Workers.cold_start: `repeats` fresh processes each) instead of warm runs."""
    name: str
    case: str
    args: dict
    repeats: int = 10
    per_turn: int = 3
    cold: bool = False


def selected(rows, patterns=None):
    """The rows (Cases, or names) whose name holds one of the patterns (case-insensitive substrings); all of them
    when patterns is None or empty."""
    if not patterns:
        return list(rows)
    pats = [p.lower() for p in patterns]
    return [r for r in rows if any(p in (r if isinstance(r, str) else r.name).lower() for p in pats)]


def measure(workers, rows, log=None):
    """[(name, minicnn seconds, PyTorch seconds or None)] for the Cases in rows, one after another; each row is
    also passed to log(row) when it is done (progress)."""
    out = []
    for r in rows:
        if r.cold:
            times = workers.cold_start(r.case, repeats=r.repeats, **r.args)
        else:
            times = workers.compare(r.case, repeats=r.repeats, per_turn=r.per_turn, **r.args)
        out.append((r.name, *times))
        if log:
            log(out[-1])
    return out


class Worker:
    """A worker process for one framework on one device, with extra environment variables `env`, run by the Python
    interpreter `python` (this one by default)."""

    def __init__(self, framework, device, env=None, framework_first=False, python=None):
        self.framework = framework
        argv = [python or sys.executable, str(HERE / "worker.py"), framework, device] + \
            (["--framework-first"] if framework_first else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.framework} benchmark worker died (its error is printed above)")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Workers:
    """minicnn's worker, and PyTorch's when PyTorch is installed; `with Workers(device) as w: w.compare(...)`.
    isa: "native" or "avx2" (isa_env); framework_first: each worker imports its framework before NumPy;
    repeats: when given, the number of turns of every comparison (a quick run), in place of each case's own;
    torch_python: the interpreter of PyTorch's worker (one with torchvision, say), this one by default."""

    def __init__(self, device="cpu", isa="native", framework_first=False, repeats=None, torch_python=None):
        self.device, self.framework_first, self.repeats = device, framework_first, repeats
        self.python = {"torch": torch_python}
        self.frameworks = ["minicnn"] + (["torch"] if torch_python or have_torch() else [])
        self.env = {name: isa_env(isa, name) for name in self.frameworks}
        self.workers = [self._start(name) for name in self.frameworks]

    def _start(self, name, **env):
        return Worker(name, self.device, {**self.env[name], **env}, self.framework_first, self.python.get(name))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for w in self.workers:
            w.close()

    def compare(self, case, repeats=10, per_turn=3, **args):
        """Median seconds of one run of `case` (benchmarks/cases.py) for minicnn and for PyTorch (None without it):
        `repeats` turns each, alternating, of `per_turn` timed runs."""
        for w in self.workers:
            w.ask(build=case, args=args)
        times = {w.framework: [] for w in self.workers}
        for _ in range(self.repeats or repeats):
            for w in self.workers:
                time.sleep(PAUSE)
                times[w.framework] += w.ask(time=per_turn)["times"]
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        return medians["minicnn"], medians.get("torch")

    def cold_start(self, case, repeats=3, **args):
        """Median seconds from starting a fresh worker process, with NUMBA_CACHE_DIR a new empty directory (nothing
        compiled yet), to the end of the first run of `case`: interpreter start-up, imports, building the model
        and data, and the first run with all its compilation. For minicnn and for PyTorch (None without it),
        taking turns, `repeats` each."""
        times = {name: [] for name in self.frameworks}
        for _ in range(self.repeats or repeats):
            for name in self.frameworks:
                with tempfile.TemporaryDirectory(prefix="minicnn-cold-numba-") as cache:
                    time.sleep(PAUSE)
                    t0 = time.perf_counter()
                    worker = self._start(name, NUMBA_CACHE_DIR=cache)
                    try:
                        worker.ask(first=case, args=args)
                        times[name].append(time.perf_counter() - t0)
                    finally:
                        worker.close()
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        return medians["minicnn"], medians.get("torch")

    def probe(self):
        """What code each worker runs ("Numba targets haswell, no 512-bit (zmm) code; PyTorch CPU capability
        AVX2"): worker.probe. An error where a worker imported NumPy and its framework in the other order."""
        lines = []
        for w in self.workers:
            reply = w.ask(probe=True)
            expected = w.framework if self.framework_first else "numpy"
            if reply["first"] != expected:
                raise RuntimeError(f"the {w.framework} worker imported {reply['first']} first, not {expected}")
            lines.append(reply["isa"])
        return "; ".join(lines)


def table(rows, title=None):
    """rows: (case, minicnn seconds, torch seconds or None) -> a markdown table with the ratio, under a heading
    `### title` when a title is given."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| case | minicnn (ms) | PyTorch (ms) | minicnn / PyTorch |", "| --- | ---: | ---: | ---: |"]
    for case, ours, theirs in rows:
        ratio = f"{ours / theirs:.2f}" if theirs else "n/a"
        th = f"{theirs * 1e3:.3f}" if theirs else "n/a"
        lines.append(f"| {case} | {ours * 1e3:.3f} | {th} | {ratio} |")
    return "\n".join(lines)
