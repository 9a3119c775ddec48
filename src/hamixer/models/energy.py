"""The energy of a parallel Mixer block (THEORY §2).

With ``g = norm(x)`` and the token MLP acting along tokens (axis −2), the channel MLP along
channels (axis −1), the energy of a visible state ``x`` ([B, S, C]) is

    E(x) = [x·g − L_v(x)] − Σ Φ(W_s g + b1_s) − b2_s·g − Σ Φ(g W_cᵀ + b1_c) − b2_c·g

where Φ is the GELU Lagrangian and ``L_v`` the LayerNorm Lagrangian of the block's norm.
The second part, ``E_int(g)``, depends on ``g`` only and ``−∂E_int/∂g = Tok(g) + Ch(g)``
is exactly the block's increment ``block(x) − x``; the continuous dynamics
``dx/dt = −∂E/∂g = Tok(g) + Ch(g) − x`` has ``dE/dt ≤ 0``.

**When the energy is exact** (every condition is checked; otherwise :class:`ConfigError`):

* the block is a :class:`ParallelMixerBlock` (a serial block applies two norms in sequence
  and is not the gradient step of one energy);
* its norm is the joint LayerNorm over (S, C) or the per-token LayerNorm, with
  ``affine="scalar"`` or ``"none"`` (per token, ``L_v`` is the sum of one LayerNorm
  Lagrangian per token). An *elementwise* gain makes the Jacobian of ``g`` non-symmetric:
  ``g`` is then no gradient of any Lagrangian. The shift δ (elementwise) is fine: it is the
  linear term ``Σ δ·x`` of ``L_v`` and cancels in the Legendre term;
* both MLPs are tied (:class:`SymmetricMLP`, output matrix ``W1ᵀ``); biases are allowed:
  ``b1`` shifts the argument of Φ and ``b2`` is the linear field ``−b2·g``;
* the activation is the exact erf GELU (``nn.GELU()``, not ``approximate="tanh"``), whose
  Lagrangian is Φ;
* dropout and drop-path are inactive (``eval()``): they are not part of the energy.

**Pseudo-energy** (``pseudo=True``), for free (:class:`FreeMLP`) and asymmetric MLPs or an
elementwise gain: the same formula with each MLP's *input* matrix and bias, i.e.
``−Σ Φ(mlp.hidden(g)) − b2·g`` with ``hidden(g) = W1 g + b1``; the output matrix
(``W2`` of a free MLP, ``W1ᵀ + W̃`` of an asymmetric one) is ignored. It equals the energy
whenever ``W2 = W1ᵀ``. With an elementwise gain γ_ij the Legendre term uses the LayerNorm
Lagrangian with the scalar gain ``mean(γ)``. Along the block's actual dynamics the
pseudo-energy need not decrease.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch import Tensor, nn

from ..errors import ConfigError
from ..ham.core import HAM, ChannelSynapse, Neurons, TokenSynapse
from ..ham.lagrangians import GELULagrangian, LayerNormLagrangian, gelu_lagrangian
from .mlp import AsymmetricMLP, MixingMLP, SymmetricMLP
from .norm import JointLayerNorm, TokenLayerNorm

if TYPE_CHECKING:  # the blocks call this module, so it must not import them at run time
    from .blocks import ParallelMixerBlock


def _is_tied(mlp: MixingMLP) -> bool:
    return isinstance(mlp, SymmetricMLP) and not isinstance(mlp, AsymmetricMLP)


def check_energy_config(block: nn.Module, pseudo: bool = False) -> None:
    """Raise :class:`ConfigError` unless ``block`` has an (exact or, with ``pseudo``, pseudo)
    energy."""
    if not getattr(block, "parallel", False):
        raise ConfigError(f"{type(block).__name__} has no energy: only parallel Mixer blocks "
                          "(one norm, both MLPs on the same input) are a Hopfield update")
    for label in ("token", "channel"):
        check_mlp_energy(label, submodule(block, f"{label}_mlp"), pseudo)
    check_norm_energy(submodule(block, "norm"), pseudo)


def submodule(block: nn.Module, name: str) -> nn.Module:
    """``block.<name>``, a submodule the energy reads (:class:`ConfigError` if ``block``
    has none of that name)."""
    part = getattr(block, name, None)
    if not isinstance(part, nn.Module):
        raise ConfigError(f"{type(block).__name__} has no submodule {name!r}, which its "
                          "energy reads")
    return part


def check_mlp_energy(label: str, mlp: nn.Module, pseudo: bool) -> None:
    """Raise :class:`ConfigError` unless ``mlp`` (named ``label`` in the message) is the
    gradient of a Hopfield energy (tied, exact GELU), or with ``pseudo`` has a pseudo-energy."""
    act = getattr(mlp, "act", None)
    if not isinstance(act, nn.GELU) or act.approximate != "none":
        raise ConfigError(f"the {label} MLP's activation is {act!r}; the energy needs the "
                          "exact erf GELU (nn.GELU()), whose Lagrangian is Φ")
    if not isinstance(mlp, MixingMLP):  # the energy reads w1, b1, b2 and hidden()
        raise ConfigError(f"the {label} MLP is {type(mlp).__name__}, not one of hamixer's "
                          "mixing MLPs (hamixer.models.mlp): it has no energy")
    if not pseudo and not _is_tied(mlp):
        raise ConfigError(f"the {label} MLP is {type(mlp).__name__}: only tied "
                          "(SymmetricMLP) weights have an exact energy; pass pseudo=True "
                          "for the pseudo-energy")


def check_norm_energy(norm: nn.Module, pseudo: bool) -> None:
    """Raise :class:`ConfigError` unless ``norm`` is the gradient of a Lagrangian (a joint
    or per-token LayerNorm with a scalar or no gain), or with ``pseudo`` any of the two."""
    if _energy_norm(norm).affine == "elementwise" and not pseudo:
        raise ConfigError("the LayerNorm has an elementwise gain, which is not the "
                          "gradient of a Lagrangian; use norm_affine='scalar' or 'none', "
                          "or pass pseudo=True")


def _energy_norm(norm: nn.Module) -> JointLayerNorm | TokenLayerNorm:
    """``norm`` as one of the LayerNorms the energy has a Lagrangian of."""
    if not isinstance(norm, (JointLayerNorm, TokenLayerNorm)):
        raise ConfigError(f"unsupported norm {type(norm).__name__} for the energy")
    return norm


def block_norm(block: nn.Module) -> JointLayerNorm | TokenLayerNorm:
    """``block.norm``, the visible layer's LayerNorm (:class:`ConfigError` if it has none
    the energy knows)."""
    return _energy_norm(submodule(block, "norm"))


def visible_lagrangian(block: nn.Module) -> LayerNormLagrangian:
    """The Lagrangian ``L_v`` whose gradient is ``block.norm`` (scalar-gain version)."""
    norm = block_norm(block)
    axes: tuple[int, ...] = (-2, -1) if isinstance(norm, JointLayerNorm) else (-1,)
    gain = norm.weight
    if gain is None:  # affine="none"
        return LayerNormLagrangian(axes, 1.0, None, norm.eps)
    if norm.affine == "scalar":
        return LayerNormLagrangian(axes, gain, norm.bias, norm.eps)
    # Elementwise gain (pseudo-energy only): a scalar stand-in, see the module docstring.
    return LayerNormLagrangian(axes, gain.detach().mean(), norm.bias, norm.eps)


def mlp_energy(mlp: MixingMLP, g: Tensor) -> Tensor:
    """``−Σ Φ(W1 g + b1) − b2·g`` of an MLP along its axis, ``[B]``."""
    e = -gelu_lagrangian(mlp.hidden(g)).flatten(1).sum(-1)
    if mlp.b2 is not None:
        b2 = mlp.b2.unsqueeze(-1) if mlp.axis == -2 else mlp.b2
        e = e - (b2 * g).flatten(1).sum(-1)
    return e


def interaction_energy(block: ParallelMixerBlock, g: Tensor, pseudo: bool = False) -> Tensor:
    """``E_int(g) = −Σ Φ(W_s g + b1_s) − b2_s·g − Σ Φ(g W_cᵀ + b1_c) − b2_c·g``, ``[B]``."""
    check_energy_config(block, pseudo)
    return mlp_energy(block.token_mlp, g) + mlp_energy(block.channel_mlp, g)


def legendre_energy(block: nn.Module, x: Tensor, g: Tensor | None = None) -> Tensor:
    """``x·g − L_v(x)`` of the visible layer, ``[B]`` (≈ −N·γ·ε/σ: zero up to ε)."""
    lag = visible_lagrangian(block)
    g = block_norm(block)(x) if g is None else g
    return (x * g).flatten(1).sum(-1) - lag.value(x, 2)


def block_energy(block: ParallelMixerBlock, x: Tensor, pseudo: bool = False) -> Tensor:
    """The energy (or, with ``pseudo=True``, the pseudo-energy) of THEORY §2 at ``x``.

    Args:
        block: a parallel Mixer block (see the module docstring for the exact conditions).
        x: visible states ``[B, S, C]``.
        pseudo: allow free/asymmetric MLPs and an elementwise gain (pseudo-energy).

    Returns:
        ``[B]``.
    """
    check_energy_config(block, pseudo)
    if x.dim() != 3 or tuple(x.shape[1:]) != (block.seq_len, block.dim):
        raise ConfigError(f"expected visible states [B, {block.seq_len}, {block.dim}], got "
                          f"{list(x.shape)}")
    g = block.norm(x)
    return legendre_energy(block, x, g) + interaction_energy(block, g, pseudo)


def block_vector_field(block: ParallelMixerBlock, x: Tensor) -> Tensor:
    """``dx/dt = Tok(g) + Ch(g) − x`` (τ = 1): the continuous dynamics of the block.

    For tied MLPs this is ``−∂E/∂g``; for free/asymmetric ones the same formula with the
    block's actual output matrices.
    """
    return block.update(x) - x


def block_as_ham(block: ParallelMixerBlock) -> HAM:
    """The block as a three-layer HAM sharing its parameters (THEORY §2).

    Layers: ``visible`` [S, C] (LayerNorm Lagrangian, field ``b2_s + b2_c``), ``token``
    [N_s, C] and ``channel`` [S, N_c] (GELU Lagrangians, fields ``b1``); synapses: a
    :class:`TokenSynapse` with ``W_s`` and a :class:`ChannelSynapse` with ``W_c``. At the
    hidden fixed points (:meth:`HAM.equilibrium_hidden`) its energy is ``block_energy``.
    """
    check_energy_config(block, pseudo=False)
    tok, ch = block.token_mlp, block.channel_mlp
    s, c = block.seq_len, block.dim
    # the visible field b2_s + b2_c, views of the biases (Neurons keeps them as they are)
    vis_bias: Tensor | None = None
    if tok.b2 is not None:
        vis_bias = tok.b2.unsqueeze(-1).expand(s, c)
    if ch.b2 is not None:
        channel_field = ch.b2.expand(s, c)
        vis_bias = channel_field if vis_bias is None else vis_bias + channel_field
    neurons = {
        "visible": Neurons((s, c), visible_lagrangian(block), vis_bias),
        "token": Neurons((tok.hidden_features, c), GELULagrangian(),
                         None if tok.b1 is None else tok.b1.unsqueeze(-1).expand(-1, c)),
        "channel": Neurons((s, ch.hidden_features), GELULagrangian(),
                           None if ch.b1 is None else ch.b1.expand(s, -1)),
    }
    synapses = {
        "token_mixing": TokenSynapse("visible", "token", tok.w1),
        "channel_mixing": ChannelSynapse("visible", "channel", ch.w1),
    }
    return HAM(neurons, synapses)
