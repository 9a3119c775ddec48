"""How far a model's weights are from the symmetric (Hopfield) configuration: W2 = W1ᵀ in its
two-layer MLPs, a symmetric bilinear score in its attention heads. Works on any ``nn.Module``
(layers found by :mod:`hamixer.models.find_layers`: hamixer Mixers, timm's ViTs and Mixers).

For one MLP with input matrix ``W1`` ([hidden, in]) and effective output matrix ``W2``
([in, hidden]) the measures are (Frobenius inner products and norms throughout):

* ``cosine``: ⟨W2, W1ᵀ⟩ / (‖W2‖·‖W1‖). 1 for a tied MLP; about 0 for independent random
  matrices; negative when W2 points against W1ᵀ.
* ``scale``: the best scalar fit ``a`` of W2 ≈ a·W1ᵀ, i.e. ⟨W2, W1ᵀ⟩ / ‖W1‖².
* ``residual``: the relative residual of that fit, ‖W2 − a·W1ᵀ‖ / ‖W2‖ = √(1 − cosine²).
  0 when W2 is a multiple of W1ᵀ, 1 when W2 is orthogonal to it.
* ``coupling_antisym``: with the effective linear coupling between the visible units
  ``J = W2·W1`` ([in, in]: what the MLP feeds back to unit i from unit j, activation
  slopes set to 1), ‖(J − Jᵀ)/2‖ / ‖J‖. 0 exactly when J is symmetric (as it is for a
  tied MLP, J = W1ᵀW1); at most 1.
* ``coupling_sym``: ‖(J + Jᵀ)/2‖ / ‖J‖; coupling_sym² + coupling_antisym² = 1.
* ``breaking_ratio`` (AsymMixer only): ‖W̃‖ / ‖W1ᵀ‖, the size of the breaking matrix
  relative to the tied part.

A gated MLP (GLU) is measured on the value half of ``fc1`` (see
:mod:`hamixer.models.find_layers`). For one attention head ``h`` with ``W_Q``, ``W_K``,
``W_V`` ([head_dim, D]) and ``W_O`` ([D, head_dim]):

* ``qk_sym``, ``qk_antisym``: ‖(M ± Mᵀ)/2‖ / ‖M‖ of ``M = W_Qᵀ W_K`` ([D, D]), the bilinear
  form of the score ``x_iᵀ M x_j`` (per head; ``qk_sym² − qk_antisym²`` is the head's
  symmetry score in the sense of Saponati et al., below).
* ``vo_sym``, ``vo_antisym``: the same for ``N = W_O W_V`` ([D, D]), what the head writes
  into the residual stream from the values it reads.
* ``vo_qk_cosine``, ``vo_qk_distance``: N against M, ⟨N, M⟩ / (‖N‖·‖M‖) and ‖N − M‖ / ‖M‖.
  An energy attention (THEORY §8) has the tied value–output map ``W_O W_V = W_Qᵀ W_K``
  (cosine 1, distance 0), the symmetric start of :mod:`hamixer.models.symmetric_init` too;
  independent random matrices of one scale give about 0 and √2.

A layer's row holds the mean over its heads (and ``per_head`` lists), and two scores of the
whole layer, Saponati et al.'s (:mod:`hamixer.experiments.layer_scores`): of the layer's
``M = W_Qᵀ W_K = Σ_h W_Q^hᵀ W_K^h``, ``qk_symmetry_score`` = ⟨M, Mᵀ⟩ / ‖M‖² and
``qk_directionality_score``, as they publish them. Beside every measure
the *reference* of :mod:`hamixer.experiments.symmetry_reference` says what independent random
matrices of the same shapes score.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..models.find_layers import (
    FoundAttention,
    FoundMLP,
    find_attention,
    find_mlps,
    split_heads,
)
from ..runs import format_measure, read_init_metrics, read_metrics
from .layer_scores import directionality_score, over_layers, query_key_matrix, symmetry_score
from .symmetry_reference import REFERENCE_DRAWS, random_reference

MEASURES = ("cosine", "scale", "residual", "coupling_sym", "coupling_antisym")
#: The measures of an MLP row in a metrics row (``breaking_ratio`` only for AsymMixer).
MLP_MEASURES = (*MEASURES, "breaking_ratio")
#: Attention measures per head (a row holds their means over heads, and ``per_head``).
HEAD_MEASURES = ("qk_sym", "qk_antisym", "vo_sym", "vo_antisym", "vo_qk_cosine",
                 "vo_qk_distance")
#: Saponati et al.'s scores of the whole layer's query–key matrix.
LAYER_SCORES = ("qk_symmetry_score", "qk_directionality_score")
#: hamixer's attention only (THEORY §8): the key term against its tied map ``W_Kᵀ W_Q`` and its
#: size against the query term's (means over heads), and AsymFormer's breaking matrices
#: relative to the tied parts they break.
KEY_TERM_MEASURES = ("key_qk_cosine", "key_term_ratio")
BREAKING_MEASURES = ("value_breaking_ratio", "out_breaking_ratio", "key_out_breaking_ratio")
ATTENTION_MEASURES = (*HEAD_MEASURES, *LAYER_SCORES, *KEY_TERM_MEASURES, *BREAKING_MEASURES)


# ------------------------------------------------------------------------- one layer
@torch.no_grad()
def weight_symmetry(w1: Tensor, w2: Tensor) -> dict[str, float]:
    """The MLP measures above for ``w1`` [hidden, in] and ``w2`` [in, hidden]."""
    if w2.shape != w1.t().shape:
        raise ValueError(f"W2 {tuple(w2.shape)} must have the shape of W1ᵀ {tuple(w1.t().shape)}")
    w1, w2 = w1.double(), w2.double()
    w1t = w1.t()
    n1, n2 = w1.norm(), w2.norm()
    dot = (w2 * w1t).sum()
    cosine = (dot / (n1 * n2)).item() if n1 > 0 and n2 > 0 else float("nan")
    scale = (dot / n1.pow(2)).item() if n1 > 0 else float("nan")
    resid = ((w2 - scale * w1t).norm() / n2).item() if n2 > 0 else float("nan")
    j = w2 @ w1
    jn = j.norm()
    sym = ((j + j.t()) / 2).norm() / jn if jn > 0 else torch.tensor(float("nan"))
    anti = ((j - j.t()) / 2).norm() / jn if jn > 0 else torch.tensor(float("nan"))
    return dict(cosine=cosine, scale=scale, residual=resid, coupling_sym=sym.item(),
                coupling_antisym=anti.item())


def mlp_symmetry(mlp: nn.Module | FoundMLP) -> dict[str, float]:
    """Measures of one MLP: anything with ``w1``/``w2`` (a hamixer MLP, a found MLP);
    ``breaking_ratio`` if its module has a ``breaking`` matrix."""
    out = weight_symmetry(mlp.w1, mlp.w2)
    module = mlp.module if isinstance(mlp, FoundMLP) else mlp
    breaking = getattr(module, "breaking", None)
    if isinstance(breaking, Tensor):
        with torch.no_grad():
            out["breaking_ratio"] = (breaking.norm() / mlp.w1.norm()).item()
    return out


@torch.no_grad()
def bilinear_shares(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric and antisymmetric shares ‖(M ± Mᵀ)/2‖ / ‖M‖ of ``M = aᵀ b`` for factors
    ``a``, ``b`` [..., r, D] (batched over leading dimensions, e.g. heads).

    Computed in the r × r space (r = head_dim, usually ≪ D) from ‖M‖² = tr(a aᵀ · b bᵀ) and
    ⟨M, Mᵀ⟩ = tr((b aᵀ)²), since ‖(M ± Mᵀ)/2‖² = (‖M‖² ± ⟨M, Mᵀ⟩) / 2. NaN where M = 0.
    """
    if a.shape != b.shape:
        raise ValueError(f"factors must have one shape, got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    a, b = a.double(), b.double()
    c = b @ a.mT
    cross = (c * c.mT).sum((-2, -1))
    norm2 = ((a @ a.mT) * (b @ b.mT)).sum((-2, -1))
    ratio = cross / norm2
    return ((1 + ratio) / 2).clamp(0, 1).sqrt(), ((1 - ratio) / 2).clamp(0, 1).sqrt()


def frobenius_products(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """⟨aᵀ b, cᵀ d⟩ (Frobenius) for factors [..., r, D] batched over leading dimensions,
    computed in the r × r space: tr(bᵀ a cᵀ d) = Σ (a cᵀ) ∘ (b dᵀ)."""
    return ((a @ c.mT) * (b @ d.mT)).sum((-2, -1))


@torch.no_grad()
def value_output_against_query_key(o_t: Tensor, v: Tensor, q: Tensor, k: Tensor
                                   ) -> tuple[Tensor, Tensor]:
    """Per head, ``N = W_O W_V`` against ``M = W_Qᵀ W_K``: the cosine ⟨N, M⟩ / (‖N‖‖M‖) and
    the relative distance ‖N − M‖ / ‖M‖, for ``W_Oᵀ``, ``W_V``, ``W_Q``, ``W_K`` [..., r, D]
    (float64; NaN where N or M is 0)."""
    o_t, v, q, k = (x.double() for x in (o_t, v, q, k))
    nm = frobenius_products(o_t, v, q, k)
    n2, m2 = frobenius_products(o_t, v, o_t, v), frobenius_products(q, k, q, k)
    cosine = nm / (n2 * m2).sqrt()
    distance = (n2 + m2 - 2 * nm).clamp(min=0).sqrt() / m2.sqrt()
    return cosine, distance


def attention_weight_symmetry(qkv: Tensor, proj: Tensor, num_heads: int) -> dict[str, Any]:
    """The attention measures of a fused ``qkv`` weight [3·H·head_dim, D] and an output
    ``proj`` weight [D_out, H·head_dim]: means over heads, ``per_head`` lists, and the layer
    scores. The value-output measures are NaN when D_out ≠ D (N is not square)."""
    q, k, v, o_t = split_heads(qkv, proj, num_heads)
    per_head = dict(zip(("qk_sym", "qk_antisym"), bilinear_shares(q, k), strict=True))
    vo = ("vo_sym", "vo_antisym", "vo_qk_cosine", "vo_qk_distance")
    if o_t.shape == v.shape:
        per_head.update(zip(vo[:2], bilinear_shares(o_t, v), strict=True))
        per_head.update(zip(vo[2:], value_output_against_query_key(o_t, v, q, k),
                            strict=True))
    else:
        nan = torch.full((num_heads,), float("nan"), dtype=torch.float64)
        per_head.update(dict.fromkeys(vo, nan))
    out: dict[str, Any] = {m: per_head[m].mean().item() for m in HEAD_MEASURES}
    out.update(layer_scores(qkv))
    out["per_head"] = {m: per_head[m].tolist() for m in HEAD_MEASURES}
    return out


def layer_scores(qkv: Tensor) -> dict[str, float]:
    """Saponati et al.'s ``qk_symmetry_score`` and ``qk_directionality_score`` of the layer's
    query–key matrix ``W_Qᵀ W_K`` (all heads; :mod:`hamixer.experiments.layer_scores`) from
    a fused ``qkv`` weight."""
    w_q, w_k, _ = qkv.chunk(3)
    m = query_key_matrix(w_q, w_k)
    return {"qk_symmetry_score": symmetry_score(m),
            "qk_directionality_score": directionality_score(m)}


def attention_symmetry(layer: FoundAttention) -> dict[str, Any]:
    """The attention measures of one found attention layer."""
    row = attention_weight_symmetry(layer.qkv_weight, layer.out_weight, layer.num_heads)
    if layer.kind == "hamixer":
        row.update(key_term_symmetry(layer))
    return row


#: breaking matrix → the tied matrix it is measured against (AsymFormer's attention)
_BREAKING = {"value_breaking": "key_weight", "out_breaking": "query_weight",
             "key_out_breaking": "key_weight"}


@torch.no_grad()
def key_term_symmetry(layer: FoundAttention) -> dict[str, float]:
    """The key term of a hamixer attention (THEORY §8), per head ``K_out^h W_Q^h``, against its
    tied map ``W_K^hᵀ W_Q^h``: ``key_qk_cosine`` (1 for energy attention) and
    ``key_term_ratio`` = ‖K_out^h W_Q^h‖ / ‖W_O^h W_V^h‖ (1 for energy attention, 0 where
    the key term is cancelled), means over heads; none without a key term (free
    attention). And each breaking matrix's norm relative to its tied part: ``Ṽ`` to
    ``W_K``, ``Õ`` to ``W_Qᵀ``, ``K̃`` to ``W_Kᵀ``."""
    module, out = layer.module, {}
    key_out = module.key_out_weight
    if key_out is not None:
        q, k, v, o_t = (x.double() for x in layer.heads())
        a = key_out.t().double().reshape(layer.num_heads, layer.head_dim, -1)  # K_out^hᵀ
        nm = frobenius_products(a, q, k, q)
        n2, m2 = frobenius_products(a, q, a, q), frobenius_products(k, q, k, q)
        out["key_qk_cosine"] = (nm / (n2 * m2).sqrt()).mean().item()
        out["key_term_ratio"] = (n2 / frobenius_products(o_t, v, o_t, v)).sqrt().mean().item()
    for breaking, tied in _BREAKING.items():
        if isinstance(getattr(module, breaking, None), Tensor):
            ratio = getattr(module, breaking).norm() / getattr(module, tied).norm()
            out[f"{breaking}_ratio"] = ratio.item()
    return out


# --------------------------------------------------------------- untrained references
def mlp_reference(layer: FoundMLP) -> dict[str, tuple[float, float]]:
    """``{measure: (mean, std)}`` of independent random ``W1``, ``W2`` of ``layer``'s shapes."""
    hidden, features = layer.w1.shape
    return random_reference(weight_symmetry, ((hidden, features), (features, hidden)))


def attention_reference(layer: FoundAttention) -> dict[str, tuple[float, float]]:
    """``{measure: (mean, std)}`` of random ``qkv``, ``proj`` weights of ``layer``'s shapes
    (the statistics of the mean over heads, as a row reports it)."""
    shapes = (tuple(layer.qkv_weight.shape), tuple(layer.out_weight.shape))
    return random_reference(attention_weight_symmetry, shapes, (layer.num_heads,))


def _with_reference(row: dict[str, Any], ref: dict[str, tuple[float, float]]
                    ) -> dict[str, Any]:
    row["init"] = {m: {"mean": mu, "std": sd} for m, (mu, sd) in ref.items() if m in row}
    return row


# ------------------------------------------------------------------------ whole models
def model_symmetry(model: nn.Module, references: bool = False) -> list[dict[str, Any]]:
    """One row per two-layer MLP: ``{"block": i or None, "mlp": part, "module": path,
    **measures}`` (``part``: ``token``/``channel`` in a hamixer Mixer, ``mlp`` in a ViT);
    ``"gated": True`` for a GLU; with ``references``, ``"init"``: ``{measure: {"mean",
    "std"}}`` of an untrained layer of the same shapes."""
    rows = []
    for layer in find_mlps(model):
        row: dict[str, Any] = {"block": layer.block, "mlp": layer.part, "module": layer.path}
        if layer.kind == "gated":
            row["gated"] = True
        row.update(mlp_symmetry(layer))
        rows.append(_with_reference(row, mlp_reference(layer)) if references else row)
    return rows


def model_attention_symmetry(model: nn.Module, references: bool = False
                             ) -> list[dict[str, Any]]:
    """One row per attention layer: ``{"block", "attn": part, "module", "heads",
    **means over heads, "per_head": {measure: [...]}}``, and ``"init"`` with ``references``."""
    rows = []
    for layer in find_attention(model):
        row: dict[str, Any] = {"block": layer.block, "attn": layer.part, "module": layer.path,
                               "heads": layer.num_heads, **attention_symmetry(layer)}
        rows.append(_with_reference(row, attention_reference(layer)) if references else row)
    return rows


def symmetry_report(model: nn.Module, references: bool = True) -> dict[str, list]:
    """``{"mlp": MLP rows, "attention": attention rows}`` of ``model``."""
    return {"mlp": model_symmetry(model, references),
            "attention": model_attention_symmetry(model, references)}


# ------------------------------------------------------------------- metrics.jsonl keys
def _flat_key(block: int | None, part: str, measure: str, prefix: str = "sym") -> str:
    return f"{prefix}/{part}.{measure}" if block is None else f"{prefix}/{block}.{part}.{measure}"


def _layer_rows(report: dict[str, list]) -> Iterable[tuple[dict[str, Any], str, tuple]]:
    yield from ((r, r["mlp"], MLP_MEASURES) for r in report["mlp"])
    yield from ((r, r["attn"], ATTENTION_MEASURES) for r in report["attention"])


def flat_symmetry(model: nn.Module) -> dict[str, float]:
    """Measures as flat keys for a metrics row: ``sym/{block}.{part}.{measure}`` (a layer
    outside any block: ``sym/{part}.{measure}``) plus the means over blocks,
    ``sym/mean.{part}.{measure}``. Parts: ``token``/``channel`` (Mixer MLPs), ``mlp`` and
    ``attn`` (ViT), …; attention measures: :data:`ATTENTION_MEASURES` (the means over
    heads, and the two layer scores)."""
    flat: dict[str, float] = {}
    per_part: dict[tuple[str, str], list[float]] = {}
    for row, part, measures in _layer_rows(symmetry_report(model, references=False)):
        for m in measures:
            if m in row:
                flat[_flat_key(row["block"], part, m)] = row[m]
                if row["block"] is not None:
                    per_part.setdefault((part, m), []).append(row[m])
    for (part, m), vals in per_part.items():
        flat[f"sym/mean.{part}.{m}"] = sum(vals) / len(vals)
    return flat


def flat_references(model: nn.Module) -> dict[str, float]:
    """The untrained references as flat keys: ``symref/{block}.{part}.{measure}`` (mean) and
    ``symref_std/{block}.{part}.{measure}`` (standard deviation)."""
    flat: dict[str, float] = {}
    layers = [(f, mlp_reference(f)) for f in find_mlps(model)]
    layers += [(f, attention_reference(f)) for f in find_attention(model)]
    for layer, ref in layers:
        for m, (mean, std) in ref.items():
            flat[_flat_key(layer.block, layer.part, m, "symref")] = mean
            flat[_flat_key(layer.block, layer.part, m, "symref_std")] = std
    return flat


def symmetry_hook(model: nn.Module, epoch: int) -> dict[str, float]:
    """Per-epoch training hook: the flat measures, merged into ``metrics.jsonl``; at epoch 0
    (``init_metrics.json``) also the untrained references, which do not change."""
    flat = flat_symmetry(model)
    if epoch == 0:
        flat.update(flat_references(model))
    return flat


# ----------------------------------------------------------------------------- tables
def format_symmetry_table(rows: Iterable[dict[str, Any]]) -> str:
    """Markdown table of MLP rows; ``value (init mean ± std)`` where a row has references."""
    rows = list(rows)
    has_breaking = any("breaking_ratio" in r for r in rows)
    head = ["block", "mlp", "cosine", "scale a", "residual", "‖J_sym‖/‖J‖", "‖J_anti‖/‖J‖"]
    if has_breaking:
        head.append("‖W̃‖/‖W1ᵀ‖")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r["mlp"] + (" (GLU: value half)" if r.get("gated") else "")
        cells = [_block(r["block"]), name] + [_cell(r, k) for k in MEASURES]
        if has_breaking:
            cells.append(_cell(r, "breaking_ratio"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_attention_table(rows: Iterable[dict[str, Any]]) -> str:
    """Markdown table of attention rows, the per-head measures (means over heads;
    references where present)."""
    head = ["block", "attention", "heads", "QK sym", "QK antisym", "VO sym", "VO antisym",
            "cos(VO, QK)", "‖VO − QK‖/‖QK‖"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_block(r["block"]), r["attn"], str(r.get("heads", "?"))]
        cells += [_cell(r, m) for m in HEAD_MEASURES]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_layer_scores_table(rows: Iterable[dict[str, Any]]) -> str:
    """Markdown table of Saponati et al.'s scores per attention layer, and a last line with
    their median and interquartile range over the layers, as their tables give them."""
    rows = list(rows)
    head = ["block", "attention", "symmetry score", "directionality score"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [_block(r["block"]), r["attn"]] + [_cell(r, m) for m in LAYER_SCORES]
        lines.append("| " + " | ".join(cells) + " |")
    summary = layer_scores_over_layers(rows)
    if summary:
        cells = [_median_iqr(summary[m]) for m in LAYER_SCORES]
        lines.append(f"| median [q25, q75] | {len(rows)} layers | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def layer_scores_over_layers(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{score: {"median", "q25", "q75"}}`` of the layer scores of attention rows, over
    the layers that have them (empty when none has)."""
    rows = list(rows)
    out = {}
    for m in LAYER_SCORES:
        values = [r[m] for r in rows if isinstance(r.get(m), float) and r[m] == r[m]]
        if values:
            out[m] = over_layers(values)
    return out


def _median_iqr(summary: dict[str, float]) -> str:
    return f"{_fmt(summary['median'])} [{_fmt(summary['q25'])}, {_fmt(summary['q75'])}]"


REFERENCE_NOTE = (f"(init m ± s): what an untrained layer of the same shapes scores, mean ± "
                  f"std over {REFERENCE_DRAWS} draws of independent random matrices")
ATTENTION_NOTE = ("per head h, M = W_Q^hᵀ W_K^h and N = W_O^h W_V^h ([D, D]); sym / antisym "
                  "= ‖(M ± Mᵀ)/2‖ / ‖M‖; cos(VO, QK) = ⟨N, M⟩ / (‖N‖‖M‖), ‖VO − QK‖/‖QK‖ = "
                  "‖N − M‖ / ‖M‖ (tied value–output map: 1, 0); means over heads")
LAYER_SCORES_NOTE = ("Saponati et al. (arXiv:2502.10927), as their code and tables define them, "
                     "of the whole layer's M = W_Qᵀ W_K = Σ_h W_Q^hᵀ W_K^h: symmetry score "
                     "⟨M, Mᵀ⟩ / ‖M‖² (2‖M_sym‖²/‖M‖² − 1; symmetric 1, antisymmetric −1, random "
                     "≈ 1/D), directionality score (R − C) / (R + C), R and C the excess of "
                     "M's row and column norms over mean + 2 std (random ≈ 0)")


def _block(block: int | None) -> str:
    return "–" if block is None else str(block)


def _cell(row: dict[str, Any], measure: str) -> str:
    if measure not in row:  # e.g. a run logged before the measure existed
        return "–"
    value = _fmt(row[measure])
    ref = row.get("init", {}).get(measure)
    return value if ref is None else f"{value} (init {ref['mean']:.2f} ± {ref['std']:.2f})"


def _fmt(v: float) -> str:
    return format_measure(v, 4)


def _rows_by_layer(flat: dict[str, Any]) -> dict[tuple[int | None, str], dict[str, Any]]:
    rows: dict[tuple[int | None, str], dict[str, Any]] = {}
    for key, value in flat.items():
        if not key.startswith("sym/") or key.startswith("sym/mean."):
            continue
        where, _, measure = key[4:].rpartition(".")
        first, _, rest = where.partition(".")
        block, part = (int(first), rest) if first.isdigit() and rest else (None, where)
        rows.setdefault((block, part), {"block": block, "part": part})[measure] = value
    return rows


def _sorted_rows(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    order = {"token": 0, "channel": 1}
    for r in rows:
        r[name] = r.pop("part")
    return sorted(rows, key=lambda r: (r["block"] is None, r["block"] or 0,
                                       order.get(r[name], 2)))


def rows_from_flat(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """Invert :func:`flat_symmetry` for the MLPs (means dropped): per-layer rows."""
    rows = [r for r in _rows_by_layer(flat).values() if "cosine" in r]
    return _sorted_rows(rows, "mlp")


def attention_rows_from_flat(flat: dict[str, Any]) -> list[dict[str, Any]]:
    """Invert :func:`flat_symmetry` for the attention layers (means dropped)."""
    rows = [r for r in _rows_by_layer(flat).values() if "qk_sym" in r]
    return _sorted_rows(rows, "attn")


# ------------------------------------------------------------- per-epoch series of a run
_KEY = re.compile(r"^sym/(\d+)\.(.+)\.(\w+)$")


def symmetry_series(rows: Sequence[dict[str, Any]]) -> dict[tuple[int, str, str], list]:
    """``(block, part, measure) → [(epoch, value), ...]`` from metrics.jsonl rows (layers
    inside blocks; ``part``: ``token``, ``channel``, ``mlp``, ``attn``, …)."""
    series: dict[tuple[int, str, str], list] = {}
    for row in rows:
        for key, value in row.items():
            m = _KEY.match(key)
            if m and "epoch" in row:
                series.setdefault((int(m[1]), m[2], m[3]), []).append((row["epoch"], value))
    return series


def reference_series(row: dict[str, Any]) -> dict[tuple[str, str], list]:
    """``(part, measure) → [(block, mean, std), ...]``: the untrained references logged in
    ``row`` (``init_metrics.json``: ``symref/`` and ``symref_std/`` keys)."""
    refs: dict[tuple[str, str], list] = {}
    for key, mean in row.items():
        m = re.match(r"^symref/(\d+)\.(.+)\.(\w+)$", key)
        if m:
            std = row.get(f"symref_std/{key[len('symref/'):]}", float("nan"))
            refs.setdefault((m[2], m[3]), []).append((int(m[1]), mean, std))
    return refs


def read_run_symmetry(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of a training run that carry symmetry measures: epoch 0 (if logged), then each epoch."""
    init = read_init_metrics(run_dir)
    rows = ([init] if init else []) + read_metrics(run_dir)
    return [r for r in rows if any(k.startswith("sym/") for k in r)]


def plot_run_symmetry(run_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                      title: str | None = None) -> str | None:
    """Draw ``symmetry.png`` (default: into ``run_dir``) from its logged measures, if any:
    each measure against epoch, one line per block, the untrained reference dashed."""
    from pathlib import Path

    rows = read_run_symmetry(run_dir)
    if not rows:
        return None
    path = Path(path) if path is not None else Path(run_dir) / "symmetry.png"
    if title is None:
        title = f"weight symmetry during training: {Path(run_dir).parent.name}/{Path(run_dir).name}"
    from ..plots import plot_symmetry

    plot_symmetry(symmetry_series(rows), path, title, references=reference_series(rows[0]))
    return str(path)


def plot_run_symmetry_blocks(run_dir: str | os.PathLike, path: str | os.PathLike | None = None,
                             title: str | None = None) -> str | None:
    """Draw ``symmetry-blocks.png`` (default: into ``run_dir``): the measures of the last
    logged epoch per block, beside epoch 0 and the untrained reference, if any were logged."""
    from pathlib import Path

    rows = read_run_symmetry(run_dir)
    if not rows:
        return None
    path = Path(path) if path is not None else Path(run_dir) / "symmetry-blocks.png"
    if title is None:
        title = (f"weight symmetry per block, epoch {rows[-1].get('epoch', '?')}: "
                 f"{Path(run_dir).parent.name}/{Path(run_dir).name}")
    initial = rows[0] if rows[0].get("epoch") == 0 and len(rows) > 1 else None
    from ..plots import plot_symmetry_blocks

    plot_symmetry_blocks(_per_block(rows[-1]), path, title,
                         initial=_per_block(initial) if initial else None,
                         references=reference_series(rows[0]))
    return str(path)


def plot_model_symmetry_blocks(model: nn.Module, path: str | os.PathLike, title: str) -> str:
    """Draw the measures of ``model`` per block beside the untrained reference."""
    from ..plots import plot_symmetry_blocks

    flat = flat_symmetry(model)
    plot_symmetry_blocks(_per_block(flat), path, title,
                         references=reference_series(flat_references(model)))
    return str(path)


def _per_block(row: dict[str, Any]) -> dict[tuple[str, str], list]:
    """``(part, measure) → [(block, value), ...]`` of one metrics row."""
    out: dict[tuple[str, str], list] = {}
    for (block, part, measure), pts in symmetry_series([{**row, "epoch": 0}]).items():
        out.setdefault((part, measure), []).append((block, pts[0][1]))
    return out
