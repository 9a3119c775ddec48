"""Datasets as arrays: IDX (MNIST, Fashion-MNIST) files and scikit-learn's digits."""

from .arrays import ArraySplit, default_data_dir, load_digits_arrays, load_idx_dataset
from .idx import read_idx

__all__ = ["ArraySplit", "default_data_dir", "load_digits_arrays", "load_idx_dataset", "read_idx"]
