"""What `python -m minicnn.train` does differently under mpiexec with more than one process (minicnn/train.py calls
these; one process never does):

- before training: the same data on every rank (checked), SyncBatchNorm with --sync-bn, rank 0's weights on every
  rank (checked), and a GradientReducer (prepare);
- every step: this rank's shard, the gradients summed before the optimiser's step, then one allreduce of the step's
  figures (loss, accuracy, images) and of the Ctrl-C flag, so that the progress bar shows the global figures, the
  divergence guard sees the loss of the global batch, and every rank stops at the same step (step);
- a block of local work (reading data, writing a checkpoint on rank 0) ends with the ranks agreeing on whether it
  failed anywhere, so they stop together (together).
"""
import contextlib

import numpy as np

from .. import backend
from .parallel import GradientReducer, agreed, broadcast_parameters, check_same_data
from .sync_batchnorm import convert_sync_batchnorm


def together(comm, catch, describe):
    """agreed(comm, catch, describe) for a communicator; nothing (a null context) for None, one process."""
    return contextlib.nullcontext() if comm is None else agreed(comm, catch=catch, describe=describe)


def prepare(model, train_set, comm, sync_bn, seed, position):
    """Make `model` data-parallel over `comm` and return its GradientReducer. Ranks other than 0 then draw their own
    random numbers (dropout masks) from a seed of (seed, rank, epoch, step) = (seed, rank, *position)."""
    check_same_data(train_set, comm=comm)
    if sync_bn:
        convert_sync_batchnorm(model, comm)
    broadcast_parameters(model, comm)
    if comm.rank > 0:
        backend.manual_seed(int(np.random.SeedSequence([seed, comm.rank, *position]).generate_state(1)[0]))
    return GradientReducer(model.parameters(), comm)


def step(task, model, opt, batch, cfg, running, stop, reduce_gradients, comm):
    """One data-parallel step of `task` on this rank's shard `batch`; adds the global figures to `running` and sets
    stop.requested on every rank when it was set on any. Returns the mean loss of the global batch (non-finite on
    every rank when it is on one: the divergence guard stops them all)."""
    figures = {k: 0 for k in running if k != "seconds"}
    task.step(model, opt, batch, cfg, figures, reduce_gradients)
    keys = list(figures)
    totals = comm.allreduce(np.array([figures[k] for k in keys] + [stop.requested], np.float64))
    for k, total in zip(keys, totals):
        running[k] += type(running[k])(total)
    stop.requested = bool(totals[-1])
    return float(totals[keys.index("loss")] / totals[keys.index("seen")])
