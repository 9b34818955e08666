"""Data sets, the DataLoader and batch transforms; detection data sets (detection.py)."""
from .datasets import (DATASETS, Dataset, DataError, cache_dir, load_cifar10, load_dataset, load_fashion_mnist,
                       load_mnist, make_synthetic, read_idx)
from .detection import (DETECTION_DATASETS, DigitDetection, ShapeDetection, detection_collate,
                        load_detection_dataset)
from .loader import DataLoader
from .transforms import Compose, Normalize, RandomCrop, RandomHorizontalFlip
