"""The device helpers: mixed precision switched on in one place for the trainer and the
benchmarks."""

import torch

from hamixer.device import autocast


def test_autocast_is_float32_without_a_dtype_and_casts_with_one():
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    cpu = torch.device("cpu")
    with autocast(cpu, None):
        assert (a @ b).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    with autocast(cpu, torch.bfloat16):
        assert (a @ b).dtype == torch.bfloat16 and torch.is_autocast_cache_enabled()
    with autocast(cpu, torch.bfloat16, cache_enabled=False):  # what a CUDA graph records
        assert (a @ b).dtype == torch.bfloat16 and not torch.is_autocast_cache_enabled()
    assert torch.is_autocast_cache_enabled() and not torch.is_autocast_enabled("cpu")
