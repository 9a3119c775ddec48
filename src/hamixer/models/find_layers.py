"""Two-layer MLPs and multi-head self-attention layers found in any ``nn.Module``.

The weight-symmetry measures (:mod:`hamixer.measures.symmetry`) and the symmetric start
(:mod:`hamixer.models.symmetric_init`) need the same matrices of the same layers, in hamixer
models and in timm models alike. Layers are recognised by their structure, not their class:

* **MLP** ``fc2 · act(fc1 · x)``, with ``W1`` [hidden, in] and ``W2`` [in, hidden]:

  - a hamixer MLP: a module with ``w1``/``w2`` tensors (``W2`` the effective output
    matrix, e.g. ``Wᵀ + W̃`` of an AsymMixer);
  - ``fc1`` and ``fc2`` ``nn.Linear`` children (timm's ``Mlp``);
  - *gated* (GLU): ``fc1`` has twice the outputs ``fc2`` takes (timm's ``GluMlp``,
    ``SwiGLUPacked``, ``GatedMlp``). ``fc1`` then outputs a value half and a gate half and
    ``fc2`` reads the value multiplied by the gate: ``value ⊙ act(gate)`` in ``GluMlp``
    (value first when ``gate_last`` is true, its default, second otherwise: timm's
    ``SwiGLUPacked``), ``act(u) ⊙ mix(act(v))`` in ``GatedMlp`` (gMLP: value ``u`` first,
    the gate ``v`` mixed across tokens). ``W1`` is the **value half** of ``fc1``: the rows
    whose output reaches ``fc2`` directly, so ``W2 = W1ᵀ`` ties the value path, as in an
    ungated MLP; the gate only scales it and is not measured;
  - ``fc1_x`` (value), ``fc1_g`` (gate) and ``fc2`` (timm's ``SwiGLU``): ``W1`` is ``fc1_x``.

* **Attention**: a hamixer attention (:mod:`hamixer.models.attention`: ``num_heads``,
  ``head_dim`` and the tensors ``query_weight``, ``key_weight``, ``value_weight``
  [H·head_dim, D] and ``out_weight`` [D, H·head_dim], the effective maps, e.g. ``W_K + Ṽ``
  of an AsymFormer), or a module with ``num_heads``/``head_dim``, an output ``nn.Linear``
  ``proj`` and the query, key and value projections, either *fused*, one ``nn.Linear``
  ``qkv`` of ``3·num_heads·head_dim`` outputs (timm's ``Attention``, EVA by default), or
  *separate*, ``nn.Linear`` ``q_proj``, ``k_proj``, ``v_proj`` of ``num_heads·head_dim``
  outputs each (EVA and ``AttentionRope`` with ``qkv_fused=False``). Head ``h`` has
  ``W_Q^h``, ``W_K^h``, ``W_V^h`` ([head_dim, D]: rows of ``qkv``, laid out as timm's
  ``reshape(B, N, 3, H, head_dim)`` reads them, or of ``q_proj``/``k_proj``/``v_proj``)
  and ``W_O^h`` ([D_out, head_dim], columns of ``proj``). Grouped-query attention (fewer
  key/value heads than query heads) is not recognised: its heads do not pair one to one.

A found layer's children are not searched further (an MLP inside an MLP is part of it).

Every layer is named by its module path and, where the path runs through an indexed
container (``blocks.3.mlp``), by a block index and the rest of the path, its *part*
(``mlp``; hamixer's ``token_mlp``/``channel_mlp`` are ``token``/``channel``: a trailing
``_mlp`` is dropped). When every container sits in the same list (``blocks.0``,
``blocks.1``, …) the block index is the list index; in nested layouts (``stages.1.blocks.0``)
blocks are numbered in module order across the whole model.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class FoundMLP:
    """One two-layer MLP: where it is and how to read ``W1`` and ``W2`` from it."""

    path: str
    block: int | None
    part: str
    module: nn.Module
    #: ``"hamixer"`` (``w1``/``w2``), ``"linear"`` (``fc1``/``fc2``), ``"gated"`` (GLU)
    kind: str
    #: the ``nn.Linear`` whose weight (or value rows) is ``W1``, if ``W1`` is a free weight
    input_layer: nn.Linear | None
    #: the ``nn.Linear`` whose weight is ``W2``, if ``W2`` is a free weight
    output_layer: nn.Linear | None
    #: rows of ``input_layer.weight`` that form ``W1`` (the value half of a gated MLP)
    value_rows: slice | None = None

    @property
    def w1(self) -> Tensor:
        """``W1`` [hidden, in]."""
        if self.kind == "hamixer":
            return _tensor(self.module, "w1")
        weight = _present(self.input_layer, "input_layer").weight
        return weight if self.value_rows is None else weight[self.value_rows]

    @property
    def w2(self) -> Tensor:
        """``W2`` [in, hidden] (for hamixer MLPs the effective output matrix)."""
        if self.kind == "hamixer":
            return _tensor(self.module, "w2")
        return _present(self.output_layer, "output_layer").weight

    @property
    def free(self) -> bool:
        """Whether ``W1`` and ``W2`` are independent weights (what a symmetric start ties)."""
        return (self.input_layer is not None and self.output_layer is not None
                and self.w1.shape == self.w2.t().shape)


@dataclass(frozen=True)
class FoundAttention:
    """One multi-head self-attention layer: query, key and value projections (fused or
    separate) and an output ``proj``."""

    path: str
    block: int | None
    part: str
    module: nn.Module
    num_heads: int
    head_dim: int
    #: ``"hamixer"`` (``query_weight`` … ``out_weight``) or ``"linear"`` (``nn.Linear``s)
    kind: str = "linear"

    @property
    def fused(self) -> bool:
        """Whether the projections are one ``qkv`` layer (else ``q_proj``/``k_proj``/``v_proj``)."""
        return isinstance(getattr(self.module, "qkv", None), nn.Linear)

    @property
    def proj(self) -> nn.Linear:
        return _linear(self.module, "proj")

    @property
    def out_weight(self) -> Tensor:
        """``W_O`` of all heads, [D_out, H·head_dim] (``proj``'s weight)."""
        return _tensor(self.module, "out_weight") if self.kind == "hamixer" else self.proj.weight

    @property
    def free(self) -> bool:
        """Whether W_Q, W_K, W_V and W_O are four independent weights (what a symmetric start
        ties): always for timm's layers, for hamixer's only in free attention."""
        if self.kind != "hamixer":
            return True
        weights = [getattr(self.module, n) for n in
                   ("query_weight", "key_weight", "value_weight", "out_weight")]
        own = {id(p) for p in self.module.parameters(recurse=False)}
        return all(id(w) in own for w in weights)

    def query_key_value(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(W_Q, W_K, W_V)`` of all heads, each [H·head_dim, D]: views of the row blocks
        of a fused ``qkv`` weight, or the three separate weights (writing to them writes
        the layer's weights, unless they are a hamixer attention's derived maps)."""
        if self.kind == "hamixer":
            query, key, value = (_tensor(self.module, n)
                                 for n in ("query_weight", "key_weight", "value_weight"))
            return query, key, value
        if self.fused:
            query, key, value = _linear(self.module, "qkv").weight.chunk(3)
            return query, key, value
        query, key, value = (_linear(self.module, n).weight
                             for n in ("q_proj", "k_proj", "v_proj"))
        return query, key, value

    def query_key_bias(self) -> tuple[Tensor | None, Tensor | None]:
        """The query and key biases of the projections (``None`` where a layer has none)."""
        if self.kind == "hamixer":
            return None, None
        if self.fused:
            bias = _linear(self.module, "qkv").bias
            if bias is None:
                return None, None
            query, key, _ = bias.chunk(3)
            return query, key
        return _linear(self.module, "q_proj").bias, _linear(self.module, "k_proj").bias

    @property
    def qkv_weight(self) -> Tensor:
        """The three projections stacked as one fused ``qkv`` weight [3·H·head_dim, D] (the
        layer's own weight when fused, a copy when separate)."""
        if self.kind != "hamixer" and self.fused:
            return _linear(self.module, "qkv").weight
        return torch.cat(self.query_key_value())

    def heads(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(W_Q, W_K, W_V, W_Oᵀ)`` of every head, see :func:`split_heads` (to write the
        weights, use :meth:`query_key_value`: the heads of separate projections are copies)."""
        return split_heads(self.qkv_weight, self.out_weight, self.num_heads)


def split_heads(qkv: Tensor, proj: Tensor, num_heads: int
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(W_Q, W_K, W_V, W_Oᵀ)`` stacked over heads, each [H, head_dim, D] (``W_Oᵀ``:
    [H, head_dim, D_out]), as views of a fused ``qkv`` weight [3·H·head_dim, D] and an
    output ``proj`` weight [D_out, H·head_dim] in timm's layout (``qkv`` rows: q, k, v, each
    head after head; ``proj`` columns: head after head)."""
    q, k, v = qkv.view(3, num_heads, -1, qkv.shape[-1]).unbind(0)
    o_t = proj.view(proj.shape[0], num_heads, -1).permute(1, 2, 0)
    return q, k, v, o_t


# ------------------------------------------------------------------------------ discovery
def find_mlps(model: nn.Module) -> list[FoundMLP]:
    """Every two-layer MLP of ``model``, in module order."""
    return [f for f in _find(model) if isinstance(f, FoundMLP)]


def find_attention(model: nn.Module) -> list[FoundAttention]:
    """Every multi-head self-attention layer of ``model``."""
    return [f for f in _find(model) if isinstance(f, FoundAttention)]


def find_layers(model: nn.Module) -> list[FoundMLP | FoundAttention]:
    """Every MLP and attention layer of ``model``, in module order."""
    return list(_find(model))


def _find(model: nn.Module) -> Iterator[FoundMLP | FoundAttention]:
    matched: list[tuple[str, nn.Module, str]] = []
    taken: list[str] = []
    for path, module in model.named_modules():
        if any(path.startswith(t + ".") for t in taken):
            continue  # inside a layer already found
        kind = _mlp_kind(module) or _attention_kind(module)
        if kind is not None:
            matched.append((path, module, kind))
            taken.append(path)
    blocks = _block_indices([p for p, _, _ in matched])
    for path, module, kind in matched:
        block, part = blocks[path]
        if kind in ("attention", "hamixer-attention"):
            yield FoundAttention(path, block, part, module, _int(module, "num_heads"),
                                 _int(module, "head_dim"),
                                 "hamixer" if kind == "hamixer-attention" else "linear")
        else:
            yield _found_mlp(path, block, part, module, kind)


def _mlp_kind(module: nn.Module) -> str | None:
    if _is_tensor(getattr(module, "w1", None)) and _is_tensor(getattr(module, "w2", None)):
        return "hamixer"
    fc1, fc2 = getattr(module, "fc1", None), getattr(module, "fc2", None)
    if isinstance(fc1, nn.Linear) and isinstance(fc2, nn.Linear):
        if fc1.out_features == fc2.in_features:
            return "linear"
        if fc1.out_features == 2 * fc2.in_features:
            return "gated"
        return None
    if all(isinstance(getattr(module, n, None), nn.Linear) for n in ("fc1_x", "fc1_g", "fc2")):
        return "split-gated"
    return None


def _found_mlp(path: str, block: int | None, part: str, module: nn.Module,
               kind: str) -> FoundMLP:
    if kind == "hamixer":
        # free only when w1/w2 are the fc1/fc2 weights themselves (FreeMLP, InvertibleMLP)
        fc1, fc2 = getattr(module, "fc1", None), getattr(module, "fc2", None)
        if (isinstance(fc1, nn.Linear) and isinstance(fc2, nn.Linear)
                and module.w1 is fc1.weight and module.w2 is fc2.weight):
            return FoundMLP(path, block, part, module, kind, fc1, fc2)
        return FoundMLP(path, block, part, module, kind, None, None)
    fc2 = _linear(module, "fc2")
    if kind == "split-gated":
        return FoundMLP(path, block, part, module, "gated", _linear(module, "fc1_x"), fc2)
    if kind == "gated":
        half = fc2.in_features
        value_first = bool(getattr(module, "gate_last", True))
        rows = slice(0, half) if value_first else slice(half, 2 * half)
        return FoundMLP(path, block, part, module, kind, _linear(module, "fc1"), fc2, rows)
    return FoundMLP(path, block, part, module, kind, _linear(module, "fc1"), fc2)


def _attention_kind(module: nn.Module) -> str | None:
    heads, head_dim = getattr(module, "num_heads", None), getattr(module, "head_dim", None)
    names = ("query_weight", "key_weight", "value_weight", "out_weight")
    if (isinstance(heads, int) and isinstance(head_dim, int)
            and all(_is_tensor(getattr(module, n, None)) for n in names)):
        return "hamixer-attention"
    return "attention" if _is_attention(module) else None


def _is_attention(module: nn.Module) -> bool:
    proj = getattr(module, "proj", None)
    heads, head_dim = getattr(module, "num_heads", None), getattr(module, "head_dim", None)
    if not (isinstance(proj, nn.Linear) and isinstance(heads, int)
            and isinstance(head_dim, int) and proj.in_features == heads * head_dim):
        return False
    qkv = getattr(module, "qkv", None)
    if isinstance(qkv, nn.Linear):
        return qkv.out_features == 3 * heads * head_dim
    separate = [getattr(module, n, None) for n in ("q_proj", "k_proj", "v_proj")]
    linears = [p for p in separate if isinstance(p, nn.Linear)]
    return (len(linears) == len(separate)
            and {(p.in_features, p.out_features) for p in linears}
            == {(linears[0].in_features, heads * head_dim)})


def _is_tensor(x: object) -> bool:
    return isinstance(x, Tensor) and x.dim() == 2


# Typed reads of the attributes the discovery above recognised a layer by: an attribute of
# another type is a layer that changed after it was found, a bug, not a user error.
def _tensor(module: nn.Module, name: str) -> Tensor:
    value = getattr(module, name)
    if not isinstance(value, Tensor):
        raise TypeError(f"{type(module).__name__}.{name} is not a tensor")
    return value


def _linear(module: nn.Module, name: str) -> nn.Linear:
    value = getattr(module, name)
    if not isinstance(value, nn.Linear):
        raise TypeError(f"{type(module).__name__}.{name} is not an nn.Linear")
    return value


def _int(module: nn.Module, name: str) -> int:
    value = getattr(module, name)
    if not isinstance(value, int):
        raise TypeError(f"{type(module).__name__}.{name} is not an int")
    return value


def _present(layer: nn.Linear | None, name: str) -> nn.Linear:
    if layer is None:
        raise TypeError(f"a found MLP without {name} has no free weight to read")
    return layer


# ------------------------------------------------------------------------------- naming
def _block_indices(paths: list[str]) -> dict[str, tuple[int | None, str]]:
    """``path → (block index or None, part)`` for the found layers' paths."""
    split = {p: _container(p) for p in paths}
    containers = list(dict.fromkeys(c for c, _ in split.values() if c is not None))
    lists = {c.rpartition(".")[0] for c in containers}
    if len(lists) <= 1:  # one list of blocks: its own indices
        index = {c: int(c.rpartition(".")[2]) for c in containers}
    else:  # nested lists (stages of blocks): number the blocks in module order
        index = {c: i for i, c in enumerate(containers)}
    out: dict[str, tuple[int | None, str]] = {}
    for path, (container, rest) in split.items():
        part = rest[: -len("_mlp")] if rest.endswith("_mlp") and rest != "_mlp" else rest
        out[path] = (index[container] if container is not None else None, part or "model")
    return out


def _container(path: str) -> tuple[str | None, str]:
    """The path up to the last integer component above the layer itself, and the rest
    (``"blocks.3.mlp"`` → ``("blocks.3", "mlp")``; ``"head.mlp"`` → ``(None, "head.mlp")``)."""
    parts = path.split(".")
    for i in range(len(parts) - 2, -1, -1):
        if parts[i].isdigit():
            return ".".join(parts[: i + 1]), ".".join(parts[i + 1:])
    return None, path
