"""The symmetric start of any model: every free MLP at ``W2 = W1ᵀ``, every attention layer
at ``W_K = W_Q``.

A free Mixer started at ``W2 = W1ᵀ`` begins as a Hopfield network and training shows how far
it leaves that point (finding 3, docs/symmetry.md); the same start for a Transformer also ties
the query and key projections, so that every head's score ``x_iᵀ W_Qᵀ W_K x_j`` is a
symmetric bilinear form (the symmetric initialisation of Saponati et al., ICML 2025,
arXiv:2502.10927). Layers are found by :mod:`hamixer.models.find_layers`.
"""

from __future__ import annotations

import torch
from torch import nn

from .find_layers import FoundAttention, FoundMLP, find_layers


@torch.no_grad()
def tie_symmetric(model: nn.Module) -> dict[str, list[str]]:
    """Start ``model`` symmetric, in place, after its ordinary initialisation.

    * every free two-layer MLP: ``fc2.weight = W1ᵀ`` (``W1`` = ``fc1.weight``; the value half
      of a gated MLP's ``fc1``, see :mod:`hamixer.models.find_layers`). Biases are kept.
      Tied MLPs (SymMixer) and AsymMixer's ``Wᵀ + W̃`` have no free ``W2`` and are left;
    * every attention layer: the key projection (the key rows of a fused ``qkv``, or
      ``k_proj``) becomes a copy of the query projection, so ``W_K^h = W_Q^h`` in every
      head; so does the key bias, where the layer has a query and a key bias.

    Returns:
        ``{"mlp": [module paths], "attention": [module paths]}``: what was tied.
    """
    tied: dict[str, list[str]] = {"mlp": [], "attention": []}
    for layer in find_layers(model):
        if isinstance(layer, FoundMLP) and layer.free:
            layer.output_layer.weight.copy_(layer.w1.t())
            tied["mlp"].append(layer.path)
        elif isinstance(layer, FoundAttention):
            _tie_query_key(layer)
            tied["attention"].append(layer.path)
    return tied


def _tie_query_key(layer: FoundAttention) -> None:
    """Copy the query projection into the key projection (weight, and bias where both have
    one): with equal biases too, the whole score, not only its bilinear part, is symmetric
    in the two tokens."""
    query, key, _ = layer.query_key_value()
    key.copy_(query)
    query_bias, key_bias = layer.query_key_bias()
    if query_bias is not None and key_bias is not None:
        key_bias.copy_(query_bias)
