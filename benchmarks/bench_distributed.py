"""Data-parallel training of ResNet-20 (CIFAR-10 shapes, float32, SGD with momentum) on 1, 2 and 4 MPI processes
of this machine, a global batch split over the ranks: images per second, the time a step spends in communication
and the bytes it hands to MPI, next to one process without minicnn.distributed.

    python benchmarks/bench_distributed.py [--batch 128] [--steps 8] [--rounds 3] [--ranks 1 2 4] [--sync-bn]

Each row runs `mpiexec -n N python bench_distributed.py --worker ...` (the one-process row: plain python), the rows
taking turns for --rounds rounds; each figure is the median over the rounds (the machine is shared and noisy). The
communication time is the time inside the collectives (the gradient allreduce, and SyncBatchNorm's allgather and
allreduce with --sync-bn), per step: "min" over the ranks is close to the transfer itself (the last rank to arrive
waits least), "max" adds the waiting for the slowest rank. "allreduce alone" times the gradients' allreduce by
itself, all ranks ready. The bytes are what one rank hands to MPI per step (one float32 gradient, its header, and
the figures); a ring allreduce sends and receives 2 (N - 1) / N of them per rank.

On a machine with fewer cores than ranks the ranks share cores (minicnn.distributed.share_cores gives each rank
cores / ranks threads, at least one): the point here is the overhead, not the speed-up.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def worker(args):
    """One rank: warm-up steps, then timed steps; rank 0 prints a JSON line with the figures."""
    import numba
    import numpy as np

    import minicnn as mc
    from minicnn import distributed, models, optim
    from minicnn.data.loader import shard
    from minicnn.functional import cross_entropy

    comm = distributed.init() if args.mpi else distributed.Alone()
    mc.manual_seed(0)
    model = models.create("resnet20")
    if args.sync_bn:
        distributed.convert_sync_batchnorm(model, comm)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    reduce_gradients = None
    if args.mpi:
        distributed.broadcast_parameters(model, comm)
        reduce_gradients = distributed.GradientReducer(model.parameters(), comm)
    rng = np.random.default_rng(comm.rank)
    mine = shard(args.batch, comm.rank, comm.size)
    n = mine.stop - mine.start
    x = mc.tensor(rng.standard_normal((n, 3, 32, 32)).astype(np.float32))
    y = rng.integers(0, 10, n)
    times, comm_times, sent = [], [], []
    for step in range(args.warmup + args.steps):
        comm.seconds, comm.bytes = 0.0, 0
        if args.mpi:
            comm.mpi.Barrier()
        t0 = time.perf_counter()
        loss = cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if reduce_gradients is not None:
            reduce_gradients(n)
            comm.allreduce(np.array([loss.item() * n, n], np.float64))  # the figures the command line sums
        opt.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - t0)
            comm_times.append(comm.seconds)
            sent.append(comm.bytes)
    grads = sum(p.size for p in model.parameters()) * 4
    alone = []
    if args.mpi:
        flat = np.ones(grads // 4, np.float32)
        for _ in range(20):
            comm.mpi.Barrier()
            t0 = time.perf_counter()
            comm.allreduce(flat)
            alone.append(time.perf_counter() - t0)
    per_rank = comm.allgather_objects(statistics.median(comm_times)) if args.mpi else [0.0]
    step = statistics.median(times)
    if args.mpi:
        step = max(comm.allgather_objects(step))
    if comm.rank == 0:
        print(json.dumps(dict(ranks=comm.size, step=step, images_per_s=args.batch / step, comm_min=min(per_rank),
                              comm_max=max(per_rank), bytes=statistics.median(sent) if sent else 0,
                              gradient_bytes=grads, allreduce_alone=statistics.median(alone) if alone else 0.0,
                              threads=numba.get_num_threads())), flush=True)


def mpiexec():
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else shutil.which("mpiexec")


def run_row(ranks, args):
    """The figures of one row: `ranks` MPI processes (0: one plain process without minicnn.distributed)."""
    cmd = [sys.executable, __file__, "--worker", "--batch", str(args.batch), "--steps", str(args.steps),
           "--warmup", str(args.warmup)] + (["--sync-bn"] if args.sync_bn else [])
    if ranks:
        cmd = [mpiexec(), "-n", str(ranks)] + cmd + ["--mpi"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}{out.stderr}")
    return json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])


def table(rows, args):
    bn = "SyncBatchNorm" if args.sync_bn else "BatchNorm (per rank)"
    lines = [f"ResNet-20, 3x32x32, float32, global batch {args.batch}, {bn}; {len(os.sched_getaffinity(0))} cores",
             "", "| processes | step (ms) | images/s | communication per step, min-max over ranks (ms) | "
             "allreduce alone (ms) | bytes per step per rank | ring traffic per rank, 2(N-1)/N (bytes) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        n = r["ranks"]
        name = "1, no distributed" if r.get("plain") else str(n)
        ring = 2 * (n - 1) / n * r["bytes"]
        lines.append(f"| {name} | {r['step'] * 1e3:.0f} | {args.batch / r['step']:.1f} | "
                     f"{r['comm_min'] * 1e3:.2f}-{r['comm_max'] * 1e3:.2f} | {r['allreduce_alone'] * 1e3:.2f} | "
                     f"{r['bytes']:,.0f} | {ring:,.0f} |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--sync-bn", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mpi", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if mpiexec() is None:
        raise SystemExit("no mpiexec: pip install minicnn[mpi]")
    configs = [0] + args.ranks
    runs = {n: [] for n in configs}
    for _ in range(args.rounds):
        for n in configs:
            runs[n].append(run_row(n, args))
    rows = [dict({k: statistics.median(r[k] for r in runs[n]) if isinstance(runs[n][0][k], float) else runs[n][0][k]
                  for k in runs[n][0]}, plain=n == 0) for n in configs]
    print(table(rows, args))


if __name__ == "__main__":
    main()
