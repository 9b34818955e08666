"""Side-by-side timing: minicnn and PyTorch run alternately in one process, medians over repeats."""
import statistics
import time

import minicnn as mc


def sync(device):
    if device.startswith("cuda"):
        mc.cuda.synchronize()
        import torch
        torch.cuda.synchronize()


def race(fns, device="cpu", repeats=15, warmup=3):
    """Time each callable in `fns` (name -> fn), interleaved, and return name -> median seconds."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync(device)
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def table(rows, title):
    """rows: (case, minicnn seconds, torch seconds or None) -> a markdown table with the ratio."""
    lines = [f"### {title}", "", "| case | minicnn (ms) | PyTorch (ms) | minicnn / PyTorch |", "| --- | ---: | ---: | ---: |"]
    for case, ours, theirs in rows:
        ratio = f"{ours / theirs:.2f}" if theirs else "n/a"
        th = f"{theirs * 1e3:.3f}" if theirs else "n/a"
        lines.append(f"| {case} | {ours * 1e3:.3f} | {th} | {ratio} |")
    return "\n".join(lines)
