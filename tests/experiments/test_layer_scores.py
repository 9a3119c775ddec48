"""Saponati et al.'s layer-level symmetry and directionality scores, on matrices whose
answers are known, and the layer matrix they score formed from a timm ViT layer."""

import math

import pytest
import timm
import torch
from timm.layers import Attention

from hamixer.experiments.layer_scores import (
    directionality_score,
    norm_excess,
    over_layers,
    query_key_matrix,
    symmetry_score,
)
from hamixer.experiments.symmetry import (
    LAYER_SCORES,
    attention_weight_symmetry,
    flat_symmetry,
    format_layer_scores_table,
    layer_scores_over_layers,
    model_attention_symmetry,
)
from hamixer.models.find_layers import find_attention


def random_square(d: int, seed: int) -> torch.Tensor:
    return torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ------------------------------------------------------------------------ symmetry score
def test_symmetric_and_antisymmetric_matrices_score_plus_and_minus_one():
    s = random_square(16, 0)
    assert symmetry_score(s + s.t()) == pytest.approx(1.0, abs=1e-12)
    assert symmetry_score(s - s.t()) == pytest.approx(-1.0, abs=1e-12)
    assert symmetry_score(torch.eye(5)) == pytest.approx(1.0)
    assert math.isnan(symmetry_score(torch.zeros(3, 3)))


def test_symmetry_score_is_their_share_rescaled():
    """Their code's ‖M_sym‖²/‖M‖², published as 2·share − 1; M = S + a·A with S symmetric and
    A antisymmetric, ⟨S, A⟩ = 0, has share ‖S‖² / (‖S‖² + a²‖A‖²)."""
    x = random_square(10, 1)
    sym, anti = x + x.t(), x - x.t()
    share = sym.norm() ** 2 / (sym.norm() ** 2 + 0.25 * anti.norm() ** 2)
    assert symmetry_score(sym + 0.5 * anti) == pytest.approx((2 * share - 1).item())


def test_random_matrix_symmetry_score_is_about_one_over_d():
    """i.i.d. standard-normal M [D, D]: ⟨M, Mᵀ⟩ = Σ_i M_ii² + 2 Σ_{i<j} M_ij M_ji has mean D
    and standard deviation √2·D, ‖M‖² ≈ D², so the score is 1/D ± √2/D."""
    d = 400
    scores = [symmetry_score(random_square(d, seed)) for seed in range(4)]
    for s in scores:
        assert abs(s - 1 / d) < 5 * math.sqrt(2) / d
    mean = sum(scores) / len(scores)
    assert abs(mean - 1 / d) < 5 * math.sqrt(2) / d / math.sqrt(len(scores))


def test_one_head_score_is_the_square_shares_difference():
    """With one head the layer matrix is the head's: score = qk_sym² − qk_antisym²."""
    torch.manual_seed(0)
    out = attention_weight_symmetry(torch.randn(24, 8), torch.randn(8, 8), num_heads=1)
    assert out["qk_symmetry_score"] == pytest.approx(out["qk_sym"] ** 2 - out["qk_antisym"] ** 2)


# ------------------------------------------------------------------ directionality score
def test_norm_excess_uses_the_bessel_corrected_std():
    """norms [v, 0, …, 0] (n of them): mean v/n, std (n − 1 in the denominator) v/√n, so the
    one norm above the threshold exceeds it by v·(1 − 1/n − 2/√n)."""
    n, v = 8, 3.0
    norms = torch.zeros(n, dtype=torch.float64)
    norms[2] = v
    assert norm_excess(norms).item() == pytest.approx(v * (1 - 1 / n - 2 / math.sqrt(n)))
    assert norm_excess(torch.full((6,), 2.0)).item() == 0  # nothing above mean + 2 std
    assert norm_excess(norms, num_std=3.0).item() == 0  # 1/8 + 3/√8 > 1


def test_a_dominant_column_scores_minus_one_and_a_dominant_row_plus_one():
    m = torch.zeros(8, 8, dtype=torch.float64)
    m[:, 3] = 1.5  # one key-side input direction read by every query direction
    assert directionality_score(m) == pytest.approx(-1.0)
    assert directionality_score(m.t()) == pytest.approx(1.0)


def test_directionality_of_a_row_and_a_column_together():
    """M = a·e_0 1ᵀ + b·1 e_1ᵀ (n = 8): row norms [r0, b, …, b] with r0 = √((n−1)a² + (a+b)²),
    column norms [a, c1, a, …, a] with c1 = √((n−1)b² + (a+b)²); each excess is
    (outlier − rest)·(1 − 1/n − 2/√n), so the score is ((r0 − b) − (c1 − a)) / ((r0 − b) +
    (c1 − a))."""
    n, a, b = 8, 1.0, 2.0
    m = torch.zeros(n, n, dtype=torch.float64)
    m[0, :] += a
    m[:, 1] += b
    r0, c1 = math.sqrt((n - 1) * a**2 + (a + b) ** 2), math.sqrt((n - 1) * b**2 + (a + b) ** 2)
    expected = ((r0 - b) - (c1 - a)) / ((r0 - b) + (c1 - a))
    assert directionality_score(m) == pytest.approx(expected)
    assert expected == pytest.approx(-0.4353, abs=1e-4)


def test_symmetric_antisymmetric_and_flat_matrices_have_no_direction():
    x = random_square(32, 2)
    for m in (x + x.t(), x - x.t()):  # row i and column i have the same norm
        assert directionality_score(m) == pytest.approx(0.0, abs=1e-9)
    assert directionality_score(torch.ones(6, 6)) == 0.0  # no norm above its threshold


def test_random_matrices_have_no_direction_on_average():
    """Transposing M swaps rows and columns: the score changes sign exactly, and i.i.d.
    entries make M and Mᵀ equally likely, so its expectation is 0."""
    scores = []
    for seed in range(64):
        m = random_square(32, 100 + seed)
        scores.append(directionality_score(m))
        assert directionality_score(m.t()) == pytest.approx(-scores[-1], abs=1e-12)
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1))
    assert std > 0.05 and abs(mean) < 4 * std / math.sqrt(len(scores))


def test_scores_refuse_a_non_square_matrix():
    with pytest.raises(ValueError, match="square"):
        symmetry_score(torch.ones(3, 4))
    with pytest.raises(ValueError, match="square"):
        directionality_score(torch.ones(3, 4))


# -------------------------------------------------------------------- summary over layers
def test_over_layers_is_their_median_and_interquartile_range():
    # np.percentile's linear interpolation: q25 of [1, 2, 3, 4] at position 0.75 → 1.75
    assert over_layers([4.0, 1.0, 3.0, 2.0]) == pytest.approx(
        {"median": 2.5, "q25": 1.75, "q75": 3.25})
    rows = [{"qk_symmetry_score": 0.2, "qk_directionality_score": -0.5},
            {"qk_symmetry_score": 0.4, "qk_directionality_score": float("nan")}]
    summary = layer_scores_over_layers(rows)
    assert summary["qk_symmetry_score"]["median"] == pytest.approx(0.3)
    assert summary["qk_directionality_score"] == {"median": -0.5, "q25": -0.5, "q75": -0.5}


# ------------------------------------------------------------------ the layer's W_Qᵀ W_K
def test_layer_matrix_of_a_timm_vit_layer_is_the_sum_over_heads():
    """M = W_Qᵀ W_K of the whole layer (Saponati et al.: Wq = query.weight.T, M = Wq Wkᵀ) is
    Σ_h W_Q^hᵀ W_K^h, and x_iᵀ M x_j is the sum over heads of the logits q_i^h · k_j^h that
    timm's own forward computes (before the scale; biases off)."""
    torch.manual_seed(0)
    attn = Attention(12, num_heads=3, qkv_bias=False).eval()
    (layer,) = find_attention(torch.nn.ModuleDict({"attn": attn}))
    w_q, w_k, _ = layer.query_key_value()
    m = query_key_matrix(w_q, w_k)
    q, k, _, _ = layer.heads()
    assert torch.allclose(m, sum(q[h].double().t() @ k[h].double() for h in range(3)))
    assert torch.allclose(m, attn.qkv.weight[:12].double().t() @ attn.qkv.weight[12:24].double())
    x = torch.randn(5, 12)
    qkv = attn.qkv(x).reshape(5, 3, 3, 4).permute(1, 2, 0, 3)  # timm's split: [3, H, N, hd]
    logits = (qkv[0] @ qkv[1].transpose(-2, -1)).sum(0)  # [N, N], summed over heads
    assert torch.allclose(x.double() @ m @ x.double().t(), logits.double(), atol=1e-5)


def test_vit_rows_carry_the_scores_with_references_and_a_table():
    model = timm.create_model("vit_tiny_patch16_224", img_size=28, patch_size=4, in_chans=1,
                              num_classes=10, embed_dim=64, depth=3, num_heads=2)
    rows = model_attention_symmetry(model, references=True)
    for r in rows:
        w_q, w_k, _ = find_attention(model)[r["block"]].query_key_value()
        m = query_key_matrix(w_q, w_k)
        assert r["qk_symmetry_score"] == pytest.approx(symmetry_score(m))
        assert r["qk_directionality_score"] == pytest.approx(directionality_score(m))
        ref = r["init"]["qk_symmetry_score"]  # random factors: ≈ 1/D
        assert abs(ref["mean"] - 1 / 64) < 3 * ref["std"] and "qk_symmetry_score" not in \
            r["per_head"]
    flat = flat_symmetry(model)
    assert {f"sym/2.attn.{s}" for s in LAYER_SCORES} | {"sym/mean.attn.qk_symmetry_score"} \
        <= set(flat)
    table = format_layer_scores_table(rows)
    assert table.count("\n") == 5 and "| median [q25, q75] | 3 layers |" in table
