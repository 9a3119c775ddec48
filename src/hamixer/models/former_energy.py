"""The energy of a parallel Transformer block (THEORY §8).

With ``g = norm(x)`` (per token or joint, scalar gain) the energy of visible tokens ``x``
``[B, N, D]`` is

    E(x) = [x·g − L_v(x)]  +  E_att(g)  −  Σ_A Σ_μ Φ(ξ_μᵀ g_A)

where ``E_att = −(1/β) Σ_h Σ_C log Σ_B exp(β K_hBᵀ Q_hC)`` (:mod:`hamixer.ham.attention`)
and the last term is the Hopfield MLP (§2's tied channel MLP, ``ξ = W1``, Φ the GELU
Lagrangian). ``−∂(E_att + E_hn)/∂g`` is exactly SymFormer's increment ``block(x) − x``,
and the flow ``dx/dt = block(x) − 2x`` (i.e. ``−∂E/∂g``) never raises ``E``.

**Exact** (each condition checked; otherwise :class:`ConfigError`): energy attention
(:class:`~hamixer.models.attention.EnergyAttention`), a tied MLP with the exact GELU, a
LayerNorm with a scalar or no gain, and ``eval()`` (dropout, drop-path are not part of it).

**Pseudo-energy** (``pseudo=True``) for ParaFormer and AsymFormer: the same formula with
each layer's *input* side, the log-sum-exp of its own queries and keys and ``Φ(W1 g)``; the
output-side maps (W_V, W_O, the key term's, W2) are ignored. It equals the energy when the
breaking matrices are zero; along the block's actual dynamics it need not decrease.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from torch import Tensor, nn

from ..errors import ConfigError
from ..ham.attention import AttentionSynapse, MultiHeadScores
from ..ham.core import HAM, ChannelSynapse, Neurons
from ..ham.lagrangians import GELULagrangian
from .attention import EnergyAttention
from .energy import (
    check_mlp_energy,
    check_norm_energy,
    legendre_energy,
    mlp_energy,
    submodule,
    visible_lagrangian,
)

if TYPE_CHECKING:  # the block calls this module, so it must not import it at run time
    from .former import ParallelFormerBlock


def check_former_energy(block: nn.Module, pseudo: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``block`` has an (exact or pseudo) energy."""
    if not getattr(block, "parallel", False) or not hasattr(block, "attn"):
        raise ConfigError(f"{type(block).__name__} has no energy: only parallel Transformer "
                          "blocks (one norm, attention and MLP on the same input) have one")
    if not pseudo and not isinstance(block.attn, EnergyAttention):
        raise ConfigError(f"the attention is {type(block.attn).__name__}: only energy "
                          "attention (tied value–output map and key term) has an exact "
                          "energy; pass pseudo=True for the pseudo-energy")
    check_mlp_energy("channel", submodule(block, "mlp"), pseudo)
    check_norm_energy(submodule(block, "norm"), pseudo)


def attention_energy(attn: MultiHeadScores, g: Tensor) -> Tensor:
    """``−(1/β) Σ_h Σ_C log Σ_B exp(β K_hBᵀ Q_hC)`` with ``attn``'s queries and keys, ``[B]``
    (the energy of energy attention, the pseudo-energy of the others)."""
    return attn.attention_energy(g)


def former_block_energy(block: ParallelFormerBlock, x: Tensor, pseudo: bool = False) -> Tensor:
    """The energy (or, with ``pseudo=True``, the pseudo-energy) of THEORY §8 at ``x``.

    Args:
        block: a parallel Transformer block (see the module docstring for the conditions).
        x: visible states ``[B, N, D]``.
        pseudo: allow free/asymmetric attention and MLPs and an elementwise gain.

    Returns:
        ``[B]``.
    """
    check_former_energy(block, pseudo)
    if x.dim() != 3 or tuple(x.shape[1:]) != (block.seq_len, block.dim):
        raise ConfigError(f"expected visible states [B, {block.seq_len}, {block.dim}], got "
                          f"{list(x.shape)}")
    g = block.norm(x)
    return legendre_energy(block, x, g) + attention_energy(block.attn, g) + \
        mlp_energy(block.mlp, g)


def former_block_as_ham(block: ParallelFormerBlock) -> HAM:
    """SymFormer's block as a HAM sharing its parameters: a ``visible`` layer ``[N, D]``
    (LayerNorm Lagrangian), energy attention on it, and a ``memories`` layer ``[N, K]`` (GELU
    Lagrangian) joined by the Hopfield MLP's channel synapse ``ξ``. At the memories' fixed
    point (:meth:`HAM.equilibrium_hidden`) its energy is :func:`former_block_energy`."""
    check_former_energy(block, pseudo=False)
    attn = cast(EnergyAttention, block.attn)  # what check_former_energy(pseudo=False) checked
    neurons = {
        "visible": Neurons((block.seq_len, block.dim), visible_lagrangian(block)),
        "memories": Neurons((block.seq_len, block.mlp.hidden_features), GELULagrangian()),
    }
    synapses = {
        "attention": AttentionSynapse("visible", attn.query_weight, attn.key_weight,
                                      attn.num_heads, attn.beta, attn.exclude_self),
        "hopfield": ChannelSynapse("visible", "memories", block.mlp.w1),
    }
    return HAM(neurons, synapses)
