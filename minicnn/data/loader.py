"""DataLoader: batches from a Dataset, shuffled by a generator seeded with (seed, epoch), so that the order and
the augmentations of an epoch are the same whether a run was resumed or not."""
import numpy as np


class DataLoader:
    def __init__(self, dataset, batch_size, shuffle=False, seed=0, drop_last=False, transform=None):
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be an int >= 1, got {batch_size!r}")
        self.dataset, self.batch_size, self.shuffle = dataset, batch_size, shuffle
        self.seed, self.drop_last, self.transform = seed, drop_last, transform
        self.epoch = 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batches(self, start=0):
        """Yield (images, labels) NumPy batches of this epoch, skipping the first `start` batches."""
        n = len(self.dataset)
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = self.dataset.images[idx]
            if self.transform is not None:
                x = self.transform(x, rng)  # drawn in batch order, so skipped batches still advance rng
            if b >= start:
                yield np.ascontiguousarray(x, dtype=np.float32), self.dataset.labels[idx]

    def __iter__(self):
        return self.batches()
