"""The axis-wise linear map shared by the Mixer models and the HAM library.

A Mixer mixes along one axis of a ``[B, S, C]`` tensor: ``axis=-1`` mixes channels (an
ordinary linear layer on the last dimension), ``axis=-2`` mixes tokens, multiplying from the
left (``W @ x``) instead of transposing the tensor twice.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def apply_linear(x: Tensor, weight: Tensor, bias: Tensor | None, axis: int,
                 residual: Tensor | None = None) -> Tensor:
    """``weight`` ([out, in]) applied along ``axis`` of ``x`` with an optional ``bias``.

    With ``residual`` (the shape of the result) it returns ``residual + linear(x)``, the
    addition done by the GEMM itself (β = 1) instead of by a separate elementwise pass.
    """
    if axis == -1:
        if residual is None:
            return F.linear(x, weight, bias)
        base = residual if bias is None else residual + bias
        y = torch.addmm(base.reshape(-1, weight.shape[0]), x.reshape(-1, weight.shape[1]),
                        weight.t())
        return y.view(base.shape)
    if x.dim() == 3:
        # One batched GEMM with the weight broadcast over the batch (stride 0): unlike
        # ``torch.matmul``, which folds the batch into one GEMM through transposed copies of
        # ``x`` and hands the backward a transposed gradient, neither pass copies anything.
        w = weight.expand(x.shape[0], *weight.shape)
        base = None if bias is None else bias.unsqueeze(-1)
        if residual is not None:
            base = residual if base is None else residual + base
        if base is None:
            return torch.bmm(w, x)
        return torch.baddbmm(base.expand(x.shape[0], weight.shape[0], x.shape[-1]), w, x)
    y = torch.matmul(weight, x)
    y = y if bias is None else y + bias.unsqueeze(-1)
    return y if residual is None else residual + y
