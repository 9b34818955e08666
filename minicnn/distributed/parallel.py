"""Data parallelism: every rank holds the same model, differentiates the loss on its shard of each global batch,
and the ranks add up their gradients before every optimiser step, so that every rank takes the same step: the one a
single process would take on the whole batch.

- broadcast_parameters(model): rank 0's parameters and buffers on every rank, after checking that every rank built
  the same model (names, shapes, dtypes, device kinds), and checked afterwards by a checksum.
- GradientReducer(params)(count): after backward. Rank r has g_r, the gradient of the mean loss over its n_r = count
  samples; every rank gets  g = sum_r n_r g_r / sum_r n_r,  the gradient of the mean loss over all the samples of the
  global batch, also when the shards differ in size (the last batch of an epoch). The gradients travel in a few
  large messages ("buckets" of consecutive parameters, flattened into one array each) rather than one per
  parameter: a collective pays a fixed latency per message. The header of the first bucket carries n_r and which
  parameters have a gradient on this rank, so one message per bucket is all a step sends. The reduction starts after
  backward has finished; starting each bucket as soon as its gradients are complete (overlap, as PyTorch's
  DistributedDataParallel does) would need the autograd engine to call back when a leaf's gradient is final.
- check_same(value, what), check_same_data(dataset): the same thing on every rank, or DistributedError on every rank.
- agreed(): a block of local work (loading data, writing a checkpoint on rank 0) after which the ranks agree on how
  it went: when it raised on any rank, it raises on every rank, so they all stop at the same point.
"""
import contextlib
import zlib

import numpy as np

from ..autograd import Tensor
from ..backend import to_device, xp_of
from .comm import world

BUCKET_BYTES = 4 << 20  # the largest bucket: large enough that latency is paid rarely, small enough to stay in cache


class DistributedError(RuntimeError):
    """Ranks that disagree at the start (on the model, the data, the settings); raised on every rank."""


class StoppedTogether(Exception):
    """What every rank raises at the end of an agreed() block that raised somewhere. `error`: this rank's own
    exception (None when only others failed); `report`: whether this rank should report it (each distinct message is
    reported by the lowest rank that has it, so N ranks that fail alike print one line); `ranks`: the ranks that
    failed. Its message names the rank unless every rank failed with the same message."""

    def __init__(self, message, error, report, ranks):
        super().__init__(message)
        self.error, self.report, self.ranks = error, report, ranks


@contextlib.contextmanager
def agreed(comm=None, catch=(Exception,), describe=str):
    """Run a block that makes no collective call; then every rank learns whether it raised an exception of a type in
    `catch` on any rank (an allgather of `describe(error)` or None), and if so StoppedTogether is raised on every
    rank. An exception of another type is not caught: it reaches the fault rule of init() (stop every rank)."""
    comm = comm or world()
    error = None
    try:
        yield
    except catch as e:
        error = e
    messages = comm.allgather_objects(None if error is None else describe(error))
    failed = [r for r, m in enumerate(messages) if m is not None]
    if not failed:
        return
    alike = len(failed) == comm.size and len(set(messages)) == 1
    if error is None:
        raise StoppedTogether(f"rank {failed[0]} failed: {messages[failed[0]]}", None, False, failed)
    mine = messages[comm.rank]
    raise StoppedTogether(mine if alike else f"rank {comm.rank}: {mine}", error, messages.index(mine) == comm.rank,
                          failed) from error


def check_same(value, what, comm=None, explain=repr):
    """DistributedError on every rank unless every rank passed an equal `value` (small and picklable: a checksum, a
    description, settings). `explain(a, b)` gives the words for two values that differ, (about a, about b)."""
    comm = comm or world()
    values = comm.allgather_objects(value)
    odd = [r for r, v in enumerate(values) if v != values[0]]
    if odd:
        r = odd[0]
        first, other = explain(values[0], values[r]) if explain is not repr else (repr(values[0]), repr(values[r]))
        more = f"; {len(odd) - 1} other ranks differ from rank 0 too" if len(odd) > 1 else ""
        raise DistributedError(f"the ranks disagree on {what}: rank 0 has {first}, rank {r} has {other}{more}")


def describe_model(model):
    """[(name, shape, dtype, device kind)] of every parameter and buffer, in order."""
    return [(name, tuple(t.shape), str(t.dtype), t.device.type) for name, t in _state(model)]


def _first_difference(a, b):
    """The first entries where two describe_model lists differ, in words."""
    for x, y in zip(a, b):
        if x != y:
            return tuple(f"'{name}' {shape} {dtype} on {device}" for name, shape, dtype, device in (x, y))
    return f"{len(a)} parameters and buffers", f"{len(b)}"


def checksum(model):
    """A CRC-32 of the bytes of every parameter and buffer, in order."""
    crc = 0
    for _, t in _state(model):
        crc = zlib.crc32(np.ascontiguousarray(t.numpy()).tobytes(), crc)
    return crc


def _state(model):
    return list(model.named_parameters()) + list(model.named_buffers())


def _runs(tensors, limit):
    """Consecutive runs of tensors of one dtype, each of at most `limit` bytes (a larger tensor makes a run alone)."""
    runs = []
    for t in tensors:
        last = runs[-1] if runs else None
        if last and last[0].dtype == t.dtype and sum(u.data.nbytes for u in last) + t.data.nbytes <= limit:
            last.append(t)
        else:
            runs.append([t])
    return runs


def _broadcast_tensors(tensors, comm, root=0, limit=BUCKET_BYTES):
    """Rank `root`'s values of `tensors` on every rank, a run of them per message."""
    for run in _runs(tensors, limit):
        xp = xp_of(run[0].data)
        flat = comm.broadcast(xp.concatenate([xp.ravel(t.data) for t in run]), root)
        offset = 0
        for t in run:
            t.data = flat[offset:offset + t.size].reshape(t.shape).copy()
            offset += t.size


def broadcast_parameters(model, comm=None, root=0):
    """Make every rank's model rank `root`'s: check that every rank holds the same structure (describe_model), send
    the parameters and buffers, then check a checksum of them. DistributedError on every rank when they disagree."""
    comm = comm or world()
    check_same(describe_model(model), "the model", comm, _first_difference)
    _broadcast_tensors([t for _, t in _state(model)], comm, root)
    check_same(checksum(model), "the parameters after the broadcast (CRC-32 of their bytes)", comm)
    return model


def broadcast_buffers(model, comm=None, root=0):
    """Make every rank's buffers (batch norm's running statistics) rank `root`'s: with plain BatchNorm each rank
    tracks the statistics of its own shards; before evaluating or saving, rank 0's are taken everywhere."""
    _broadcast_tensors([t for _, t in model.named_buffers()], comm or world(), root)


def fingerprint(dataset):
    """A short description of a data set that differs when two ranks hold different data: its type and length, and a
    CRC-32 of its labels and of 16 images spread over it (arrays), or of its first item (other data sets)."""
    if hasattr(dataset, "images"):
        pick = np.linspace(0, len(dataset) - 1, min(len(dataset), 16)).astype(np.int64)
        crc = zlib.crc32(np.ascontiguousarray(dataset.labels).tobytes())
        crc = zlib.crc32(np.ascontiguousarray(dataset.images[pick]).tobytes(), crc)
        return type(dataset).__name__, len(dataset), tuple(dataset.images.shape[1:]), crc
    image = np.asarray(dataset[0][0])
    return type(dataset).__name__, len(dataset), image.shape, zlib.crc32(np.ascontiguousarray(image).tobytes())


def check_same_data(dataset, what="the training data", comm=None):
    """DistributedError on every rank unless every rank holds the same data set (by fingerprint)."""
    check_same(fingerprint(dataset), what, comm)


class GradientReducer:
    """After backward, call `reducer(count)`: every parameter's .grad becomes sum_r count_r grad_r / sum_r count_r
    over the ranks (see the module's docstring). A parameter without a gradient on a rank counts as zero there, and
    keeps .grad None when no rank has one."""

    def __init__(self, params, comm=None, bucket_bytes=BUCKET_BYTES):
        self.params = [p for p in params if p.requires_grad]
        if not self.params:
            raise ValueError("GradientReducer: expected parameters that require gradients, got none")
        self.comm = comm or world()
        self.buckets = _runs(self.params, bucket_bytes)

    def __call__(self, count):
        """`count`: how many samples the loss this rank differentiated is the mean over (0: none, .grad ignored)."""
        if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 0:
            raise ValueError(f"GradientReducer: count must be an int >= 0 (this rank's samples), got {count!r}")
        header = [count] + [p.grad is not None for p in self.params]
        flats = []
        for b, bucket in enumerate(self.buckets):
            xp = xp_of(bucket[0].data)
            size = sum(p.size for p in bucket)
            flat = xp.zeros(size + (len(header) if b == 0 else 0), bucket[0].dtype)
            offset = 0
            for p in bucket:
                if p.grad is not None and count:
                    flat[offset:offset + p.size] = xp.ravel(p.grad.data)
                offset += p.size
            flat[:size] *= count
            if b == 0:
                flat[size:] = xp.asarray(header, dtype=flat.dtype)
            flats.append(self.comm.allreduce(flat))
        totals = to_device(flats[0][-len(header):], "cpu")
        if not totals[0] > 0:
            raise ValueError("GradientReducer: no rank had a sample (every count was 0)")
        has_grad = iter(totals[1:] > 0)
        for bucket, flat in zip(self.buckets, flats):
            offset = 0
            for p in bucket:
                part = flat[offset:offset + p.size]
                part /= totals[0]
                p.grad = Tensor(part.reshape(p.shape)) if next(has_grad) else None
                offset += p.size
