"""One framework's side of a benchmark: `python worker.py minicnn|torch DEVICE [--framework-first]`, driven by
benchmarks/timing.py through stdin/stdout, one JSON line each way.

    {"build": NAME, "args": {...}}  ->  {"ok": true}             build the case and run it WARMUP times
    {"time": N}                     ->  {"times": [s, ...]}      run it untimed for TURN_WARMUP seconds (at least
                                                                 once), then N times timed
    {"first": NAME, "args": {...}}  ->  {"step": s}              build the case and time its first run only (the
                                                                 cold-start row: timing.py times the whole process)
    {"probe": true}                 ->  {"isa": "...",           what code the framework runs (the ISA header line),
                                         "first": "numpy"}       and which was imported first, NumPy or the framework

The worker imports NumPy before its framework, as a user's script or notebook does (NumPy, matplotlib or pandas
first); --framework-first imports the framework first instead (minicnn then sets OpenBLAS's thread timeout before
NumPy loads OpenBLAS: minicnn/_process.py), the order the benchmarks used before.
"""
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
WARMUP = 3
TURN_WARMUP = 0.05  # seconds of untimed runs at the start of a turn: the runs of a training loop, not of a core
#                     waking from the pause between turns (a few-ms op runs up to 1.5x slower for ~10 ms after it)


def probe(framework):
    """A line on the vector code this framework runs here: for minicnn whether Numba's code for a small loop uses
    512-bit registers (zmm) and the CPU Numba targets; for PyTorch its CPU capability (ATen's kernels)."""
    if framework == "torch":
        import os
        import torch
        onednn = os.environ.get("ONEDNN_MAX_CPU_ISA")
        return f"PyTorch CPU capability {torch.backends.cpu.get_cpu_capability()}" + \
            (f", oneDNN at most {onednn}" if onednn else "")
    import numba
    import numpy as np
    from numba.core import config

    @numba.njit(fastmath=True, cache=False)
    def axpy(y, x):
        for i in range(y.size):
            y[i] += 2.0 * x[i]
    y = np.ones(64, np.float32)
    axpy(y, y)
    zmm = "zmm" in axpy.inspect_asm(axpy.signatures[0])
    cpu = config.CPU_NAME or "host"
    return f"Numba targets {cpu}, {'512-bit (zmm) code' if zmm else 'no 512-bit (zmm) code'}"


def main():
    framework, device = sys.argv[1], sys.argv[2]
    if "--framework-first" not in sys.argv[3:]:
        __import__("numpy")
    first = "numpy" if "numpy" in sys.modules else framework  # NumPy loaded before the framework began to load?
    __import__(framework)
    __import__("numpy")
    import cases
    run = None
    for line in sys.stdin:
        msg = json.loads(line)
        if "build" in msg:
            run = cases.build(msg["build"], framework, device, **msg["args"])
            for _ in range(WARMUP):
                run()
            reply = {"ok": True}
        elif "first" in msg:
            run = cases.build(msg["first"], framework, device, **msg["args"])
            t0 = time.perf_counter()
            run()
            reply = {"step": time.perf_counter() - t0}
        elif "probe" in msg:
            reply = {"isa": probe(framework), "first": first}
        else:
            start = time.perf_counter()  # wakes this framework's threads and refills the caches the other one used
            run()
            while time.perf_counter() - start < TURN_WARMUP:
                run()
            times = []
            for _ in range(msg["time"]):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            reply = {"times": times}
        print(json.dumps(reply), flush=True)
    if framework == "minicnn":  # a cold start's cache is removed once this worker exits: nothing may still write it
        from minicnn.kernels_cpu import _compiler
        _compiler.drain()


if __name__ == "__main__":
    main()
