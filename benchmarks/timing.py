"""Side-by-side timing: minicnn and PyTorch each run in a worker process of its own (benchmarks/worker.py), and
this process has them take turns, a few timed runs each, so both see the same machine load; medians over all runs.

Why not one process: minicnn and PyTorch load the same OpenMP runtime (libgomp), which fixes its threads' wait
policy when the first of them loads it. Run together, one framework's setting is imposed on the other: with
minicnn's OMP_WAIT_POLICY=PASSIVE (minicnn/_process.py) PyTorch's LeNet-5 step took 9.1-16 ms instead of
7.1-7.9 ms, and with PyTorch's default spinning threads minicnn's took 62 ms instead of 10.5 (benchmarks/LOG.md).
Each worker runs with its framework's own settings, as a user's program would.
"""
import importlib.metadata
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PAUSE = 0.02  # seconds between turns: PyTorch's OpenMP threads spin for about 9 ms after a step, then sleep


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


class Worker:
    """A worker process for one framework on one device."""

    def __init__(self, framework, device):
        self.framework = framework
        self.proc = subprocess.Popen([sys.executable, str(HERE / "worker.py"), framework, device],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

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
    """minicnn's worker, and PyTorch's when PyTorch is installed; `with Workers(device) as w: w.compare(...)`."""

    def __init__(self, device="cpu"):
        self.device = device
        self.workers = [Worker("minicnn", device)] + ([Worker("torch", device)] if have_torch() else [])

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
        for _ in range(repeats):
            for w in self.workers:
                time.sleep(PAUSE)
                times[w.framework] += w.ask(time=per_turn)["times"]
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        return medians["minicnn"], medians.get("torch")


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
