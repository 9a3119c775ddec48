"""Hierarchical associative memory: neuron layers, synapses, and their energy (THEORY §1).

A :class:`HAM` holds named :class:`Neurons` (a shape, a Lagrangian, an optional linear
field ``b``) and :class:`Synapse` objects joining two layers. States are dicts
``name → x_A`` of shape ``[B, *shape_A]``. The energy of each sample is

    E = Σ_A [x_A·g_A − L_A(x_A) − b_A·g_A]  +  Σ_synapses E_syn(g_pre, g_post)

and the dynamics is ``τ_A dx_A/dt = −∂E/∂g_A`` where, because ``∂(x·g − L)/∂g = x``,
``∂E/∂g_A = x_A − b_A + ∂E_syn/∂g_A``; the synaptic part is taken by autograd.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

from ..ops import apply_linear
from .lagrangians import Lagrangian

States = dict[str, Tensor]


def _as_parameter(t: Tensor) -> nn.Parameter:
    return t if isinstance(t, nn.Parameter) else nn.Parameter(t)


class Neurons(nn.Module):
    """One layer: ``shape`` (without batch), a Lagrangian, and an optional bias (linear field).

    The bias ``b`` adds ``−b·g`` to the energy: for hidden units it shifts their equilibrium
    to ``x = W g + b``, for visible units it is the output bias of an MLP (THEORY §2).
    """

    def __init__(self, shape: Sequence[int], lagrangian: Lagrangian,
                 bias: Tensor | None = None) -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        if not self.shape or min(self.shape) < 1:
            raise ValueError(f"a layer needs a non-empty positive shape, got {self.shape}")
        self.lagrangian = lagrangian
        # A Parameter is registered (trainable here); any other tensor, e.g. a view of a
        # Mixer's bias, is kept as it is so that gradients reach its owner.
        self.bias = bias

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def activation(self, x: Tensor) -> Tensor:
        return self.lagrangian.activation(x)

    def legendre(self, x: Tensor, g: Tensor | None = None) -> Tensor:
        """``x·g − L(x)`` of each sample (the layer's own energy, without the bias field)."""
        g = self.activation(x) if g is None else g
        dims = tuple(range(-self.ndim, 0))
        return (x * g).sum(dim=dims) - self.lagrangian.value(x, self.ndim)

    def field(self, g: Tensor) -> Tensor:
        """``−b·g`` of each sample (zero without a bias)."""
        if self.bias is None:
            return g.new_zeros(g.shape[: g.dim() - self.ndim])
        return -(self.bias * g).sum(dim=tuple(range(-self.ndim, 0)))

    def extra_repr(self) -> str:
        return f"shape={self.shape}, bias={self.bias is not None}"


class Synapse(nn.Module, abc.ABC):
    """Interaction energy between the activations of layer ``pre`` and layer ``post``."""

    def __init__(self, pre: str, post: str) -> None:
        super().__init__()
        self.pre = pre
        self.post = post

    @abc.abstractmethod
    def energy(self, g_pre: Tensor, g_post: Tensor) -> Tensor:
        """The interaction energy of each sample."""

    @abc.abstractmethod
    def drive(self, g_pre: Tensor) -> Tensor:
        """The input ``W·g_pre`` that this synapse gives to ``post`` (its equilibrium state)."""


class DenseSynapse(Synapse):
    """``E = −g_postᵀ W g_pre`` on flattened layers; ``weight`` is ``[size_post, size_pre]``."""

    def __init__(self, pre: str, post: str, weight: Tensor) -> None:
        super().__init__(pre, post)
        if weight.dim() != 2:
            raise ValueError(f"a dense synapse needs a 2-D weight, got {tuple(weight.shape)}")
        self.weight = _as_parameter(weight)

    def drive(self, g_pre: Tensor, post_shape: Sequence[int] | None = None) -> Tensor:
        flat = g_pre.reshape(*g_pre.shape[:1], -1) if g_pre.dim() > 1 else g_pre
        out = flat @ self.weight.t()
        return out if post_shape is None else out.reshape(*out.shape[:1], *post_shape)

    def energy(self, g_pre: Tensor, g_post: Tensor) -> Tensor:
        batch = g_pre.shape[0]
        return -(g_post.reshape(batch, -1) * self.drive(g_pre)).sum(-1)


class AxisSynapse(Synapse):
    """Weight-shared synapse: ``weight`` ([out, in]) acts along one ``axis`` of ``g_pre``.

    ``E = −Σ g_post ⊙ (W ·_axis g_pre)``: every slice along the other axes uses the same
    matrix, which is what makes the hidden layers of THEORY §2 a Mixer.
    """

    def __init__(self, pre: str, post: str, weight: Tensor, axis: int) -> None:
        super().__init__(pre, post)
        if weight.dim() != 2:
            raise ValueError(f"an axis synapse needs a 2-D weight, got {tuple(weight.shape)}")
        if axis not in (-1, -2):
            raise ValueError(f"axis must be -1 or -2, got {axis}")
        self.weight = _as_parameter(weight)
        self.axis = axis

    def drive(self, g_pre: Tensor) -> Tensor:
        return apply_linear(g_pre, self.weight, None, self.axis)

    def energy(self, g_pre: Tensor, g_post: Tensor) -> Tensor:
        return -(g_post * self.drive(g_pre)).flatten(1).sum(-1)


class TokenSynapse(AxisSynapse):
    """Visible ``[S, C]`` → hidden ``[N_s, C]``: ``W_s ∈ R^{N_s×S}`` shared across channels."""

    def __init__(self, pre: str, post: str, weight: Tensor) -> None:
        super().__init__(pre, post, weight, axis=-2)


class ChannelSynapse(AxisSynapse):
    """Visible ``[S, C]`` → hidden ``[S, N_c]``: ``W_c ∈ R^{N_c×C}`` shared across tokens."""

    def __init__(self, pre: str, post: str, weight: Tensor) -> None:
        super().__init__(pre, post, weight, axis=-1)


class HAM(nn.Module):
    """Neurons + synapses; energy, its parts, and ``∂E/∂g`` for batched states."""

    def __init__(self, neurons: Mapping[str, Neurons], synapses: Mapping[str, Synapse]) -> None:
        super().__init__()
        if not neurons:
            raise ValueError("a HAM needs at least one layer of neurons")
        self.neurons = nn.ModuleDict(dict(neurons))
        self.synapses = nn.ModuleDict(dict(synapses))
        for name, syn in synapses.items():
            for end in (syn.pre, syn.post):
                if end not in neurons:
                    raise ValueError(f"synapse {name!r} joins unknown layer {end!r}")

    # A ModuleDict's values are typed Module; these hold the Neurons and Synapses given above.
    def _layers(self) -> Mapping[str, Neurons]:
        return cast("Mapping[str, Neurons]", self.neurons)

    def _synapses(self) -> Mapping[str, Synapse]:
        return cast("Mapping[str, Synapse]", self.synapses)

    # ----------------------------------------------------------------- states
    def init_states(self, batch: int, fill: float = 0.0, **like: Tensor) -> States:
        """Zero (or ``fill``) states of every layer, with given ones taken from ``like``."""
        ref = next(self.parameters(), None)
        kw: dict[str, Any] = dict(device=ref.device, dtype=ref.dtype) if ref is not None else {}
        states = {}
        for name, layer in self._layers().items():
            states[name] = like[name] if name in like else torch.full(
                (batch, *layer.shape), fill, **kw)
        return states

    def check_states(self, states: Mapping[str, Tensor]) -> None:
        for name, layer in self._layers().items():
            if name not in states:
                raise ValueError(f"missing state of layer {name!r}")
            if tuple(states[name].shape[1:]) != layer.shape:
                raise ValueError(f"layer {name!r} has shape {layer.shape}, state has "
                                 f"{tuple(states[name].shape[1:])} after the batch dimension")

    def activations(self, states: Mapping[str, Tensor]) -> States:
        return {name: layer.activation(states[name]) for name, layer in self._layers().items()}

    # ----------------------------------------------------------------- energy
    def interaction_energy(self, acts: Mapping[str, Tensor]) -> Tensor:
        """The part of E that depends on the activations only: fields and synapses."""
        parts = [layer.field(acts[name]) for name, layer in self._layers().items()]
        parts += [syn.energy(acts[syn.pre], acts[syn.post]) for syn in self._synapses().values()]
        total = parts[0]  # a HAM has a layer; the sum runs in the order of the layers
        for part in parts[1:]:
            total = total + part
        return total

    def energy_tree(self, states: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
        """Per-layer (Legendre term + field) and per-synapse energies, each ``[B]``."""
        self.check_states(states)
        acts = self.activations(states)
        neurons = {name: layer.legendre(states[name], acts[name]) + layer.field(acts[name])
                   for name, layer in self._layers().items()}
        synapses = {name: syn.energy(acts[syn.pre], acts[syn.post])
                    for name, syn in self._synapses().items()}
        return {"neurons": neurons, "synapses": synapses}

    def energy(self, states: Mapping[str, Tensor]) -> Tensor:
        """Total energy of each sample, ``[B]``."""
        tree = self.energy_tree(states)
        # sum() starts from the int 0; with one layer or more the result is a tensor
        return cast(Tensor, sum(tree["neurons"].values()) + sum(tree["synapses"].values()))

    def grads(self, states: Mapping[str, Tensor], create_graph: bool = False) -> States:
        """``∂E/∂g_A = x_A + ∂E_int/∂g_A`` for every layer, by autograd on the activations.

        ``create_graph=True`` keeps the graph so that a loss on the result can be trained
        through the dynamics.
        """
        self.check_states(states)
        with torch.enable_grad():
            acts = {}
            for name, g in self.activations(states).items():
                if not create_graph:
                    g = g.detach()
                acts[name] = g if g.requires_grad else g.requires_grad_(True)
            e_int = self.interaction_energy(acts).sum()
            names = list(acts)
            parts = torch.autograd.grad(e_int, [acts[n] for n in names], create_graph=create_graph,
                                        allow_unused=True)
        out = {}
        for name, part in zip(names, parts, strict=True):
            x = states[name] if create_graph else states[name].detach()
            out[name] = x if part is None else x + part
        return out

    def equilibrium_hidden(self, states: Mapping[str, Tensor], visible: str) -> States:
        """States with every layer fed only by ``visible`` set to its fixed point ``Σ W g + b``.

        This is the adiabatic limit of THEORY §2 (hidden time constants → 0).
        """
        layers = self._layers()
        g_vis = layers[visible].activation(states[visible])
        out = dict(states)
        drives: dict[str, Tensor] = {}
        for syn in self._synapses().values():
            if syn.pre != visible or syn.post == visible:  # a layer's synapse with itself
                continue                                   # (attention) feeds no hidden layer
            layer = layers[syn.post]
            d = syn.drive(g_vis).reshape(g_vis.shape[0], *layer.shape)
            drives[syn.post] = d if syn.post not in drives else drives[syn.post] + d
        for name, d in drives.items():
            bias = layers[name].bias
            out[name] = d if bias is None else d + bias
        return out
