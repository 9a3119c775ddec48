"""Datasets: IDX (MNIST, Fashion-MNIST), CIFAR python batches, image folders, digits."""

from .arrays import ArraySplit, default_data_dir, load_digits_arrays, load_idx_dataset
from .datasets import DATASETS, DatasetInfo, dataset_info, load_split
from .idx import read_idx

__all__ = ["DATASETS", "ArraySplit", "DatasetInfo", "dataset_info", "default_data_dir",
           "load_digits_arrays", "load_idx_dataset", "load_split", "read_idx"]
