"""Data-parallel training over MPI (mpi4py, NumPy arrays) and NCCL (cupy.cuda.nccl, one GPU per rank).

    mpiexec -n 4 python -m minicnn.train resnet20 --dataset cifar10      # the command line does all of this

or by hand, in a script started by `mpiexec -n N python script.py`:

    comm = distributed.init()                                  # rank, size
    model = distributed.convert_sync_batchnorm(model)          # optional: batch norm over the global batch
    distributed.broadcast_parameters(model)                    # rank 0's weights everywhere, checked
    reduce_gradients = distributed.GradientReducer(model.parameters())
    loader = data.DataLoader(train, batch_size=B, shuffle=True, rank=comm.rank, world_size=comm.size)
    for x, y in loader:                                        # this rank's shard of each global batch of B
        loss = F.cross_entropy(model(mc.tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        reduce_gradients(len(y))                               # the gradient of the mean loss over all B
        opt.step()

comm.py: init, the Communicator and the fault rules; parallel.py: broadcast, gradient reduction, agreement;
sync_batchnorm.py: SyncBatchNorm; training.py: what the command line does under mpiexec. The sharding of each
epoch's batches is DataLoader's (minicnn/data/loader.py).
Install with `pip install minicnn[mpi]` (mpi4py and the MPICH wheel, which brings mpiexec).
"""
from .comm import Alone, Communicator, init, launched_rank, launched_size, share_cores, world
from .parallel import (BUCKET_BYTES, DistributedError, GradientReducer, StoppedTogether, agreed, broadcast_buffers,
                       broadcast_parameters, check_same, check_same_data, checksum, describe_model, fingerprint)
from .sync_batchnorm import SyncBatchNorm, SyncBatchNormFunction, convert_sync_batchnorm
from . import training

__all__ = ["Alone", "Communicator", "init", "launched_rank", "launched_size", "share_cores", "world", "BUCKET_BYTES",
           "DistributedError", "GradientReducer", "StoppedTogether", "agreed", "broadcast_buffers",
           "broadcast_parameters", "check_same", "check_same_data", "checksum", "describe_model", "fingerprint",
           "SyncBatchNorm", "SyncBatchNormFunction", "convert_sync_batchnorm", "training"]
