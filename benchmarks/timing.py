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


def step_pair(ours, theirs_factory, x, y, device, repeats):
    """Median times of one SGD-with-momentum training step of a minicnn model and of its PyTorch twin
    (theirs_factory(torch) builds it; skipped without PyTorch) on the same batch."""
    import minicnn.functional as F
    try:
        import torch
    except ImportError:
        torch = None
    opt = mc.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9)
    mx, my = mc.tensor(x, device=device), mc.tensor(y, device=device)

    def mc_step():
        loss = F.cross_entropy(ours(mx), my)
        opt.zero_grad()
        loss.backward()
        opt.step()
    fns = {"minicnn": mc_step}
    if torch is not None:
        theirs = theirs_factory(torch).to(device)
        topt = torch.optim.SGD(theirs.parameters(), lr=0.01, momentum=0.9)
        tx, ty = torch.tensor(x, device=device), torch.tensor(y, device=device)

        def torch_step():
            loss = torch.nn.functional.cross_entropy(theirs(tx), ty)
            topt.zero_grad()
            loss.backward()
            topt.step()
        fns["torch"] = torch_step
    t = race(fns, device, repeats=repeats)
    return t["minicnn"], t.get("torch")


def table(rows, title):
    """rows: (case, minicnn seconds, torch seconds or None) -> a markdown table with the ratio."""
    lines = [f"### {title}", "", "| case | minicnn (ms) | PyTorch (ms) | minicnn / PyTorch |", "| --- | ---: | ---: | ---: |"]
    for case, ours, theirs in rows:
        ratio = f"{ours / theirs:.2f}" if theirs else "n/a"
        th = f"{theirs * 1e3:.3f}" if theirs else "n/a"
        lines.append(f"| {case} | {ours * 1e3:.3f} | {th} | {ratio} |")
    return "\n".join(lines)
