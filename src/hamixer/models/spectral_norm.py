"""Spectral normalization with a coefficient: ``W ↦ W / max(1, σ(W) / coeff)``.

As in invertible ResNets (Behrmann et al. 2019): σ(W) is estimated by power iteration with
persistent vectors ``u`` and ``v`` (warm-started, so a few iterations per training step
track the slowly moving weight), and ``W`` is rescaled only when σ exceeds ``coeff``. The
result has spectral norm ≤ ``coeff`` up to the accuracy of the estimate.

Unlike ``torch.nn.utils.parametrizations.spectral_norm`` (which always normalises to σ = 1),
the bound is a free coefficient, and weights already inside it are left untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError


class SpectralNorm(nn.Module):
    """Holds the power-iteration state of one ``[out, in]`` matrix and normalises it.

    Args:
        out_features: rows of the matrix.
        in_features: columns of the matrix.
        coeff: bound on the spectral norm of the normalised matrix.
        n_power: power iterations per training forward. The first forward of a freshly
            built module (whatever its mode) starts instead from the exact top singular
            pair (one SVD), so that σ is right from the first step, in eval too.
        eps: floor of the norms in the power iteration.
    """

    #: the power iteration's left and right singular vector estimates (buffers)
    u: Tensor
    v: Tensor

    def __init__(self, out_features: int, in_features: int, coeff: float = 0.9,
                 n_power: int = 8, eps: float = 1e-12) -> None:
        super().__init__()
        if not 0.0 < coeff:
            raise ConfigError(f"coeff must be > 0, got {coeff}")
        if n_power < 1:
            raise ConfigError(f"n_power must be >= 1, got {n_power}")
        self.coeff = float(coeff)
        self.n_power = int(n_power)
        self.eps = eps
        self.register_buffer("u", F.normalize(torch.randn(out_features), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(torch.randn(in_features), dim=0, eps=eps))
        # Not a buffer: a loaded state carries a converged (u, v), a fresh one does not.
        self._fresh = True

    @torch.no_grad()
    def power_iteration_(self, weight: Tensor, n_power: int | None = None) -> None:
        """Refine ``u``, ``v`` towards the top singular vectors of ``weight`` in place."""
        w = weight.detach()
        u, v = self.u, self.v
        for _ in range(self.n_power if n_power is None else n_power):
            v = F.normalize(torch.mv(w.t(), u), dim=0, eps=self.eps)
            u = F.normalize(torch.mv(w, v), dim=0, eps=self.eps)
        self.u.copy_(u)
        self.v.copy_(v)
        self._fresh = False

    def sigma(self, weight: Tensor) -> Tensor:
        """σ estimate ``uᵀ W v``; differentiable in ``weight`` (u, v are constants)."""
        # Clones: the buffers change in place on the next forward, possibly inside the same
        # autograd graph (a block applied twice), and backward must see today's values.
        return torch.dot(self.u.clone(), torch.mv(weight, self.v.clone()))

    @torch.no_grad()
    def reset_(self, weight: Tensor) -> None:
        """Set ``u``, ``v`` to the exact top singular pair of ``weight`` (one SVD)."""
        u, _, vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
        self.u.copy_(u[:, 0])
        self.v.copy_(vh[0])
        self._fresh = False

    def forward(self, weight: Tensor) -> Tensor:
        """``weight / max(1, σ / coeff)``, with a power-iteration update when training."""
        if self._fresh:
            self.reset_(weight)
        elif self.training:
            self.power_iteration_(weight)
        scale = torch.clamp(self.sigma(weight) / self.coeff, min=1.0)
        return weight / scale

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._fresh = False

    def extra_repr(self) -> str:
        return f"coeff={self.coeff}, n_power={self.n_power}"
