"""One framework's side of a benchmark: `python worker.py minicnn|torch DEVICE`, driven by benchmarks/timing.py
through stdin/stdout, one JSON line each way.

    {"build": NAME, "args": {...}}  ->  {"ok": true}             build the case and run it WARMUP times
    {"time": N}                     ->  {"times": [s, ...]}      run it once untimed, then N times timed
"""
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
WARMUP = 3


def main():
    framework, device = sys.argv[1], sys.argv[2]
    __import__(framework)  # before NumPy: minicnn sets OpenBLAS's thread timeout as it loads (minicnn/_process.py)
    import cases
    run = None
    for line in sys.stdin:
        msg = json.loads(line)
        if "build" in msg:
            run = cases.build(msg["build"], framework, device, **msg["args"])
            for _ in range(WARMUP):
                run()
            reply = {"ok": True}
        else:
            run()  # wakes this framework's threads and refills the caches the other one used
            times = []
            for _ in range(msg["time"]):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            reply = {"times": times}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
