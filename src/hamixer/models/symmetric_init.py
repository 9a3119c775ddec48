"""The symmetric start of any model: every free MLP at ``W2 = W1ᵀ``, every attention layer
at the tied start of energy attention.

A free Mixer started at ``W2 = W1ᵀ`` begins as a Hopfield network and training shows how far
it leaves that point (finding 3, docs/symmetry.md). The tied start of a Transformer (THEORY
§8, finding 3) is, per head ``h``,

    W_K^h = W_Q^h,    W_V^h = W_K^h,    W_O^h = W_Q^hᵀ,

so that every head's score ``x_iᵀ W_Q^hᵀ W_K^h x_j`` is a symmetric bilinear form (the
symmetric initialisation of Saponati et al., ICML 2025, arXiv:2502.10927) and its
value–output map is the one of energy attention, ``W_O^h W_V^h = W_Q^hᵀ W_K^h`` (the query
term of ``−∂E_att/∂g``, Hoover et al., arXiv:2302.07253). With ``W_K = W_Q`` that map is
``W_Q^hᵀ W_Q^h``: symmetric and positive semi-definite. Layers are found by
:mod:`hamixer.models.find_layers`.
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
    * every attention layer: the key and the value projection (the key and value rows of a
      fused ``qkv``, or ``k_proj`` and ``v_proj``) become copies of the query projection, so
      ``W_K^h = W_V^h = W_Q^h`` in every head, and the output projection becomes its
      transpose, ``proj.weight = W_Qᵀ``: head ``h``'s column block of ``proj`` is
      ``W_Q^hᵀ``. The query weights keep their initialisation, the others take its scale.
      The key bias becomes the query bias where the layer has both; the value and output
      biases keep their initialisation (zero in timm's ViTs), so the head's value–output
      path is ``W_O^h (W_V^h x + b_V^h)`` plus ``proj``'s bias: tied in its linear part. A
      layer whose ``proj`` maps to another width than its input (``W_O^h`` cannot be
      ``W_Q^hᵀ``) gets the query–key tie only.

    Returns:
        ``{"mlp": [module paths], "attention": [module paths], "value_output": [module
        paths]}``: the MLPs tied, the attention layers tied (``W_K = W_Q``), and those of
        them whose value–output map was tied too.
    """
    tied: dict[str, list[str]] = {"mlp": [], "attention": [], "value_output": []}
    for layer in find_layers(model):
        # (a free MLP has its output layer: the second test only tells the type checker)
        if isinstance(layer, FoundMLP) and layer.free and layer.output_layer is not None:
            layer.output_layer.weight.copy_(layer.w1.t())
            tied["mlp"].append(layer.path)
        elif isinstance(layer, FoundAttention) and layer.free:
            _tie_query_key(layer)
            tied["attention"].append(layer.path)
            if _tie_value_output(layer):
                tied["value_output"].append(layer.path)
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


def _tie_value_output(layer: FoundAttention) -> bool:
    """``W_V = W_K`` and ``proj.weight = W_Qᵀ`` (every head's ``W_O^h W_V^h = W_Q^hᵀ
    W_K^h``), if ``proj`` maps back to the input width; whether it did."""
    query, key, value = layer.query_key_value()
    proj = layer.out_weight
    if proj.shape != query.t().shape:
        return False
    value.copy_(key)
    proj.copy_(query.t())
    return True
