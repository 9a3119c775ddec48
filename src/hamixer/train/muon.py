"""timm's Muon on a CPU: its Newton–Schulz orthogonalisation in float32.

timm runs the iteration in bfloat16, the right choice on GPUs. CPUs without bfloat16 matrix
units emulate it, and there it dominates training: for ``vanillamixer_m4_28`` at batch 128
(benchmarks/muon_step.py, one thread) a whole training step costs 2.5× AdamW's with timm's
bfloat16 iteration and 1.09× with float32, which is also the more accurate of the two. So
on CPU the optimiser switches to float32 for the duration of each of its own steps.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

_MODULE = "timm.optim.muon"
_FUNCTION = "zeropower_via_newtonschulz"


def newton_schulz_in_float32(optimizer: torch.optim.Optimizer) -> None:
    """Make every ``step`` of a timm Muon ``optimizer`` orthogonalise in float32.

    The optimiser's ``step`` points timm's module-level function at a float32 version of
    itself for its own duration and restores it however the step ends (an exception too),
    so other optimisers in the process are untouched.
    """
    import importlib

    module = importlib.import_module(_MODULE)
    original = getattr(module, _FUNCTION, None)
    if original is None:  # a timm that no longer has it: keep its own behaviour
        return
    step = optimizer.step

    @functools.wraps(step)
    def step_in_float32(*args: Any, **kwargs: Any) -> Any:
        current = getattr(module, _FUNCTION)
        setattr(module, _FUNCTION, functools.partial(current, dtype=torch.float32))
        try:
            return step(*args, **kwargs)
        finally:
            setattr(module, _FUNCTION, current)

    optimizer.step = step_in_float32  # type: ignore[method-assign]
