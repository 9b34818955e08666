"""DataLoader: batches from a Dataset, shuffled by a generator seeded with (seed, epoch), so that the order and
the augmentations of an epoch are the same whether a run was resumed or not.

A Dataset of arrays (`images`, `labels`: minicnn.data.Dataset) is sliced a batch at a time; any other data set
(`len(ds)` and `ds[i]`, as the detection data sets) is read item by item and each batch put together by
`collate_fn` (PyTorch's DataLoader argument; minicnn.data.detection_collate for images with boxes).

`epoch_size` N makes an epoch a window of N items of a large data set (the generated detection canvases): epoch e
reads items e N to (e + 1) N - 1, wrapping around at the end, shuffled among themselves; so every epoch sees fresh
items, and a resumed run the same ones as a run that never stopped.

`rank` and `world_size` shard every batch for data parallelism (minicnn.distributed): every rank draws the same
order and the same global batches of `batch_size` items, and keeps the rows `shard(len(batch), rank, world_size)`
of each, contiguous shards whose sizes differ by at most one. So the ranks together see exactly the batches of one
process, on any number of ranks (a run resumes on another number of ranks); the random augmentations are drawn for
the whole global batch on every rank, and each keeps its rows. Every rank yields the same number of batches: a last
batch with fewer items than ranks (which would leave a rank nothing) is dropped on every rank."""
import numpy as np


def shard(length, rank, world_size):
    """The slice of a batch of `length` items that `rank` of `world_size` keeps: the first length % world_size ranks
    hold one item more than the others."""
    base, extra = divmod(length, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


class DataLoader:
    def __init__(self, dataset, batch_size, shuffle=False, seed=0, drop_last=False, transform=None, collate_fn=None,
                 epoch_size=None, rank=0, world_size=1):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an int >= 1, got {batch_size!r}")
        if epoch_size is not None and (not isinstance(epoch_size, (int, np.integer)) or isinstance(epoch_size, bool)
                                       or not 1 <= epoch_size <= len(dataset)):
            raise ValueError(f"DataLoader: epoch_size must be None or an int in [1, {len(dataset)}] (the data set's "
                             f"length), got {epoch_size!r}")
        if not hasattr(dataset, "images") and collate_fn is None:
            raise ValueError(f"DataLoader: a {type(dataset).__name__} is read item by item and needs a collate_fn "
                             "(minicnn.data.detection_collate for detection data sets)")
        if collate_fn is not None and transform is not None:
            raise ValueError("DataLoader: transform applies to array data sets; with a collate_fn, transform the "
                             "items in the data set or the collate_fn")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.seed, self.drop_last, self.transform, self.collate_fn = seed, drop_last, transform, collate_fn
        if not isinstance(world_size, (int, np.integer)) or isinstance(world_size, bool) or world_size < 1 or \
                not isinstance(rank, (int, np.integer)) or isinstance(rank, bool) or not 0 <= rank < world_size:
            raise ValueError(f"DataLoader: expected an int world_size >= 1 and an int rank in [0, world_size), got "
                             f"rank {rank!r}, world_size {world_size!r}")
        self.epoch_size = None if epoch_size is None else int(epoch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        n = len(self.dataset) if self.epoch_size is None else self.epoch_size
        full, tail = divmod(n, self.batch_size)
        return full if self.drop_last or tail < self.world_size else full + 1

    def batches(self, start=0):
        """Yield (images, labels) NumPy batches of this epoch (collate_fn's batches with one), skipping the first
        `start` batches; with world_size > 1, this rank's shard of each."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.epoch_size is None:
            order = np.arange(len(self.dataset))
        else:
            order = (self.epoch * self.epoch_size + np.arange(self.epoch_size)) % len(self.dataset)
        order = rng.permutation(order) if self.shuffle else order
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            mine = shard(len(idx), self.rank, self.world_size)
            if self.collate_fn is not None:
                if b >= start:
                    yield self.collate_fn([self.dataset[int(i)] for i in idx[mine]])
                continue
            if self.transform is not None:
                # drawn for the whole batch in batch order, so skipped batches and other ranks' rows advance rng
                x = self.transform(self.dataset.images[idx], rng)[mine]
            elif b >= start:
                x = self.dataset.images[idx[mine]]
            if b >= start:
                yield np.ascontiguousarray(x, dtype=np.float32), self.dataset.labels[idx[mine]]

    def __iter__(self):
        return self.batches()
