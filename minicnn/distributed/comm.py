"""Communicators: the few collective operations data parallelism needs, and how a run of several processes starts
and stops.

`mpiexec -n N python script.py` starts N copies of a script; each calls `init()` and learns its rank (0 to N - 1)
and the world size N. Arrays then travel through collectives, which every rank calls in the same order:
- allreduce: every rank ends with the element-wise sum of every rank's array (the gradients, the batch norm sums);
- allgather: every rank ends with every rank's array, stacked in rank order (the batch norm statistics);
- broadcast: every rank ends with rank 0's array (the initial weights).
NumPy arrays go through MPI (mpi4py, the approach of ChainerMN and Horovod); CuPy arrays through NCCL
(cupy.cuda.nccl, one GPU per rank), whose communicator is set up on first use from an id that MPI broadcasts.
Small Python objects (settings, checksums, error messages) always go through MPI, pickled.

Faults. A collective waits for every rank, so a rank that has gone would leave the others waiting for ever. A rank
killed by a signal is seen by mpiexec, which then stops the others (MPICH and Open MPI both do). A rank that raises
an exception nobody catches calls MPI_Abort from the hook `init()` installs, which makes mpiexec stop them all: the
traceback names the rank. A rank that returns early without an error is the program's own bug, which this module
cannot see; minicnn.train makes every early stop a decision all ranks take together.
"""
import os
import sys
import time
import traceback

from .. import backend

# The environment variables through which MPI launchers (MPICH's and Intel's mpiexec, srun with PMI; Open MPI's
# mpiexec) tell a process its rank and the number of processes, readable before MPI is started.
SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK")
_world = None  # the Communicator init() made


def _from_environment(names, default):
    for name in names:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return default


def launched_size():
    """How many processes the MPI launcher started (1 when this process was started without one), read from the
    environment: nothing is imported and MPI is not started."""
    return _from_environment(SIZE_VARIABLES, 1)


def launched_rank():
    """This process's rank as the MPI launcher set it (0 without one), without starting MPI."""
    return _from_environment(RANK_VARIABLES, 0)


class Communicator:
    """One rank's handle on the group: `rank`, `size`, `local_rank` (its rank among the processes of its machine)
    and the collectives, in place where they can be. `seconds` and `bytes` add up the time spent in collectives
    on arrays and the bytes this rank handed to them (for benchmarks)."""

    def __init__(self, mpi_comm):
        from mpi4py import MPI
        self._MPI, self.mpi = MPI, mpi_comm
        self.rank, self.size = mpi_comm.Get_rank(), mpi_comm.Get_size()
        local = mpi_comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()
        self._nccl = None
        self.seconds, self.bytes = 0.0, 0

    # --- arrays ------------------------------------------------------------------------------------------------
    def allreduce(self, array):
        """Replace `array` (contiguous) by its sum over the ranks; returns it."""
        t0 = time.perf_counter()
        if backend.is_gpu_array(array):
            self._nccl_run(array, "allReduce", array.data.ptr, array.data.ptr, array.size, _nccl_type(array),
                           self._nccl_module().NCCL_SUM)
        else:
            self.mpi.Allreduce(self._MPI.IN_PLACE, array, op=self._MPI.SUM)
        self._count(array, t0)
        return array

    def allgather(self, array):
        """Every rank's `array`, stacked in rank order: shape (size, *array.shape)."""
        t0 = time.perf_counter()
        xp = backend.xp_of(array)
        array = xp.ascontiguousarray(array)
        out = xp.empty((self.size,) + array.shape, array.dtype)
        if backend.is_gpu_array(array):
            self._nccl_run(array, "allGather", array.data.ptr, out.data.ptr, array.size, _nccl_type(array))
        else:
            self.mpi.Allgather(array, out)
        self._count(array, t0)
        return out

    def broadcast(self, array, root=0):
        """Replace `array` (contiguous) by rank `root`'s; returns it."""
        t0 = time.perf_counter()
        if backend.is_gpu_array(array):
            self._nccl_run(array, "bcast", array.data.ptr, array.size, _nccl_type(array), root)
        else:
            self.mpi.Bcast(array, root=root)
        self._count(array, t0)
        return array

    def _count(self, array, t0):
        if backend.is_gpu_array(array):
            backend.cuda.synchronize()  # NCCL works on the stream: the time is the time until it is done
        self.seconds += time.perf_counter() - t0
        self.bytes += array.nbytes

    # --- NCCL (CuPy arrays) --------------------------------------------------------------------------------------
    def _nccl_module(self):
        from cupy.cuda import nccl
        return nccl

    def _nccl_run(self, array, name, *args):
        """Call the NCCL collective `name` on the current stream of `array`'s GPU, making the communicator on first
        use, bound to that GPU (every rank gets there at the same collective, so the broadcast of NCCL's id over MPI
        meets on every rank)."""
        import cupy
        with cupy.cuda.Device(array.device.id):
            if self._nccl is None:
                nccl = self._nccl_module()
                uid = self.mpi.bcast(nccl.get_unique_id() if self.rank == 0 else None, root=0)
                self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
            getattr(self._nccl, name)(*args, cupy.cuda.get_current_stream().ptr)

    # --- small Python objects (always over MPI) ---------------------------------------------------------------
    def allgather_objects(self, obj):
        """[rank 0's obj, rank 1's obj, ...] on every rank (pickled: for small things)."""
        return self.mpi.allgather(obj)

    def broadcast_object(self, obj, root=0):
        """Rank `root`'s obj on every rank (pickled)."""
        return self.mpi.bcast(obj, root=root)

    def abort(self, code=1):
        """Stop every rank at once (MPI_Abort): mpiexec ends them all and exits with an error."""
        sys.stdout.flush()
        sys.stderr.flush()
        self.mpi.Abort(code)

    def device(self, device):
        """The device this rank computes on: `device` itself, except that a plain "cuda" means this rank's own GPU,
        number local_rank (modulo the GPUs of the machine: one GPU per rank, as NCCL needs), made the current one."""
        if device != "cuda":
            return str(backend.Device(device))
        import cupy
        index = self.local_rank % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(index).use()
        return f"cuda:{index}"


_NCCL_TYPES = {"float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64", "int64": "NCCL_INT64", "int32": "NCCL_INT32"}


def _nccl_type(array):
    from cupy.cuda import nccl
    name = _NCCL_TYPES.get(array.dtype.name)
    if name is None:
        raise TypeError(f"Communicator: NCCL collectives take {', '.join(_NCCL_TYPES)} arrays, got {array.dtype}")
    return getattr(nccl, name)


def _abort_on_uncaught(kind, value, tb):
    """sys.excepthook on every rank: print the traceback, naming the rank, and stop every rank (else they would
    wait for this one in their next collective)."""
    rank, size = _world.rank, _world.size
    sys.stderr.write(f"minicnn.distributed: rank {rank} of {size} failed; stopping every rank\n")
    sys.stderr.write("".join(traceback.format_exception(kind, value, tb)))
    _world.abort(130 if issubclass(kind, KeyboardInterrupt) else 1)


def share_cores(local_size):
    """Give each of the `local_size` ranks of one machine its share of the cores for Numba's and OpenBLAS's
    threads (unless the user chose a thread count), so that N ranks do not run N times as many threads as there are
    cores. Returns the number of threads per rank, or None when left as it was."""
    if any(name in os.environ for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = max(1, cores // local_size)
    import numba
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    from .._process import loaded_openblas
    for library in loaded_openblas():
        setter = getattr(library, "openblas_set_num_threads", None)
        if setter is not None:
            setter(threads)
    return threads


def init():
    """Start MPI (once) and return this rank's Communicator (`.rank`, `.size`). Installs the fault rule (an uncaught
    exception on any rank stops them all, see the module's docstring) and, with more than one rank on a machine,
    shares its cores among them (share_cores)."""
    global _world
    if _world is None:
        try:
            from mpi4py import MPI
        except ImportError:
            raise RuntimeError("minicnn.distributed: mpi4py is not installed (pip install minicnn[mpi])") from None
        _world = Communicator(MPI.COMM_WORLD)
        if _world.size > 1:
            sys.excepthook = _abort_on_uncaught
        if _world.local_size > 1:
            share_cores(_world.local_size)
    return _world


class Alone:
    """A group of one process, with the Communicator's methods: what SyncBatchNorm and the helpers use before (or
    without) init(), so a model converted for data parallelism also runs, unchanged, in one process."""
    rank, size, local_rank, local_size, seconds, bytes = 0, 1, 0, 1, 0.0, 0

    def allreduce(self, array):
        return array

    def allgather(self, array):
        return array[None]

    def broadcast(self, array, root=0):
        return array

    def allgather_objects(self, obj):
        return [obj]

    def broadcast_object(self, obj, root=0):
        return obj


def world():
    """The Communicator init() made, or a group of one (Alone) before init()."""
    return _world if _world is not None else Alone()
