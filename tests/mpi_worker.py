"""What tests/test_distributed.py runs under `mpiexec -n 2 python tests/mpi_worker.py SCENARIO OUT [DEVICE]`.

equivalence: the cases of CASES, STEPS steps each (STEPS_OF: fewer), data-parallel over the ranks (rank 0 writes the
  weights to OUT/dist-CASE.npz), and the one-process references, each computed by one rank (OUT/ref-CASE.npz: one
  process with the global batch; OUT/ghost-CASE.npz for plain batch norm: one process whose batch norm sees each
  rank's shard apart, which is what N ranks with plain BatchNorm compute).
raise: rank 1 raises in the middle of training; the others must not wait for it.
mismatch: rank 1 builds another model, then holds other data; every rank must report the disagreement.
"""
import sys
from pathlib import Path

import numpy as np

import minicnn as mc
from minicnn import data, distributed, models, optim
from minicnn.data.loader import shard
from minicnn.functional import cross_entropy

STEPS = 20
# name: (model, dtype, learning rate, global batch, images, image side, batch norm). Batches of 15 over 2 ranks are
# shards of 8 and 7; 200 images make 13 of them and a last batch of 5, so 20 steps cross an epoch's end and its
# uneven last batch (ResNet-20: 9 = 5 + 4, 96 images, a last batch of 6; 8x8 images keep it quick). float32 runs at
# a learning rate where 20 steps are not chaotic: a ReLU whose input lies within float32 rounding of zero takes the
# other branch of its gradient in a run that sums in another order, and at 0.05 ResNet-20 amplifies one such flip to
# percents in ten steps, in one process alone (float32 against float64); in float64 a flip needs an input within
# about 1e-16 of zero.
CASES = {
    "lenet-float64": ("lenet5", np.float64, 0.05, 15, 200, 28, None),
    "lenet-float32": ("lenet5", np.float32, 0.002, 15, 200, 28, None),
    "resnet20-sync-float64": ("resnet20", np.float64, 0.05, 9, 96, 8, "sync"),
    "resnet20-sync-float32": ("resnet20", np.float32, 0.002, 9, 96, 8, "sync"),
    "resnet20-plain-float64": ("resnet20", np.float64, 0.05, 9, 96, 8, "plain"),
}
# Even at 0.002, ResNet-20's float32 ReLUs see about 2e5 inputs a step; one within float32 rounding of zero (a few
# in ten million) flips between the two runs, and from then on they part by about 1e-3: with the tenth session's
# summation order that happened at step 17 (1.3e-6 at step 15, 6e-4 at step 17). 12 steps still cross its epoch's
# end (11 batches, the last of 6) into the next epoch, with fewer chances of a flip.
STEPS_OF = {"resnet20-sync-float32": 12}


def dataset(n, side, channels, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, channels, side, side)).astype(np.float32)
    return data.Dataset(images, rng.integers(0, 10, n), 10, "random")


def build(case, device, comm=None, num_classes=10):
    name, dtype, _, _, _, _, norm = CASES[case]
    mc.manual_seed(0)
    model = models.create(name, num_classes=num_classes, in_channels=1 if name == "lenet5" else 3)
    model.to(device=device, dtype=dtype)
    if norm == "sync" and comm is not None:
        distributed.convert_sync_batchnorm(model, comm)
    return model


def train(case, device, comm=None, ghost=0):
    """20 steps of SGD: data-parallel over `comm`, or in one process (ghost > 0: each of the shards of that many
    ranks through the model apart)."""
    name, dtype, lr, batch, n, side, _ = CASES[case]
    model = build(case, device, comm)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    rank, size = (comm.rank, comm.size) if comm is not None else (0, 1)
    loader = data.DataLoader(dataset(n, side, 1 if name == "lenet5" else 3), batch, shuffle=True, seed=1, rank=rank,
                             world_size=size)
    reduce_gradients = None
    if comm is not None:
        distributed.broadcast_parameters(model, comm)
        reduce_gradients = distributed.GradientReducer(model.parameters(), comm)
    step, epoch, steps = 0, 0, STEPS_OF.get(case, STEPS)
    while step < steps:
        loader.set_epoch(epoch)
        for x, y in loader:
            x = mc.tensor(x.astype(dtype), device=device)
            parts = [shard(len(y), r, ghost) for r in range(ghost)] if ghost else [slice(None)]
            loss = sum(cross_entropy(model(x[p]), mc.tensor(y[p], device=device)) * (len(y[p]) / len(y))
                       for p in parts)
            opt.zero_grad()
            loss.backward()
            if reduce_gradients is not None:
                reduce_gradients(len(y))
            opt.step()
            step += 1
            if step == steps:
                break
        epoch += 1
    return model.state_dict()


def equivalence(out, device):
    comm = distributed.init()
    device = comm.device(device)
    for case in CASES:
        weights = train(case, device, comm)
        if comm.rank == 0:
            np.savez(out / f"dist-{case}.npz", **weights)
    for i, case in enumerate(CASES):  # the references, shared out over the ranks
        if i % comm.size == comm.rank:
            np.savez(out / f"ref-{case}.npz", **train(case, device))
            if CASES[case][-1] == "plain":
                np.savez(out / f"ghost-{case}.npz", **train(case, device, ghost=comm.size))


def fail_on_rank_1(out, device):
    comm = distributed.init()
    model = build("lenet-float32", device, comm)
    distributed.broadcast_parameters(model, comm)
    for step in range(1000):
        if comm.rank == 1 and step == 3:
            raise RuntimeError("a deliberate failure on rank 1")
        comm.allreduce(np.ones(1000, np.float32))


def mismatch(out, device):
    comm = distributed.init()
    model = build("lenet-float32", device, comm, num_classes=10 if comm.rank == 0 else 5)
    for attempt in (lambda: distributed.broadcast_parameters(model, comm),
                    lambda: distributed.check_same_data(dataset(50, 28, 1, seed=comm.rank), comm=comm)):
        try:
            attempt()
            print(f"rank {comm.rank}: no error", flush=True)
        except distributed.DistributedError as e:
            print(f"rank {comm.rank}: DistributedError: {e}", flush=True)


if __name__ == "__main__":
    scenario, out = sys.argv[1], Path(sys.argv[2])
    device = sys.argv[3] if len(sys.argv) > 3 else "cpu"
    {"equivalence": equivalence, "raise": fail_on_rank_1, "mismatch": mismatch}[scenario](out, device)
