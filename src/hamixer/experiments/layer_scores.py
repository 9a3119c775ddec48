"""Saponati et al.'s layer-level symmetry and directionality scores of self-attention.

Saponati, Sager, Aceituno, Stadelmann & Grewe, *The underlying structures of self-attention:
symmetry, directionality, and emergent dynamics in Transformer training* (ICML 2025,
arXiv:2502.10927), score one matrix per attention layer, the query–key matrix of **all heads
together**. Their code (``matteosaponati/attention-geometry``, ``utils/funs.py``, the
``get_M_*`` functions) forms it from the layer's query and key weights as
``Wq = query.weight.T``, ``Wk = key.weight.T``, ``M = Wq @ Wk.T``; with ``W_Q``, ``W_K`` the
[H·head_dim, D] weights of the query and key projections (timm's ``qkv`` row blocks) that is

    M = W_Qᵀ W_K = Σ_h W_Q^hᵀ W_K^h        ([D, D]; x_iᵀ M x_j = Σ_h q^h_i · k^h_j)

the bilinear form of the layer's summed (unscaled) attention logits. Biases, a qk-norm and
the 1/√head_dim scale are not part of it. Their ``utils/scores.py`` then computes:

* ``symmetry_score(A)`` = ‖(A + Aᵀ)/2‖² / ‖A‖² (Frobenius), in [0, 1];
* ``directionality_score(A, num_std=2)``: the row norms r_i = ‖A_i,:‖ and column norms
  c_j = ‖A_:,j‖, thresholds t_r = mean(r) + 2·std(r) and t_c = mean(c) + 2·std(c) (``torch``'s
  ``std``: with Bessel's correction), the excesses R = Σ_{r_i > t_r} (r_i − t_r) and
  C = Σ_{c_j > t_c} (c_j − t_c), and (C − R) / (C + R), or 0 when C + R = 0.

The scores they *publish* (their tables, ``notebooks-figures-tables/table-symmetry-
directionality-scores.ipynb``, and figures, ``utils/visualization.py``) are transformed:
``2·symmetry_score − 1`` and ``−directionality_score``, each summarised over a model's layers
by the median and the 25th and 75th percentiles (``np.percentile``, linear interpolation).
The functions here return the published forms:

* :func:`symmetry_score` = 2‖M_sym‖²/‖M‖² − 1 = ⟨M, Mᵀ⟩ / ‖M‖², in [−1, 1]: 1 for a symmetric
  M, −1 for an antisymmetric one, and for independent random factors about 1/D (for i.i.d.
  entries E⟨M, Mᵀ⟩ = r·D and E‖M‖² = r·D² with r the rank of the factors, so it → 0);
* :func:`directionality_score` = (R − C) / (R + C), in [−1, 1]: +1 when only rows of M stand
  out (a few query-side input directions dominate), −1 when only columns do (key side),
  0 when rows and columns have the same norms (every symmetric or antisymmetric M), and 0 in
  expectation for i.i.d. entries (M and Mᵀ are then equally likely and the score changes
  sign under transposition).

Per head, hamixer's own shares (:mod:`hamixer.experiments.symmetry`) relate to the first:
with one head, ``symmetry_score = qk_sym² − qk_antisym² = 2·qk_sym² − 1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

#: The outlier threshold of the directionality score, in standard deviations above the mean
#: (``num_std`` of their ``directionality_score``, 2 in every published number).
DIRECTIONALITY_NUM_STD = 2.0


def query_key_matrix(w_q: Tensor, w_k: Tensor) -> Tensor:
    """The layer's query–key matrix ``M = W_Qᵀ W_K`` [D, D] (float64) from the query and key
    weights of all heads, ``W_Q``, ``W_K`` [H·head_dim, D] (``nn.Linear`` layout): the sum over
    heads of ``W_Q^hᵀ W_K^h``, as their ``get_M_*`` functions form it."""
    if w_q.shape != w_k.shape or w_q.dim() != 2:
        raise ValueError(f"W_Q and W_K must be matrices of one shape, got {tuple(w_q.shape)} "
                         f"and {tuple(w_k.shape)}")
    return w_q.detach().double().t() @ w_k.detach().double()


@torch.no_grad()
def symmetry_score(m: Tensor) -> float:
    """The published symmetry score of a square matrix: ``2·‖(M + Mᵀ)/2‖²/‖M‖² − 1``
    (= ⟨M, Mᵀ⟩/‖M‖², in [−1, 1]); NaN for M = 0."""
    m = _square(m)
    norm2 = (m * m).sum()
    if norm2 == 0:
        return float("nan")
    sym = (m + m.t()) / 2
    return (2 * (sym * sym).sum() / norm2 - 1).item()


@torch.no_grad()
def directionality_score(m: Tensor, num_std: float = DIRECTIONALITY_NUM_STD) -> float:
    """The published directionality score of a square matrix: ``(R − C) / (R + C)`` with R
    and C the excesses of its row and column norms over ``mean + num_std·std`` (0 when
    neither has any), i.e. minus their code's ``directionality_score``."""
    m = _square(m)
    rows, cols = norm_excess(m.norm(dim=1), num_std), norm_excess(m.norm(dim=0), num_std)
    total = rows + cols
    return 0.0 if total == 0 else ((rows - cols) / total).item()


def norm_excess(norms: Tensor, num_std: float = DIRECTIONALITY_NUM_STD) -> Tensor:
    """``Σ (n − t)`` over the norms ``n`` above ``t = mean + num_std·std`` (Bessel-corrected
    std, as ``torch.std``), a scalar tensor."""
    threshold = norms.mean() + num_std * norms.std()
    above = norms[norms > threshold]
    return (above - threshold).sum()


def over_layers(values: Sequence[float]) -> dict[str, float]:
    """``{"median", "q25", "q75"}`` of per-layer scores, as their tables summarise a model
    (the 25th and 75th percentiles linearly interpolated, ``np.percentile``'s default)."""
    if not values:
        raise ValueError("no layer scores to summarise")
    x = torch.tensor(list(values), dtype=torch.float64)
    q = torch.quantile(x, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    return {"median": q[1].item(), "q25": q[0].item(), "q75": q[2].item()}


def _square(m: Tensor) -> Tensor:
    if m.dim() != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"the scores are defined for a square matrix, got {tuple(m.shape)}")
    return m.detach().double()
